// Package cuda is TileLab's NVIDIA GPU side. Nothing links CUDA at build time: the driver (libcuda.so.1) is
// loaded at run time with purego, so the binary builds and runs everywhere and reports CUDA unavailable, with the
// reason, where no driver is installed.
//
// For now the package holds the availability probe and the two buffer types placement plans with, CUDA0 (device
// memory) and CUDA_Host (pinned host memory): their rules and sizes. Kernels, uploads and the backend come later;
// until then importing a weight into either buffer type is an error that says so.
package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/ebitengine/purego"
)

// DriverLibrary is the file name of the CUDA driver API library the probe loads.
const DriverLibrary = "libcuda.so.1"

// Device is one GPU the driver reports.
type Device struct {
	Index       int
	Name        string
	TotalMemory int64 // bytes
}

// Status is what the probe found: whether CUDA can be used here and, if not, why.
type Status struct {
	Available bool
	Reason    string // why not, or a one-line description of what was found
	Driver    int    // the driver's CUDA version as the driver API encodes it (13000 for 13.0); 0 if unknown
	Devices   []Device
}

// String reads like "CUDA 13.0: 1 device (NVIDIA H100 80GB HBM3, 79.1 GiB)" or the reason it is unavailable.
func (s Status) String() string { return s.Reason }

var (
	probeOnce sync.Once
	probed    Status
)

// Probe reports, once per process, whether the CUDA driver can be loaded and initialised and how many devices it
// sees. It never fails: an absent driver is a Status with Available false and the reason.
func Probe() Status {
	probeOnce.Do(func() { probed = probe(DriverLibrary) })
	return probed
}

// cuResult is CUresult, the driver API's status code.
type cuResult int32

func (r cuResult) err(call string) error {
	if r == 0 {
		return nil
	}
	return fmt.Errorf("%s failed: CUDA error %d%s", call, int32(r), resultNames[r])
}

// resultNames names the codes a probe is likely to meet (from the driver API's CUresult enumeration).
var resultNames = map[cuResult]string{
	3:   " (CUDA_ERROR_NOT_INITIALIZED)",
	34:  " (CUDA_ERROR_STUB_LIBRARY)",
	35:  " (CUDA_ERROR_INSUFFICIENT_DRIVER)",
	100: " (CUDA_ERROR_NO_DEVICE)",
	101: " (CUDA_ERROR_INVALID_DEVICE)",
	304: " (CUDA_ERROR_OPERATING_SYSTEM)",
	999: " (CUDA_ERROR_UNKNOWN)",
}

// driver holds the few driver API entry points the probe calls.
type driver struct {
	cuInit              func(flags uint32) cuResult
	cuDriverGetVersion  func(v *int32) cuResult
	cuDeviceGetCount    func(n *int32) cuResult
	cuDeviceGet         func(dev *int32, ordinal int32) cuResult
	cuDeviceGetName     func(name *byte, n int32, dev int32) cuResult
	cuDeviceTotalMem_v2 func(bytes *uint64, dev int32) cuResult
}

func probe(lib string) Status {
	h, err := dlopen(lib)
	if err != nil {
		return Status{Reason: noDriver(lib, err)}
	}
	d, err := bind(h)
	if err != nil {
		return Status{Reason: fmt.Sprintf("CUDA driver %s is incomplete: %v", lib, err)}
	}
	s := Status{}
	if err := d.cuInit(0).err("cuInit"); err != nil {
		s.Reason = "CUDA driver present but unusable: " + err.Error()
		return s
	}
	var v int32
	if d.cuDriverGetVersion(&v) == 0 {
		s.Driver = int(v)
	}
	var n int32
	if err := d.cuDeviceGetCount(&n).err("cuDeviceGetCount"); err != nil {
		s.Reason = "CUDA driver present but unusable: " + err.Error()
		return s
	}
	if n == 0 {
		s.Reason = fmt.Sprintf("CUDA driver %s loaded, but it sees no device", versionString(s.Driver))
		return s
	}
	for i := range n {
		var dev int32
		if err := d.cuDeviceGet(&dev, i).err("cuDeviceGet"); err != nil {
			s.Reason = fmt.Sprintf("CUDA device %d unusable: %v", i, err)
			return s
		}
		name := make([]byte, 256)
		var mem uint64
		if err := d.cuDeviceGetName(&name[0], int32(len(name)), dev).err("cuDeviceGetName"); err != nil {
			s.Reason = fmt.Sprintf("CUDA device %d unusable: %v", i, err)
			return s
		}
		if err := d.cuDeviceTotalMem_v2(&mem, dev).err("cuDeviceTotalMem"); err != nil {
			s.Reason = fmt.Sprintf("CUDA device %d unusable: %v", i, err)
			return s
		}
		s.Devices = append(s.Devices, Device{Index: int(i), Name: cString(name), TotalMemory: int64(mem)})
	}
	s.Available = true
	var ds []string
	for _, dv := range s.Devices {
		ds = append(ds, fmt.Sprintf("%s, %.1f GiB", dv.Name, float64(dv.TotalMemory)/(1<<30)))
	}
	s.Reason = fmt.Sprintf("CUDA %s: %d device(s) (%s)", versionString(s.Driver), len(s.Devices), strings.Join(ds, "; "))
	return s
}

// dlopen loads lib with the calling goroutine pinned to its thread. purego's Dlopen calls dlopen and then
// dlerror as two separate foreign calls, and dlerror's message is per thread: a goroutine moved to another thread
// between them reads that thread's (empty) error, and the probe said "no CUDA driver: " with no reason.
func dlopen(lib string) (uintptr, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
}

// noDriver words a failed dlopen: the common case (no driver installed) briefly, anything else with the loader's
// own message.
func noDriver(lib string, err error) string {
	if strings.Contains(err.Error(), "No such file") || strings.Contains(err.Error(), "cannot open shared object") {
		return "no CUDA driver: " + lib + " not found"
	}
	if strings.TrimSpace(err.Error()) == "" {
		// The loader is not obliged to explain itself; the reason must still name what failed.
		return "no CUDA driver: " + lib + " could not be loaded (the loader gave no reason)"
	}
	return "no CUDA driver: " + err.Error()
}

// bind resolves every entry point first, so a partial library is reported instead of crashing on a nil call.
func bind(h uintptr) (*driver, error) {
	d := &driver{}
	syms := []struct {
		name string
		fn   any
	}{
		{"cuInit", &d.cuInit},
		{"cuDriverGetVersion", &d.cuDriverGetVersion},
		{"cuDeviceGetCount", &d.cuDeviceGetCount},
		{"cuDeviceGet", &d.cuDeviceGet},
		{"cuDeviceGetName", &d.cuDeviceGetName},
		{"cuDeviceTotalMem_v2", &d.cuDeviceTotalMem_v2},
	}
	var missing []string
	for _, s := range syms {
		if _, err := purego.Dlsym(h, s.name); err != nil {
			missing = append(missing, s.name)
		}
	}
	if len(missing) > 0 {
		return nil, errors.New("missing " + strings.Join(missing, ", "))
	}
	for _, s := range syms {
		purego.RegisterLibFunc(s.fn, h, s.name)
	}
	return d, nil
}

func versionString(v int) string {
	if v == 0 {
		return "(version unknown)"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
