package cuda

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/placement"
	"tilelab/engine/tensor"
)

func TestProbeOfAMissingLibraryNamesIt(t *testing.T) {
	s := probe("libcuda-does-not-exist.so.1")
	if s.Available || s.Reason != "no CUDA driver: libcuda-does-not-exist.so.1 not found" {
		t.Errorf("probe = %+v", s)
	}
}

// The loader's message is per thread; a probe that reads it from another thread than the failed dlopen's gets
// an empty reason. Busy goroutines make the scheduler move probing goroutines between threads often enough that,
// without the thread pinned, a few of these thousands of probes came back with "no CUDA driver: " and nothing more.
func TestProbeReasonSurvivesThreadSwitches(t *testing.T) {
	const lib = "libcuda-does-not-exist.so.1"
	want := "no CUDA driver: " + lib + " not found"
	stop := make(chan struct{})
	var busy sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		busy.Add(1)
		go func() {
			defer busy.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	var mu sync.Mutex
	bad := map[string]int{}
	var probes sync.WaitGroup
	for range 8 {
		probes.Add(1)
		go func() {
			defer probes.Done()
			for range 1000 {
				if r := probe(lib).Reason; r != want {
					mu.Lock()
					bad[r]++
					mu.Unlock()
				}
			}
		}()
	}
	probes.Wait()
	close(stop)
	busy.Wait()
	if len(bad) > 0 {
		t.Errorf("of 8000 probes, these gave another reason than %q (reason: count): %v", want, bad)
	}
}

func TestNoDriverAlwaysNamesTheLibrary(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"a missing file says not found", errors.New("libcuda.so.1: cannot open shared object file: No such file or directory"), "no CUDA driver: libcuda.so.1 not found"},
		{"another loader error is quoted", errors.New("libcuda.so.1: wrong ELF class: ELFCLASS32"), "no CUDA driver: libcuda.so.1: wrong ELF class: ELFCLASS32"},
		{"an empty loader message still names the library", errors.New(""), "no CUDA driver: libcuda.so.1 could not be loaded (the loader gave no reason)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := noDriver("libcuda.so.1", c.err); got != c.want {
				t.Errorf("noDriver = %q, want %q", got, c.want)
			}
		})
	}
}

func TestProbeRunsOnceAndAgrees(t *testing.T) {
	first := Probe()
	var wg sync.WaitGroup
	results := make([]Status, 16)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = Probe() }()
	}
	wg.Wait()
	for i, s := range results {
		if !reflect.DeepEqual(s, first) {
			t.Errorf("call %d gave %+v, the first gave %+v", i, s, first)
		}
	}
}

func TestProbeAnswersEitherWay(t *testing.T) {
	s := Probe()
	if s.Reason == "" {
		t.Fatal("the probe gave no reason")
	}
	if s.Available && len(s.Devices) == 0 {
		t.Errorf("available with no devices: %+v", s)
	}
	if !s.Available && len(s.Devices) != 0 {
		t.Errorf("unavailable with devices: %+v", s)
	}
	t.Logf("probe: %s", s)
}

func TestBufferTypeRulesAndSizes(t *testing.T) {
	dev, host := DeviceBufferType(), HostBufferType()
	cases := []struct {
		name       string
		bt         backend.BufferType
		w          backend.WeightInfo
		ok         bool
		packedDiff int64
	}{
		{"device memory takes q4_0 with ne0 a multiple of 512 unpadded", dev, placement.Weight("blk.0.attn_q.weight", tensor.Q4_0, [4]int{2048, 4096, 1, 1}), true, 0},
		{"device memory pads a q8_0 row of 2080 to 2560", dev, placement.Weight("blk.0.ffn_down.weight", tensor.Q8_0, [4]int{2080, 64, 1, 1}), true, int64(tensor.Q8_0.RowBytes(480))},
		{"device memory does not pad F32", dev, placement.Weight("blk.0.attn_norm.weight", tensor.F32, [4]int{100, 1, 1, 1}), true, 0},
		{"pinned memory never pads", host, placement.Weight("blk.0.ffn_down.weight", tensor.Q8_0, [4]int{2080, 64, 1, 1}), true, 0},
		{"an unknown type is refused", dev, backend.WeightInfo{Name: "x", Type: tensor.DType(77), Ne: [4]int{32, 1, 1, 1}}, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, why := c.bt.Accepts(c.w)
			if ok != c.ok || why == "" {
				t.Fatalf("Accepts = %v, %q; want %v with a reason", ok, why, c.ok)
			}
			if ok {
				if d := c.bt.PackedBytes(c.w) - c.w.Bytes(); d != c.packedDiff {
					t.Errorf("packed size exceeds GGUF size by %d bytes, want %d", d, c.packedDiff)
				}
			}
		})
	}
	if !host.IsHost() || dev.IsHost() {
		t.Error("CUDA_Host must be host memory and CUDA0 must not")
	}
	if dev.Name() != "CUDA0" || host.Name() != "CUDA_Host" {
		t.Errorf("names %s, %s", dev.Name(), host.Name())
	}
}

func TestImportRefusesWithAReason(t *testing.T) {
	none := func() Status { return Status{Reason: "no CUDA driver: libcuda.so.1 not found"} }
	some := func() Status { return Status{Available: true, Reason: "CUDA 13.0: 1 device(s)"} }
	w := &graph.Tensor{Name: "blk.0.attn_q.weight", Type: tensor.Q4_0, Ne: [4]int{32, 1, 1, 1}, Data: make([]byte, 18), Layout: tensor.Plain}
	cases := []struct {
		name string
		bt   *bufferType
		t    *graph.Tensor
		want string
	}{
		{"without a driver the import says there is none", &bufferType{name: "CUDA0", status: none}, w, "CUDA0: cannot import blk.0.attn_q.weight: no CUDA driver"},
		{"with a driver the import says the backend is missing", &bufferType{name: "CUDA0", status: some}, w, "cannot upload blk.0.attn_q.weight: TileLab's CUDA backend is not built yet"},
		{"pinned memory says pin", &bufferType{name: "CUDA_Host", device: -1, status: some}, w, "cannot pin"},
		{"a packed layout is refused by name", &bufferType{name: "CUDA0", status: some}, &graph.Tensor{Name: "e", Type: tensor.Q4_0, Layout: "amx-int8"}, "layout amx-int8"},
		{"a nil tensor is an error", &bufferType{name: "CUDA0", status: some}, nil, "nil tensor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.bt.Import(c.t)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Import error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestCheckOptions(t *testing.T) {
	none := Status{Reason: "no CUDA driver: libcuda.so.1 not found"}
	gpu := Status{Available: true, Reason: "CUDA 13.0"}
	cases := []struct {
		name string
		o    placement.Options
		s    Status
		want string // "" for no error
	}{
		{"ngl>0 without a GPU is an error that says so", placement.Options{NGL: 12}, none, "ngl=12 offloads layers to the GPU, but no GPU can be used here: no CUDA driver: libcuda.so.1 not found"},
		{"gpu=on without a GPU is an error", placement.Options{GPU: true}, none, "gpu=on, but no GPU"},
		{"CPU-only options need no GPU", placement.Options{AMX: "all"}, none, ""},
		{"ngl>0 with a GPU is fine", placement.Options{NGL: 12}, gpu, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkOptions(c.o, c.s)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("checkOptions = %v, want %q", err, c.want)
			}
		})
	}
}

func TestPlanRegistryHasBothTypes(t *testing.T) {
	reg := backend.NewRegistry()
	RegisterForPlan(reg)
	for _, n := range []string{"CUDA0", "CUDA_Host"} {
		if _, err := reg.BufferType(n); err != nil {
			t.Error(err)
		}
	}
}

func TestPlacementExplainsAMissingGPUWithTheProbe(t *testing.T) {
	reg := backend.NewRegistry()
	reg.AddBufferType(&bufferType{name: placement.CPU, device: -1, status: Probe}) // any buffer type named CPU
	_, err := placement.Place(nil, 1, placement.Options{NGL: 1}, reg)
	if err == nil {
		t.Fatal("placing with ngl=1 and no CUDA0 succeeded")
	}
	want := "a GPU is present but its buffer types were not registered"
	if s := Probe(); !s.Available {
		want = s.Reason
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}
