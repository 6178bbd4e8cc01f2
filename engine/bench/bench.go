// Package bench measures whole-model throughput the way llama-bench does: pp<N> evaluates a prompt of N random
// tokens in one batch, tg<N> generates N tokens one at a time, each test runs once to warm up and then Reps
// times from an empty KV cache, and the result is tokens per second, mean ± sample standard deviation, with the
// raw repetitions kept. Lists of prompt sizes, generation lengths, threads, modes and GPU layer counts run every
// combination.
//
// A mode (cpu, cpu+amx, cpu+gpu, cpu+gpu+amx) is a placement of one mapped file; the machine-specific part
// (registering AMX or CUDA backends, or saying why a mode cannot run here) comes from Config.Setup, so this package
// stays hardware-neutral. A mode that cannot run is a row with the reason, never a timing of an emulator.
package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"time"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/cpu/simd"
	"tilelab/engine/gguf"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
	"tilelab/internal/buildinfo"
)

// Mode is one of DESIGN.md's four placements.
type Mode string

// The modes: which accelerators a placement uses besides the CPU.
const (
	CPU       Mode = "cpu"
	CPUAMX    Mode = "cpu+amx"
	CPUGPU    Mode = "cpu+gpu"
	CPUGPUAMX Mode = "cpu+gpu+amx"
)

// AllModes lists the modes in the order tables show them.
var AllModes = []Mode{CPU, CPUAMX, CPUGPU, CPUGPUAMX}

// AMX reports whether the mode places weights in AMX buffers.
func (m Mode) AMX() bool { return m == CPUAMX || m == CPUGPUAMX }

// GPU reports whether the mode offloads layers to a GPU.
func (m Mode) GPU() bool { return m == CPUGPU || m == CPUGPUAMX }

// ParseModes reads a comma-separated list such as "cpu,cpu+amx"; "all" means every mode.
func ParseModes(s string) ([]Mode, error) {
	if strings.TrimSpace(s) == "all" {
		return append([]Mode(nil), AllModes...), nil
	}
	var out []Mode
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, m := range AllModes {
			if string(m) == f {
				out, ok = append(out, m), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown mode %q (want cpu, cpu+amx, cpu+gpu, cpu+gpu+amx or all)", f)
		}
	}
	return out, nil
}

// Instance is one combination of the settings that need their own model load.
type Instance struct {
	Mode    Mode
	Threads int
	NGL     int    // GPU layers (0 for modes without a GPU)
	AMX     string // placement.AMXAll or placement.AMXAttn for AMX modes, placement.AMXOff otherwise
}

// SetupFunc prepares reg for an instance: it registers the backends and buffer types the mode needs (AMX, CUDA),
// running on p, which the CPU backend shares. It returns a non-empty skip reason when this machine cannot run the
// mode (no GPU; AMX only emulated), or an error when setting up failed.
type SetupFunc func(in Instance, reg *backend.Registry, p *pool.Pool) (skip string, err error)

// CPUOnly is the SetupFunc for a build without accelerators: cpu runs, every other mode is skipped.
func CPUOnly(in Instance, _ *backend.Registry, _ *pool.Pool) (string, error) {
	switch {
	case in.Mode.GPU():
		return "no CUDA backend in this build", nil
	case in.Mode.AMX():
		return "no AMX backend in this build", nil
	}
	return "", nil
}

// Config says what to measure.
type Config struct {
	Model   string       // GGUF path (used when File is nil, and as the model's name in tables)
	File    *gguf.File   // an already mapped file; nil: Run opens Model and closes it afterwards
	Prompt  []int        // prompt sizes, one pp test each (0 entries are ignored)
	Gen     []int        // generation lengths, one tg test each (0 entries are ignored)
	Reps    int          // timed repetitions per test (0: 5)
	Threads []int        // CPU worker counts (empty: pool.DefaultThreads, one per CPU the process may use)
	KV      tensor.DType // the KV cache's element type: F32 (the zero value) or F16, as llama-bench's -ctk/-ctv
	Modes   []Mode       // empty: cpu
	AMX     string       // policy for AMX modes: "all" (default) or "attn"
	NGL     []int        // GPU layers for GPU modes (empty: a quarter of the layers, as the seed used)
	NoWarm  bool         // skip the warm-up run
	Seed    uint64       // random tokens' seed
	Setup   SetupFunc    // nil: CPUOnly
}

// Row is one test of one instance.
type Row struct {
	Model    string    `json:"model"`
	Arch     string    `json:"model_type"`
	Size     int64     `json:"model_size"`
	Params   int64     `json:"model_n_params"`
	Mode     Mode      `json:"mode"`
	AMX      string    `json:"amx"`
	NGL      int       `json:"n_gpu_layers"`
	Threads  int       `json:"n_threads"`
	Test     string    `json:"test"` // "pp512", "tg128"
	NPrompt  int       `json:"n_prompt"`
	NGen     int       `json:"n_gen"`
	Ctx      int       `json:"n_ctx"`
	Batch    int       `json:"n_batch"`
	TypeK    string    `json:"type_k"` // the KV cache's element type, as llama-bench names it ("f32", "f16")
	TypeV    string    `json:"type_v"`
	Kernel   string    `json:"cpu_kernels"`       // the matrix kernels that ran, most time first ("amx-int8+avx512-vnni"); "" when the row did not run
	Skipped  string    `json:"skipped,omitempty"` // why this row was not measured
	Partial  bool      `json:"partial,omitempty"` // interrupted: fewer repetitions than asked
	When     time.Time `json:"test_time"`
	Samples  []int64   `json:"samples_ns"` // wall time of each repetition
	SamplesT []float64 `json:"samples_ts"` // tokens per second of each repetition
	AvgNs    float64   `json:"avg_ns"`
	SDNs     float64   `json:"stddev_ns"`
	AvgTs    float64   `json:"avg_ts"`
	SDTs     float64   `json:"stddev_ts"`
	// CPUs is the CPUs the process kept busy during the repetitions, on average (its CPU time over their wall
	// time): about Threads when the workers got their CPUs.
	CPUs float64 `json:"cpus_used,omitempty"`
	// MajorFaults counts the page faults of the repetitions that read from disk (weights not in the page cache).
	MajorFaults int64 `json:"major_faults,omitempty"`
	// Warning says why the timings may mislead (a process short of CPU, weights read from disk); "" when nothing
	// was noticed.
	Warning string `json:"warning,omitempty"`
}

// Result is every row, and where they were measured.
type Result struct {
	Env  Env   `json:"env"`
	Rows []Row `json:"results"`
}

// Env describes the machine and build, so saved results say where they came from.
type Env struct {
	CPU       string    `json:"cpu_info"`
	CPUs      int       `json:"n_cpus"`
	GoVersion string    `json:"go_version"`
	Commit    string    `json:"build_commit"`
	Kernels   string    `json:"cpu_kernels"`
	Start     time.Time `json:"start"`
}

// Progress is reported after every repetition (Rep counts from 1; Rep 0 is the warm-up) and for every skipped row.
type Progress struct {
	Row     *Row
	Rep     int
	Of      int
	Elapsed time.Duration
	// Load, when not nil, reports a model load converting weights (AMX repacking) instead of a repetition;
	// Row is nil then.
	Load *LoadProgress
}

// LoadProgress is how far one instance's model load has come with the weights its buffer types convert: GGUF
// bytes done of total (model.Options.Progress).
type LoadProgress struct {
	Mode        Mode
	AMX         string
	Threads     int
	Done, Total int64
}

// Run measures every combination the config asks for. progress (may be nil) hears about each repetition. When
// ctx is cancelled, Run stops within one evaluation and returns what it measured so far, the interrupted row
// marked Partial, with ctx's error.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f := cfg.File
	if f == nil {
		if f, err = gguf.Open(cfg.Model); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	if cfg.Model == "" {
		cfg.Model = f.Path()
	}
	res := &Result{Env: Env{CPU: cpuName(), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Commit: buildinfo.Commit(),
		Kernels: simd.Variant(), Start: time.Now()}}
	info := describe(f, cfg.Model)
	for _, in := range cfg.instances(f) {
		if err := runInstance(ctx, cfg, f, info, in, res, progress); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.File == nil && cfg.Model == "" {
		return cfg, errors.New("bench: no model given")
	}
	if cfg.Reps == 0 {
		cfg.Reps = 5
	}
	if cfg.Reps < 0 {
		return cfg, fmt.Errorf("bench: repetitions %d must be positive", cfg.Reps)
	}
	for _, p := range cfg.Prompt {
		if p < 0 {
			return cfg, fmt.Errorf("bench: prompt size %d is negative", p)
		}
	}
	for _, n := range cfg.Gen {
		if n < 0 {
			return cfg, fmt.Errorf("bench: generation length %d is negative", n)
		}
	}
	if cfg.KV != tensor.F32 && cfg.KV != tensor.F16 {
		return cfg, fmt.Errorf("bench: a KV cache of %s: the cache holds f32 or f16", cfg.KV)
	}
	if len(cfg.Threads) == 0 {
		cfg.Threads = []int{pool.DefaultThreads()}
	}
	for _, t := range cfg.Threads {
		if t <= 0 {
			return cfg, fmt.Errorf("bench: thread count %d must be positive", t)
		}
	}
	for _, n := range cfg.NGL {
		if n < 0 {
			return cfg, fmt.Errorf("bench: ngl %d is negative", n)
		}
	}
	if len(cfg.Modes) == 0 {
		cfg.Modes = []Mode{CPU}
	}
	switch cfg.AMX {
	case "":
		cfg.AMX = placement.AMXAll
	case placement.AMXAll, placement.AMXAttn:
	default:
		return cfg, fmt.Errorf("bench: amx policy %q is not all or attn", cfg.AMX)
	}
	if cfg.Setup == nil {
		cfg.Setup = CPUOnly
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1234
	}
	if len(nonZero(cfg.Prompt))+len(nonZero(cfg.Gen)) == 0 {
		return cfg, errors.New("bench: no tests: give a prompt size (-p) or a generation length (-n) above 0")
	}
	return cfg, nil
}

func nonZero(xs []int) []int {
	var out []int
	for _, x := range xs {
		if x > 0 {
			out = append(out, x)
		}
	}
	return out
}

// instances expands modes × threads × ngl (ngl only for GPU modes), in llama-bench's nesting order.
func (cfg Config) instances(f *gguf.File) []Instance {
	var out []Instance
	for _, m := range cfg.Modes {
		ngls := []int{0}
		if m.GPU() {
			ngls = cfg.NGL
			if len(ngls) == 0 {
				ngls = []int{defaultNGL(f)}
			}
		}
		amx := placement.AMXOff
		if m.AMX() {
			amx = cfg.AMX
		}
		for _, t := range cfg.Threads {
			for _, n := range ngls {
				out = append(out, Instance{Mode: m, Threads: t, NGL: n, AMX: amx})
			}
		}
	}
	return out
}

// defaultNGL is a quarter of the layers, as the seed offloaded 12 of 48.
func defaultNGL(f *gguf.File) int {
	arch := f.Architecture()
	if n, ok := f.Uint(arch + ".block_count"); ok {
		return max(1, int(n)/4)
	}
	return 1
}

type modelInfo struct {
	name, arch   string
	size, params int64
	vocab        int
}

func describe(f *gguf.File, name string) modelInfo {
	mi := modelInfo{name: name, arch: f.Architecture()}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		mi.size += t.Size
		mi.params += t.Elems()
		if t.Name == "token_embd.weight" {
			mi.vocab = t.Ne[1]
		}
	}
	if ft := fileType(f); ft != "" {
		mi.arch += " " + ft
	}
	return mi
}

// fileType names the dominant weight type ("Q4_0"), as llama-bench's model_type column does.
func fileType(f *gguf.File) string {
	bytes := map[string]int64{}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.NDims >= 2 {
			bytes[strings.ToUpper(t.Type.String())] += t.Size
		}
	}
	best, bb := "", int64(-1)
	for n, b := range bytes {
		if b > bb || b == bb && n < best {
			best, bb = n, b
		}
	}
	return best
}

// tests lists an instance's tests: every prompt size, then every generation length.
func (cfg Config) tests() [][2]int {
	var out [][2]int
	for _, p := range nonZero(cfg.Prompt) {
		out = append(out, [2]int{p, 0})
	}
	for _, n := range nonZero(cfg.Gen) {
		out = append(out, [2]int{0, n})
	}
	return out
}

func runInstance(ctx context.Context, cfg Config, f *gguf.File, info modelInfo, in Instance, res *Result, progress func(Progress)) error {
	tests := cfg.tests()
	newRow := func(t [2]int) Row {
		r := Row{Model: info.name, Arch: info.arch, Size: info.size, Params: info.params, Mode: in.Mode, AMX: in.AMX,
			NGL: in.NGL, Threads: in.Threads, NPrompt: t[0], NGen: t[1], Ctx: t[0] + t[1], Batch: max(t[0], 1),
			TypeK: cfg.KV.String(), TypeV: cfg.KV.String(), When: time.Now()}
		if t[0] > 0 {
			r.Test = fmt.Sprintf("pp%d", t[0])
		} else {
			r.Test = fmt.Sprintf("tg%d", t[1])
		}
		return r
	}
	skipAll := func(why string) {
		for _, t := range tests {
			r := newRow(t)
			r.Skipped = why
			res.Rows = append(res.Rows, r)
			if progress != nil {
				progress(Progress{Row: &res.Rows[len(res.Rows)-1]})
			}
		}
	}
	p := pool.New(in.Threads)
	defer p.Close()
	reg := backend.NewRegistry()
	skip, err := cfg.Setup(in, reg, p)
	if err != nil {
		return fmt.Errorf("bench: setting up %s: %w", in.Mode, err)
	}
	if skip != "" {
		skipAll(skip)
		return nil
	}
	// The CPU backend shares the pool with whatever Setup registered; it goes last, so accelerators see ops first.
	reg.AddBufferType(cpu.BufferType())
	reg.AddBackend(cpu.New(p, cpu.Options{}))
	maxCtx, maxBatch := 1, 1
	for _, t := range tests {
		maxCtx, maxBatch = max(maxCtx, t[0]+t[1]), max(maxBatch, t[0])
	}
	var onLoad func(done, total int64)
	if progress != nil {
		onLoad = func(done, total int64) {
			progress(Progress{Load: &LoadProgress{Mode: in.Mode, AMX: in.AMX, Threads: in.Threads, Done: done, Total: total}})
		}
	}
	m, err := model.Load(f, model.Options{
		Placement: placement.Options{AMX: in.AMX, NGL: in.NGL, GPU: in.Mode.GPU()},
		Registry:  reg, Threads: in.Threads, Ctx: maxCtx, Batch: maxBatch, KV: cfg.KV, Progress: onLoad,
	})
	if err != nil {
		return fmt.Errorf("bench: loading %s for %s: %w", info.name, in.Mode, err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(in.Threads)))
	vocab := m.Hyper.Vocab
	for _, t := range tests {
		res.Rows = append(res.Rows, newRow(t))
		row := &res.Rows[len(res.Rows)-1]
		row.Ctx = maxCtx
		tokens := make([]int32, max(t[0], 1))
		run := func(warm bool) (time.Duration, error) {
			m.Reset()
			for i := range tokens {
				tokens[i] = int32(rng.IntN(vocab))
			}
			start := time.Now()
			if t[0] > 0 {
				if _, err := m.Eval(ctx, tokens); err != nil {
					return 0, err
				}
			}
			gen := t[1]
			if warm && gen > 0 {
				gen = 1 // llama-bench warms generation with one token
			}
			for i := 0; i < gen; i++ {
				if _, err := m.Eval(ctx, tokens[:1]); err != nil {
					return 0, err
				}
				tokens[0] = int32(rng.IntN(vocab))
			}
			return time.Since(start), nil
		}
		// The kernels a row reports are those its own pass ran, read from a profile of the warm-up (or, without
		// one, of the first repetition): a cpu+amx row may run AMX tiles for prompts and VNNI for single tokens.
		kernels := &profile.Recorder{}
		m.Sched.Profile = kernels
		if !cfg.NoWarm {
			d, err := run(true)
			m.Sched.Profile = nil
			row.Kernel = matrixKernels(kernels.Records)
			if err != nil {
				return interrupted(ctx, row, err)
			}
			if progress != nil {
				progress(Progress{Row: row, Rep: 0, Of: cfg.Reps, Elapsed: d})
			}
		}
		var cpuTime, wall time.Duration
		for rep := 1; rep <= cfg.Reps; rep++ {
			c0, f0 := ProcessUsage()
			d, err := run(false)
			if c1, f1 := ProcessUsage(); c0 > 0 && err == nil {
				cpuTime, wall = cpuTime+c1-c0, wall+d
				row.CPUs = cpuTime.Seconds() / wall.Seconds()
				row.MajorFaults += f1 - f0
				row.Warning = strings.Join(nonEmpty(shortOfCPU(row.Threads, row.CPUs), ReadFromDisk(row.MajorFaults)), "; ")
			}
			if m.Sched.Profile != nil {
				m.Sched.Profile = nil
				row.Kernel = matrixKernels(kernels.Records)
			}
			if err != nil {
				return interrupted(ctx, row, err)
			}
			row.Samples = append(row.Samples, d.Nanoseconds())
			row.SamplesT = append(row.SamplesT, float64(t[0]+t[1])/d.Seconds())
			row.summarize()
			if progress != nil {
				progress(Progress{Row: row, Rep: rep, Of: cfg.Reps, Elapsed: d})
			}
		}
	}
	return nil
}

// matrixKernels names the kernels that ran the matrix ops (MUL_MAT, MUL_MAT_ID and the fused MUL_MAT_* ops that
// carry most of a decode step's products), most time first, joined by "+"; the other ops run the same kernels in
// every mode and would only hide the difference.
func matrixKernels(recs []profile.Record) string {
	spent := map[string]time.Duration{}
	var names []string
	for _, r := range recs {
		if !strings.HasPrefix(r.Op, "MUL_MAT") {
			continue
		}
		if _, ok := spent[r.Kernel]; !ok {
			names = append(names, r.Kernel)
		}
		spent[r.Kernel] += r.Time
	}
	sort.SliceStable(names, func(i, j int) bool { return spent[names[i]] > spent[names[j]] })
	return strings.Join(names, "+")
}

// interrupted marks a row cut short by ctx and passes on the error; any other error is the model's.
func interrupted(ctx context.Context, row *Row, err error) error {
	if ctx.Err() != nil {
		row.Partial = true
		return ctx.Err()
	}
	return fmt.Errorf("bench: %s %s: %w", row.Mode, row.Test, err)
}

// summarize recomputes mean and sample standard deviation (n-1, as llama-bench) from the samples.
func (r *Row) summarize() {
	r.AvgNs, r.SDNs = meanSD(func(i int) float64 { return float64(r.Samples[i]) }, len(r.Samples))
	r.AvgTs, r.SDTs = meanSD(func(i int) float64 { return r.SamplesT[i] }, len(r.SamplesT))
}

func meanSD(at func(int) float64, n int) (mean, sd float64) {
	if n == 0 {
		return 0, 0
	}
	for i := 0; i < n; i++ {
		mean += at(i)
	}
	mean /= float64(n)
	if n < 2 {
		return mean, 0
	}
	var ss float64
	for i := 0; i < n; i++ {
		d := at(i) - mean
		ss += d * d
	}
	return mean, math.Sqrt(ss / float64(n-1))
}

// nonEmpty keeps the non-empty strings.
func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
