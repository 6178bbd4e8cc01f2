package workbench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/cpu"

	"tilelab/cuda"
	"tilelab/workbench/lang"
	"tilelab/workbench/result"
)

func init() {
	register(&command{group: "session", run: runEnv, spec: &lang.Spec{
		Name: "env", Summary: "the machine: CPU, AMX, memory, GPUs, OS, Go and TileLab versions",
		Doc:     "Everything `save` stores beside a result so it can be compared and reproduced.",
		Example: "env",
	}})
}

// envItem is one fact about the machine.
type envItem struct {
	Key, Value string
}

var (
	gpuOnce   sync.Once
	gpuStatus cuda.Status
)

// probeGPU asks the driver once per process: loading libcuda is slow and the answer does not change.
func probeGPU() cuda.Status {
	gpuOnce.Do(func() { gpuStatus = cuda.Probe() })
	return gpuStatus
}

// environment gathers the facts `env` shows and `save` stores.
func (s *Session) environment() []envItem {
	var env []envItem
	add := func(k, v string) { env = append(env, envItem{k, v}) }
	add("cpu", cpuModel())
	add("cores", fmt.Sprintf("%d logical, GOMAXPROCS %d", runtime.NumCPU(), runtime.GOMAXPROCS(0)))
	add("cpu quota", processCPUQuota())
	add("cpu flags", strings.Join(cpuFlags(), " "))
	add("amx", amxSummary())
	add("numa nodes", numaNodes())
	add("memory", memTotal())
	g := probeGPU()
	if g.Available {
		var names []string
		for _, d := range g.Devices {
			names = append(names, fmt.Sprintf("%d: %s, %.1f GiB", d.Index, d.Name, float64(d.TotalMemory)/(1<<30)))
		}
		add("gpus", strings.Join(names, "; "))
		add("cuda driver", fmt.Sprintf("%d.%d", g.Driver/1000, g.Driver%1000/10))
	} else {
		add("gpus", "none: "+g.Reason)
	}
	add("os", osName())
	add("go", runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH)
	add("tilelab", s.opts.Version+" (commit "+s.opts.Commit+")")
	add("threads", strconv.Itoa(s.settings.Threads))
	return env
}

func envMap(env []envItem) map[string]string {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Key] = e.Value
	}
	return m
}

func runEnv(c *ctxCall) error {
	t := result.NewTable("environment", "what", "value")
	env := c.s.environment()
	for _, e := range env {
		t.Add(e.Key, e.Value)
	}
	c.emit(&Record{Tables: []*result.Table{t}, Raw: envMap(env)})
	return nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown (" + runtime.GOARCH + ")"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown (" + runtime.GOARCH + ")"
}

// cpuFlags lists the instruction sets that matter to TileLab's kernels, as CPUID reports them (AVX and AVX-512
// also need the OS to save their registers, which x/sys/cpu checks).
func cpuFlags() []string {
	var out []string
	for _, f := range []struct {
		name string
		on   bool
	}{
		{"avx2", cpu.X86.HasAVX2}, {"fma", cpu.X86.HasFMA}, {"avx512f", cpu.X86.HasAVX512F}, {"avx512bw", cpu.X86.HasAVX512BW},
		{"avx512_vnni", cpu.X86.HasAVX512VNNI}, {"avx512_bf16", cpu.X86.HasAVX512BF16}, {"avx_vnni", cpu.X86.HasAVXVNNI},
		{"amx_tile", cpu.X86.HasAMXTile}, {"amx_int8", cpu.X86.HasAMXInt8}, {"amx_bf16", cpu.X86.HasAMXBF16},
	} {
		if f.on {
			out = append(out, f.name)
		}
	}
	if len(out) == 0 {
		return []string{"(none of avx2, avx512, amx)"}
	}
	return out
}

func numaNodes() string {
	m, _ := filepath.Glob("/sys/devices/system/node/node[0-9]*")
	if len(m) == 0 {
		return "unknown"
	}
	return strconv.Itoa(len(m))
}

func memTotal() string {
	if b, ok := memTotalBytes(); ok {
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	}
	return "unknown"
}

// memTotalBytes is the machine's physical memory from /proc/meminfo; ok is false where that is unreadable.
func memTotalBytes() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "MemTotal:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return kb << 10, true
				}
			}
		}
	}
	return 0, false
}

// fitsMemory refuses work whose buffers alone would exceed the machine's memory: Go cannot recover from running
// out of memory, and the kernel would die with every loaded model. what names the buffers for the message.
func fitsMemory(bytes float64, what string) error {
	total, ok := memTotalBytes()
	if !ok || bytes <= float64(total) {
		return nil
	}
	return fmt.Errorf("%w: %s would take %.1f GiB; this machine has %.1f GiB", errMemory, what, bytes/(1<<30), float64(total)/(1<<30))
}

// errMemory marks work refused by fitsMemory.
var errMemory = errors.New("too large")

func osName() string {
	name := runtime.GOOS
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"`)
			}
		}
	}
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		name += ", kernel " + strings.TrimSpace(string(rel))
	}
	return name
}
