//go:build amxdevice

// The accelerator machine's figures: peak tile rates, the tile-configuration sweep, GEMM rates at the issue's
// shapes, where a GEMM's time goes (tasks: task shapes and the activations' buffers; core: quantization alone
// and the kernel on one core), MUL_MAT_ID against the non-AMX paths, small batches against CPU mode
// (cache-resident and from memory, as decode reads them), and the calibration. Built only with -tags amxdevice
// (scripts/device-amx.sh does), since the shapes are far too large for CI.
package amx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tilelab/engine/cpu"
	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

type report struct{ b strings.Builder }

func (r *report) printf(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	r.b.WriteString(s)
	fmt.Print(s)
}

func (r *report) save() {
	if dir := os.Getenv("OUT"); dir != "" {
		_ = os.WriteFile(dir+"/amx-figures.md", []byte(r.b.String()), 0o644)
	}
}

func repack(plain *graph.Tensor, group int) (*graph.Tensor, error) {
	w := &graph.Tensor{Name: plain.Name, Type: plain.Type, Ne: plain.Ne, Layout: tensor.Plain, Data: append([]byte(nil), plain.Data...)}
	return w, (&BufferType{Group: group}).Import(w)
}

func TestDeviceFigures(t *testing.T) {
	needAMX(t)
	p := pool.New(0)
	defer p.Close()
	rep := &report{}
	defer rep.save()
	rep.printf("# AMX figures, %s, %d threads, %s\n\n", cpuModel(), p.Threads(), time.Now().UTC().Format(time.RFC3339))

	i8, bf, err := Peak(p)
	if err != nil {
		t.Fatal(err)
	}
	rep.printf("peak (tight 2x2 tile loop): int8 %.2f TOPS, bf16 %.2f TFLOPS\n\n", i8, bf)

	only := os.Getenv("AMX_FIGURES") // comma list of sections; empty = all
	want := func(s string) bool { return only == "" || strings.Contains(","+only+",", ","+s+",") }
	for _, s := range strings.Split(only, ",") {
		if s != "" && !strings.Contains(",sweep,gemm,tasks,core,pipe,order,bf16,moe,small,decode,calibrate,", ","+s+",") {
			t.Fatalf("AMX_FIGURES: unknown section %q (sections: sweep gemm tasks core pipe order bf16 moe small decode calibrate)", s)
		}
	}

	if want("pipe") {
		pipeFigures(t, rep, p, i8)
	}
	if want("order") {
		orderFigures(t, rep, p, i8)
	}
	if want("bf16") {
		bf16Figures(t, rep, p, bf)
	}

	if want("sweep") {
		var cfgs []TileConfig
		for _, a := range [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}} {
			for _, g := range []int{32, 256, 512, 1024, 0} {
				cfgs = append(cfgs, TileConfig{Rows: 16, KStep: 64, MT: a[0], NT: a[1], Group: g})
			}
		}
		cfgs = append(cfgs, TileConfig{Rows: 16, KStep: 32, MT: 2, NT: 2, Group: 512}, TileConfig{Rows: 8, KStep: 64, MT: 2, NT: 2, Group: 512})
		rows, err := Sweep(p, tensor.Q8_0, 512, 2048, 4096, cfgs, 5)
		if err != nil {
			t.Fatal(err)
		}
		var bcfg []TileConfig
		for _, a := range [][2]int{{2, 2}, {1, 4}, {4, 1}, {1, 2}, {2, 1}} {
			bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 64, MT: a[0], NT: a[1]})
		}
		bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 32, MT: 2, NT: 2}, TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 2, Chunk: 256})
		for _, ch := range []int{256, 512} {
			bcfg = append(bcfg, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Chunk: ch}, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Chunk: ch})
		}
		brows, err := Sweep(p, tensor.BF16, 512, 2048, 4096, bcfg, 5)
		if err != nil {
			t.Fatal(err)
		}
		rep.printf("## Tile-configuration sweep (MUL_MAT 512x2048x4096, interleaved rounds, medians)\n\n%s\n", SweepTable(append(rows, brows...)))
	}

	if want("gemm") {
		var lines []string
		cases := []struct {
			typ tensor.DType
			cfg TileConfig
		}{
			{tensor.Q8_0, DefaultConfig},
			{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32}},
			{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Group: 512}},
			{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 2, Group: 0}},
			{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 0}},
			{tensor.BF16, DefaultConfigBF16},
			{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1}},
			{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2}},
		}
		for _, sh := range [][3]int{{4096, 4096, 4096}, {512, 2048, 4096}} {
			for _, typ := range []tensor.DType{tensor.Q8_0, tensor.BF16} {
				var cfgs []TileConfig
				for _, c := range cases {
					if c.typ == typ {
						cfgs = append(cfgs, c.cfg)
					}
				}
				rows, err := Sweep(p, typ, sh[0], sh[1], sh[2], cfgs, 3)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range rows {
					lines = append(lines, fmt.Sprintf("| %s | %s | %s | %.2f | %.2f |", r.Type, r.Shape, r.Kernel, r.Seconds*1e3, r.TOPS))
				}
			}
		}
		// The tight loop measured again after the GEMMs: a neighbour's load during one measurement of the peak
		// would otherwise inflate every share below. The shares use the larger of the two.
		i8b, bfb, err := Peak(p)
		if err != nil {
			t.Fatal(err)
		}
		i8, bf = max(i8, i8b), max(bf, bfb)
		rep.printf("## GEMM at the issue's shapes\n\nPeak measured again after these GEMMs: int8 %.2f TOPS, bf16 %.2f TFLOPS; shares are of the larger of the two measurements (int8 %.2f, bf16 %.2f).\n\n", i8b, bfb, i8, bf)
		rep.printf("| type | shape | config | ms | rate | %% of peak |\n|---|---|---|---|---|---|\n")
		for _, l := range lines {
			f := strings.Split(l, " | ")
			rate, _ := strconv.ParseFloat(strings.TrimSuffix(f[len(f)-1], " |"), 64)
			peak := i8
			if strings.HasPrefix(l, "| bf16") {
				peak = bf
			}
			rep.printf("%s %.0f%% |\n", l, 100*rate/peak)
		}
		rep.printf("\n")
	}

	if want("tasks") {
		taskShapes(t, rep, p, i8, bf)
	}
	if want("core") {
		coreFigures(t, rep)
	}

	cpuBackend := cpu.New(p, cpu.Options{})
	// The calibration runs before the sections that use the AMX backend's own dispatch, which then use its
	// thresholds (stored calibrations of the machine are not read: this run's is the one measured beside them).
	t.Setenv("TILELAB_AMX_CALIBRATION", t.TempDir()+"/amx-calibration.json")
	if want("calibrate") {
		c, err := Calibrate(p, TileConfig{})
		if err != nil {
			t.Fatal(err)
		}
		rep.printf("## Calibration\n\n```\n%s```\n", c.Table())
		if _, err := c.Save(); err != nil {
			t.Fatal(err)
		}
	}
	if want("moe") {
		rep.printf("## MUL_MAT_ID: 128 experts, 8 used, 512 tokens (q4_0)\n\n| projection | K x N | AMX tiles | ms | avx512-vnni (same packing) ms | CPU backend (plain q4_0) ms | vs vnni | vs CPU |\n|---|---|---|---|---|---|---|---|\n")
		var loaded []string // the AMX backend as a model gets it: default dispatch, plain bytes kept
		for _, pr := range []struct {
			name   string
			k, n   int
			shared bool
		}{{"gate/up", 2048, 768, true}, {"down", 768, 2048, false}} {
			r := rand.New(rand.NewPCG(21, uint64(pr.k)))
			plain := RandomWeight(tensor.Q4_0, pr.k, pr.n, 128, r)
			op := RandomMulMatID(plain, 512, 8, pr.shared, r)
			dc, _, err := timeBackend(cpuBackend, op, 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, cfg := range []TileConfig{DefaultConfig, {Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32}} {
				w, err := repack(plain, cfg.Group)
				if err != nil {
					t.Fatal(err)
				}
				op.Src[0] = w
				tiles, _ := NewBackend(p, Options{Config: cfg, Threshold: 1})
				vec, _ := NewBackend(p, Options{Config: cfg, Threshold: 1 << 30})
				dt, kt, err := TimeOp(tiles, op, 5)
				if err != nil {
					t.Fatal(err)
				}
				dv, _, err := TimeOp(vec, op, 5)
				if err != nil {
					t.Fatal(err)
				}
				rep.printf("| %s | %dx%d | %s | %.2f | %.2f | %.2f | %.2fx | %.2fx |\n", pr.name, pr.k, pr.n, kt, dt.Seconds()*1e3,
					dv.Seconds()*1e3, dc.Seconds()*1e3, dv.Seconds()/dt.Seconds(), dc.Seconds()/dt.Seconds())
			}
			kept := &graph.Tensor{Name: plain.Name, Type: plain.Type, Ne: plain.Ne, Layout: tensor.Plain, Data: plain.Data}
			if err := (&BufferType{Group: DefaultConfig.Group, Plain: PlainAlways}).Import(kept); err != nil {
				t.Fatal(err)
			}
			op.Src[0] = kept
			ab, _ := NewBackend(p, Options{})
			dl, kl, err := TimeOp(ab, op, 5)
			if err != nil {
				t.Fatal(err)
			}
			loaded = append(loaded, fmt.Sprintf("| %s | %dx%d | %d (%s) | %s | %.2f | %.2f | %.2fx |", pr.name, pr.k, pr.n, ab.Threshold,
				ab.ThresholdSource, kl, dl.Seconds()*1e3, dc.Seconds()*1e3, dc.Seconds()/dl.Seconds()))
			op.Src[0] = plain
		}
		rep.printf("\nThe AMX backend with its own dispatch (plain bytes kept, as for a loaded model; experts below the threshold on CPU mode's kernel):\n\n| projection | K x N | threshold | kernels | ms | CPU backend ms | vs CPU |\n|---|---|---|---|---|---|---|\n%s\n", strings.Join(loaded, "\n"))
		rep.printf("\n")
	}

	if want("small") {
		// Cache-resident (2.3 MiB of q4_0): the AMX backend as a model gets it (plain bytes of a mapped file kept)
		// and packed only (the VNNI path below the threshold), against CPU mode.
		rep.printf("## Small batches, cache-resident: q4_0 MUL_MAT N=K=2048\n\n")
		smallBatches(t, rep, p, cpuBackend, 2048, 1, []int{1, 2, 4, 8, 16, 32, 64, 128, 512})
	}

	if want("decode") {
		// Memory-bound, as decode is: 16 weights of 4096x4096 (144 MiB of q4_0, 265 MiB packed) in turn.
		rep.printf("## Small batches from memory: q4_0 MUL_MAT N=K=4096, 16 weights in turn (per-op time)\n\n")
		smallBatches(t, rep, p, cpuBackend, 4096, 16, []int{1, 2, 4, 8, 16, 24, 32, 48, 64})
	}

}

// smallBatches times MUL_MAT over copies q4_0 weights of N = K = size, one op per weight in turn, on the AMX
// backend with plain bytes kept (weights mapped from a file, as gguf.Open gives them: the default buffer type
// keeps a view), on the AMX backend with the packing only, and on the CPU backend over the same mapped bytes.
func smallBatches(t *testing.T, rep *report, p *pool.Pool, cpuBackend *cpu.Backend, size, copies int, ms []int) {
	r := rand.New(rand.NewPCG(5, uint64(size)))
	var file []byte
	var plains []*graph.Tensor
	for i := 0; i < copies; i++ {
		w := RandomWeight(tensor.Q4_0, size, size, 1, r)
		plains = append(plains, w)
		file = append(file, w.Data...)
	}
	mapped := mapFile(t, file)
	var cpuW, keptW, packedW []*graph.Tensor
	for i, w := range plains {
		data := mapped[i*len(w.Data) : (i+1)*len(w.Data)]
		cw := &graph.Tensor{Name: w.Name, Type: w.Type, Ne: w.Ne, Layout: tensor.Plain, Data: data}
		kw := &graph.Tensor{Name: w.Name, Type: w.Type, Ne: w.Ne, Layout: tensor.Plain, Data: data}
		if err := NewBufferType().Import(kw); err != nil {
			t.Fatal(err)
		}
		if kw.Extra.(*weights).plain == nil {
			t.Fatal("the default buffer type did not keep the plain bytes of a mapped file")
		}
		pw, err := repack(w, DefaultConfig.Group)
		if err != nil {
			t.Fatal(err)
		}
		cpuW, keptW, packedW = append(cpuW, cw), append(keptW, kw), append(packedW, pw)
	}
	ab, _ := NewBackend(p, Options{})
	rep.printf("AMX threshold %d (%s).\n\n| m | AMX, plain kept ms | kernel | AMX, packed only ms | kernel | CPU backend ms | kept / CPU | packed only / CPU |\n|---|---|---|---|---|---|---|---|\n",
		ab.Threshold, ab.ThresholdSource)
	for _, m := range ms {
		op := RandomMulMat(plains[0], m, r)
		dc, _, err := timeRotating(cpuBackend, op, cpuW, 9)
		if err != nil {
			t.Fatal(err)
		}
		dk, kk, err := timeRotating(ab, op, keptW, 9)
		if err != nil {
			t.Fatal(err)
		}
		dp, kp, err := timeRotating(ab, op, packedW, 9)
		if err != nil {
			t.Fatal(err)
		}
		rep.printf("| %d | %.3f | %s | %.3f | %s | %.3f | %.2f | %.2f |\n", m, dk.Seconds()*1e3, kk, dp.Seconds()*1e3, kp,
			dc.Seconds()*1e3, dk.Seconds()/dc.Seconds(), dp.Seconds()/dc.Seconds())
	}
	rep.printf("\n")
}

// timeRotating runs op on each weight in turn, reps times after one warm-up pass, and returns the median time
// per op of the passes.
func timeRotating(b interface {
	Compute(*graph.Op) (string, error)
}, op *graph.Op, ws []*graph.Tensor, reps int) (time.Duration, string, error) {
	var name string
	var ts []time.Duration
	for i := -1; i < reps; i++ {
		t0 := time.Now()
		for _, w := range ws {
			op.Src[0] = w
			var err error
			if name, err = b.Compute(op); err != nil {
				return 0, "", err
			}
		}
		if i >= 0 {
			ts = append(ts, time.Since(t0)/time.Duration(len(ws)))
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts[len(ts)/2], name, nil
}

// timeBackend is TimeOp for any backend.
func timeBackend(b interface {
	Compute(*graph.Op) (string, error)
}, op *graph.Op, reps int) (time.Duration, string, error) {
	name, err := b.Compute(op)
	if err != nil {
		return 0, "", err
	}
	var ts []time.Duration
	for i := 0; i < reps; i++ {
		t0 := time.Now()
		if _, err := b.Compute(op); err != nil {
			return 0, "", err
		}
		ts = append(ts, time.Since(t0))
	}
	for i := range ts {
		for j := i + 1; j < len(ts); j++ {
			if ts[j] < ts[i] {
				ts[i], ts[j] = ts[j], ts[i]
			}
		}
	}
	return ts[len(ts)/2], name, nil
}

// taskShapes times GEMMs at the 512x2048x4096 shape and 4096³ under several task sizes (bytes of
// activation and weight rows per task), task counts per worker, quantization overlapped with the tiles or not,
// in interleaved rounds; without overlap it splits the time into activation quantization and tile work.
func taskShapes(t *testing.T, rep *report, p *pool.Pool, peak8, peak16 float64) {
	type variant struct {
		typ           tensor.DType
		cfg           TileConfig
		bytes, spread int
		overlap       bool
		buffers       int
		split         bool // each worker's last task halved
	}
	rep.printf("## Where the GEMM's time goes: task sizes, quantization separate or overlapped, activation buffers in turn\n\n")
	rep.printf("| shape | type | config | tasks | quantization | buffers | ms | rate | %% of peak | quantize ms | tiles ms | busiest worker ms | mean worker ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sh := range [][3]int{{512, 2048, 4096}, {4096, 4096, 4096}} {
		m, n, k := sh[0], sh[1], sh[2]
		var vs []variant
		for _, c := range []struct {
			typ tensor.DType
			cfg TileConfig
		}{{tensor.Q8_0, DefaultConfig}, {tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Group: 512}}, {tensor.BF16, DefaultConfigBF16},
			{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2}}, {tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1}},
			{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 2}}} {
			by := 1 << 20
			if m > 512 {
				by = 2 << 20
			}
			// Each configuration with the quantization in a section of its own; the two defaults also with the
			// quantization overlapped with the tiles.
			vs = append(vs, variant{c.typ, c.cfg, by, 2, false, actRing, false})
			if c.cfg == DefaultConfig || c.cfg == DefaultConfigBF16 {
				vs = append(vs, variant{c.typ, c.cfg, by, 2, true, actRing, false}, variant{c.typ, c.cfg, by, 2, true, actRing, true},
					variant{c.typ, c.cfg, by, 2, false, actRing, true})
			}
		}
		weightsOf := map[tensor.DType]*graph.Tensor{}
		ops := map[tensor.DType]*graph.Op{}
		for _, typ := range []tensor.DType{tensor.Q8_0, tensor.BF16} {
			r := rand.New(rand.NewPCG(11, 12))
			plain := RandomWeight(typ, k, n, 1, r)
			ops[typ] = RandomMulMat(plain, m, r)
			g := DefaultConfig.Group
			if typ == tensor.BF16 {
				g = 0
			}
			w, err := repack(plain, g)
			if err != nil {
				t.Fatal(err)
			}
			weightsOf[typ] = w
		}
		backends := make([]*Backend, len(vs))
		for i, v := range vs {
			cfg := v.cfg
			b, err := NewBackend(p, Options{Config: cfg, Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.taskBytes, b.eng.spread, b.eng.buffers, b.eng.splitTail = v.bytes, v.spread, v.buffers, v.split
			b.eng.overlapBelow = 0
			if v.overlap {
				b.eng.overlapBelow = math.MaxInt
			}
			backends[i] = b
		}
		run := func(i int) error {
			op := ops[vs[i].typ]
			op.Src[0] = weightsOf[vs[i].typ]
			_, err := backends[i].Compute(op)
			return err
		}
		for i, b := range backends { // a warm-up each (every buffer of the ring), then the timed rounds with the section split recorded
			for j := 0; j < actRing; j++ {
				if err := run(i); err != nil {
					t.Fatal(err)
				}
			}
			b.eng.timing = true
		}
		rounds := 10 // the machine's speed drifts: many interleaved rounds, so the medians compare the variants
		if m > 512 {
			rounds = 3
		}
		medians, err := interleavedMedians(len(vs), rounds, run)
		if err != nil {
			t.Fatal(err)
		}
		// As in the gemm section: shares are of the larger of the peak measured before and after the timings.
		if i8b, bfb, err := Peak(p); err == nil {
			peak8, peak16 = max(peak8, i8b), max(peak16, bfb)
		}
		for i, v := range vs {
			d := medians[i]
			rate := 2 * float64(m*n) * float64(k) / d.Seconds() / 1e12
			peak := peak8
			if v.typ == tensor.BF16 {
				peak = peak16
			}
			runs := float64(3 * rounds)
			e := backends[i].eng
			tasks := fmt.Sprintf("%d KiB rectangles, %d a worker", v.bytes>>10, v.spread)
			if v.split {
				tasks += ", last halved"
			}
			mode := "separate"
			if v.overlap {
				mode = "overlapped"
			}
			rep.printf("| %dx%dx%d | %s | %s | %s | %s | %d | %.3f | %.2f | %.0f%% | %.3f | %.3f | %.3f | %.3f |\n", m, n, k, v.typ, v.cfg,
				tasks, mode, v.buffers, d.Seconds()*1e3, rate, 100*rate/peak,
				e.prepTime.Seconds()*1e3/runs, e.tileTime.Seconds()*1e3/runs, e.busyMost.Seconds()*1e3/runs, e.busyMean.Seconds()*1e3/runs)
		}
	}
	rep.printf("\n(quantize and tiles: means of the same runs whose median is in ms; with overlap the two share one section, all of it under tiles; busiest and mean worker: time in tile tasks per call; shares of the larger peak measured, finally int8 %.2f TOPS, bf16 %.2f TFLOPS)\n\n", peak8, peak16)
}

// coreFigures separates the two costs of the int8 GEMM at 512x2048x4096: the activations' quantization alone
// (a weight of 64 columns, so the tiles cost little) at 1 to 16 threads, with the same activations every call
// and with four sets in turn (32 MB, which no core's L2 holds); and the tile kernel on one core with its operands
// in cache, against the one-core peak, for several arrangements and groups.
func coreFigures(t *testing.T, rep *report) {
	rep.printf("## Quantization alone: 512x4096 float32 activations (8 MiB) to int8 tile order\n\n| threads | activations | between calls | ms | GB/s of float32 read |\n|---|---|---|---|---|\n")
	r := rand.New(rand.NewPCG(31, 32))
	plain := RandomWeight(tensor.Q8_0, 4096, 64, 1, r)
	w, err := repack(plain, DefaultConfig.Group)
	if err != nil {
		t.Fatal(err)
	}
	var ops []*graph.Op
	for i := 0; i < 4; i++ {
		op := RandomMulMat(plain, 512, r)
		op.Src[0] = w
		ops = append(ops, op)
	}
	for _, th := range []int{1, 4, 16} {
		p := pool.New(th)
		b, err := NewBackend(p, Options{Threshold: 1})
		if err != nil {
			t.Fatal(err)
		}
		// One activation buffer: the experiment is about rewriting the buffer the workers have just read, which
		// the engine's ring of buffers avoids.
		b.eng.overlapBelow, b.eng.buffers = 0, 1
		ws := make([]workspace, th)
		sinks := make([]int, 16*th)
		readAll := func(w int) { // every quantized byte's line, as a wide GEMM's tile tasks read them
			q, s := b.eng.act8.Q, 0
			for i := 0; i < len(q); i += 64 {
				s += int(q[i])
			}
			sinks[16*w] += s
		}
		runTiles := func(w int) { peakCall(&ws[w], true, 2000) }
		// What runs between two quantizations: nothing; every worker reading every quantized byte (leaving each
		// line shared by many cores); every worker running tiles for a while (a GEMM's tile section, for the
		// frequency it leaves the core at); both.
		between := []struct {
			name string
			fn   func()
		}{
			{"nothing", nil},
			{"all read the result", func() { p.Run(th, func(_, w int) { readAll(w) }) }},
			{"all run tiles", func() { p.Run(th, func(_, w int) { runTiles(w) }) }},
			{"both", func() { p.Run(th, func(_, w int) { runTiles(w); readAll(w) }) }},
		}
		for _, bt := range between {
			for _, rot := range []int{1, 4} {
				const calls = 24
				var total time.Duration
				for i := 0; i < calls+4; i++ {
					if bt.fn != nil {
						bt.fn()
					}
					b.eng.timing, b.eng.prepTime = true, 0
					if _, err := b.Compute(ops[i%rot]); err != nil {
						t.Fatal(err)
					}
					if i >= 4 {
						total += b.eng.prepTime
					}
				}
				b.eng.timing = false
				d := total.Seconds() / calls
				what := "the same"
				if rot > 1 {
					what = "4 sets in turn"
				}
				rep.printf("| %d | %s | %s | %.3f | %.1f |\n", th, what, bt.name, d*1e3, 8*1024*1024/d/1e9)
			}
		}
		p.Close()
	}

	p1 := pool.New(1)
	defer p1.Close()
	i8, _, err := Peak(p1)
	if err != nil {
		t.Fatal(err)
	}
	rep.printf("\n## The int8 tile kernel on one core, operands in cache (tiles only, quantization timed apart)\n\nOne-core peak (tight 2x2 loop): %.3f TOPS\n\n| shape | config | tiles ms | TOPS | %% of one-core peak |\n|---|---|---|---|---|\n", i8)
	for _, sh := range [][3]int{{64, 128, 4096}, {128, 256, 4096}} {
		m, n, k := sh[0], sh[1], sh[2]
		plain := RandomWeight(tensor.Q8_0, k, n, 1, r)
		op := RandomMulMat(plain, m, r)
		for _, cfg := range []TileConfig{
			{Rows: 16, KStep: 64, MT: 1, NT: 2, Group: 512}, {Rows: 16, KStep: 64, MT: 1, NT: 2, Group: 0},
			{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 512}, {Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 0},
			{Rows: 16, KStep: 64, MT: 2, NT: 1, Group: 512}, {Rows: 16, KStep: 64, MT: 1, NT: 4, Group: 512},
			{Rows: 16, KStep: 64, MT: 4, NT: 1, Group: 512}, {Rows: 16, KStep: 64, MT: 1, NT: 1, Group: 512},
		} {
			w, err := repack(plain, cfg.Group)
			if err != nil {
				t.Fatal(err)
			}
			op.Src[0] = w
			b, err := NewBackend(p1, Options{Config: cfg, Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.overlapBelow = 0
			b.eng.taskBytes = 64 << 20 // one task: the whole shape in one kernel call
			for i := 0; i < 3; i++ {
				if _, err := b.Compute(op); err != nil {
					t.Fatal(err)
				}
			}
			b.eng.timing, b.eng.tileTime = true, 0
			const calls = 50
			for i := 0; i < calls; i++ {
				if _, err := b.Compute(op); err != nil {
					t.Fatal(err)
				}
			}
			d := b.eng.tileTime.Seconds() / calls
			tops := 2 * float64(m*n*k) / d / 1e12
			rep.printf("| %dx%dx%d | %s | %.4f | %.3f | %.0f%% |\n", m, n, k, cfg, d*1e3, tops, 100*tops/i8)
		}
	}
	rep.printf("\n")
}

// pipeFigures compares the two int8 kernels: the default, which scales a block's sums during the next block's K
// steps and streams the activation tiles, and the earlier one (sums scaled between blocks), for several
// arrangements, in whole GEMMs and with every tile task repeated (its operands then come from the core's caches:
// what the kernel does without the memory hierarchy), and on one core.
func pipeFigures(t *testing.T, rep *report, p *pool.Pool, peak8 float64) {
	type variant struct {
		cfg       TileConfig
		plain     bool
		repeat    int
		taskBytes int
	}
	kernel := map[bool]string{false: "default (pipelined spill, streamed A)", true: "earlier (spill between blocks)"}
	arr := func(mt, nt int) TileConfig { return TileConfig{Rows: 16, KStep: 64, MT: mt, NT: nt, Group: 512} }
	r := rand.New(rand.NewPCG(41, 42))
	for _, sh := range [][3]int{{512, 2048, 4096}, {4096, 4096, 4096}} {
		m, n, k := sh[0], sh[1], sh[2]
		var vs []variant
		for _, cfg := range []TileConfig{arr(1, 2), arr(2, 1), arr(2, 2)} {
			vs = append(vs, variant{cfg: cfg}, variant{cfg: cfg, plain: true})
		}
		vs = append(vs, variant{cfg: arr(1, 2), taskBytes: 512 << 10}, variant{cfg: arr(1, 2), taskBytes: 2 << 20},
			variant{cfg: arr(1, 2), taskBytes: 4 << 20})
		if m == 512 {
			vs = append(vs, variant{cfg: arr(1, 2), repeat: 8}, variant{cfg: arr(1, 2), plain: true, repeat: 8})
		}
		plain := RandomWeight(tensor.Q8_0, k, n, 1, r)
		op := RandomMulMat(plain, m, r)
		w, err := repack(plain, 512)
		if err != nil {
			t.Fatal(err)
		}
		op.Src[0] = w
		backends := make([]*Backend, len(vs))
		var want []float32
		for i, v := range vs {
			b, err := NewBackend(p, Options{Config: v.cfg, Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.plainInt8, b.eng.repeat = v.plain, v.repeat
			if v.taskBytes != 0 {
				b.eng.taskBytes = v.taskBytes
			}
			backends[i] = b
			for j := 0; j < actRing; j++ {
				if _, err := b.Compute(op); err != nil {
					t.Fatal(err)
				}
			}
			// Every variant computes the same bits: each group's sums are exact in int32 whatever the arrangement,
			// and both kernels scale and add them in the same order.
			if i == 0 {
				want = append([]float32(nil), op.Dst.F32...)
			} else {
				for e := range want {
					if math.Float32bits(want[e]) != math.Float32bits(op.Dst.F32[e]) {
						t.Fatalf("%s %s: element %d is %v, the first variant's %v", v.cfg, kernel[v.plain], e, op.Dst.F32[e], want[e])
					}
				}
			}
		}
		rounds := 8
		if m > 512 {
			rounds = 3
		}
		medians, err := interleavedMedians(len(vs), rounds, func(i int) error { _, err := backends[i].Compute(op); return err })
		if err != nil {
			t.Fatal(err)
		}
		if i8b, _, err := Peak(p); err == nil {
			peak8 = max(peak8, i8b)
		}
		rep.printf("## int8 kernels, %dx%dx%d (shares of int8 peak %.2f TOPS)\n\n| config | kernel | tasks | task repeats | ms a repeat | TOPS | %% of peak |\n|---|---|---|---|---|---|---|\n", m, n, k, peak8)
		for i, v := range vs {
			reps := max(1, v.repeat)
			d := medians[i].Seconds() / float64(reps)
			rate := 2 * float64(m*n) * float64(k) / d / 1e12
			tasks := "budget"
			if v.taskBytes != 0 {
				tasks = fmt.Sprintf("%d KiB", v.taskBytes>>10)
			}
			rep.printf("| %s | %s | %s | %d | %.3f | %.2f | %.0f%% |\n", v.cfg, kernel[v.plain], tasks, reps, d*1e3, rate, 100*rate/peak8)
		}
		rep.printf("\n(with task repeats: the whole call over the repeats, so the quantization is spread over them too)\n\n")
	}

	p1 := pool.New(1)
	defer p1.Close()
	one, _, err := Peak(p1)
	if err != nil {
		t.Fatal(err)
	}
	rep.printf("## One core, 64x128x4096, one task repeated 20 times (one-core peak %.3f TOPS)\n\n| config | kernel | tiles ms a repeat | TOPS | %% of one-core peak |\n|---|---|---|---|---|\n", one)
	plain := RandomWeight(tensor.Q8_0, 4096, 128, 1, r)
	op := RandomMulMat(plain, 64, r)
	w, err := repack(plain, 512)
	if err != nil {
		t.Fatal(err)
	}
	op.Src[0] = w
	for _, cfg := range []TileConfig{arr(1, 2), arr(2, 1), arr(2, 2)} {
		for _, pl := range []bool{false, true} {
			b, err := NewBackend(p1, Options{Config: cfg, Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.plainInt8, b.eng.repeat, b.eng.taskBytes = pl, 20, 64<<20
			for i := 0; i < 2; i++ {
				if _, err := b.Compute(op); err != nil {
					t.Fatal(err)
				}
			}
			b.eng.timing = true
			const calls = 10
			for i := 0; i < calls; i++ {
				if _, err := b.Compute(op); err != nil {
					t.Fatal(err)
				}
			}
			d := b.eng.tileTime.Seconds() / calls / 20
			tops := 2 * 64 * 128 * 4096 / d / 1e12
			rep.printf("| %s | %s | %.4f | %.3f | %.0f%% |\n", cfg, kernel[pl], d*1e3, tops, 100*tops/one)
		}
	}
	rep.printf("\n")
}

// orderFigures compares task orders and rectangles for the default int8 kernel: with the weights hot (one
// matrix) and from memory (32 in turn), at 512x2048x4096, and hot at 4096³.
func orderFigures(t *testing.T, rep *report, p *pool.Pool, peak8 float64) {
	type variant struct {
		rect      [2]int // 0: the default rectangle, 1: square in blocks (the earlier rule), as rect
		rowsFirst bool
	}
	vs := []variant{{[2]int{}, false}, {[2]int{1, 1}, true}, {[2]int{}, true}, {[2]int{1, 1}, false}}
	r := rand.New(rand.NewPCG(61, 62))
	for _, c := range []struct {
		m, n, k, copies, rounds int
	}{{512, 2048, 4096, 1, 8}, {512, 2048, 4096, 32, 6}, {4096, 4096, 4096, 1, 3}} {
		plain := RandomWeight(tensor.Q8_0, c.k, c.n, 1, r)
		op := RandomMulMat(plain, c.m, r)
		ws := weightsInTurn(t, plain, c.copies, 512, r)
		backends := make([]*Backend, len(vs))
		for i, v := range vs {
			b, err := NewBackend(p, Options{Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.rect, b.eng.rowsFirst = v.rect, v.rowsFirst
			if v.rect == [2]int{1, 1} {
				side := 4 // square in blocks: 1 MiB of 4096-byte rows, 2 MiB from 1024 rows
				if c.m >= 1024 {
					side = 8
				}
				b.eng.rect = [2]int{side, side}
			}
			backends[i] = b
		}
		medians := timeInTurn(t, backends, op, ws, c.rounds)
		if i8b, _, err := Peak(p); err == nil {
			peak8 = max(peak8, i8b)
		}
		rep.printf("## Task order, %dx%dx%d q8_0 %s, default config (int8 peak %.2f TOPS)\n\n| rectangle | order | ms | TOPS | %% of peak |\n|---|---|---|---|---|\n", c.m, c.n, c.k, where(c.copies), peak8)
		for i, v := range vs {
			rect := "square in elements (default)"
			if v.rect != [2]int{} {
				rect = fmt.Sprintf("%dx%d (square in blocks)", backends[i].eng.rect[0]*DefaultConfig.BlockRows(), backends[i].eng.rect[1]*DefaultConfig.BlockCols())
			}
			order := "column bands first (default)"
			if v.rowsFirst {
				order = "row blocks first"
			}
			rate := 2 * float64(c.m*c.n) * float64(c.k) / medians[i].Seconds() / 1e12
			rep.printf("| %s | %s | %.3f | %.2f | %.0f%% |\n", rect, order, medians[i].Seconds()*1e3, rate, 100*rate/peak8)
		}
		rep.printf("\n")
	}
}

// bf16Figures compares bf16 arrangements, chunks and task sizes (rows of 2 x K bytes make the default 1 MiB tasks
// small: 64x64 at K = 4096), with the weights hot and from memory.
func bf16Figures(t *testing.T, rep *report, p *pool.Pool, peak16 float64) {
	type variant struct {
		cfg   TileConfig
		bytes int
		rect  [2]int
	}
	cfg := func(mt, nt, chunk int) TileConfig {
		return TileConfig{Rows: 16, KStep: 64, MT: mt, NT: nt, Chunk: chunk}
	}
	vs := []variant{{DefaultConfigBF16, 0, [2]int{}}, {cfg(2, 1, 0), 0, [2]int{}}, {cfg(1, 2, 0), 0, [2]int{}},
		{cfg(1, 2, 512), 0, [2]int{}}, {cfg(2, 2, 0), 0, [2]int{}}, {cfg(1, 2, 256), 2 << 20, [2]int{}}}
	r := rand.New(rand.NewPCG(71, 72))
	for _, c := range []struct {
		m, n, k, copies, rounds int
	}{{512, 2048, 4096, 1, 6}, {512, 2048, 4096, 16, 5}, {4096, 4096, 4096, 1, 2}} {
		plain := RandomWeight(tensor.BF16, c.k, c.n, 1, r)
		op := RandomMulMat(plain, c.m, r)
		ws := weightsInTurn(t, plain, c.copies, 0, r)
		backends := make([]*Backend, len(vs))
		for i, v := range vs {
			b, err := NewBackend(p, Options{Config: v.cfg, Threshold: 1})
			if err != nil {
				t.Fatal(err)
			}
			b.eng.taskBytes, b.eng.rect = v.bytes, v.rect
			backends[i] = b
		}
		medians := timeInTurn(t, backends, op, ws, c.rounds)
		if _, bfb, err := Peak(p); err == nil {
			peak16 = max(peak16, bfb)
		}
		rep.printf("## bf16 configurations and task sizes, %dx%dx%d %s (bf16 peak %.2f TFLOPS)\n\n| config | tasks | ms | TFLOPS | %% of peak |\n|---|---|---|---|---|\n", c.m, c.n, c.k, where(c.copies), peak16)
		for i, v := range vs {
			tasks := "default budget"
			if v.bytes != 0 {
				tasks = fmt.Sprintf("%d KiB budget", v.bytes>>10)
			}
			if v.rect != [2]int{} {
				tasks = fmt.Sprintf("%dx%d", v.rect[0]*v.cfg.BlockRows(), v.rect[1]*v.cfg.BlockCols())
			}
			rate := 2 * float64(c.m*c.n) * float64(c.k) / medians[i].Seconds() / 1e12
			rep.printf("| %s | %s | %.3f | %.2f | %.0f%% |\n", v.cfg, tasks, medians[i].Seconds()*1e3, rate, 100*rate/peak16)
		}
		rep.printf("\n")
	}
}

// weightsInTurn returns the packed first weight and copies-1 more random ones of the same type and shape: one is
// a weight in cache, many in turn a weight from memory, as a prefill reads each layer's.
func weightsInTurn(t *testing.T, first *graph.Tensor, copies, group int, r *rand.Rand) []*graph.Tensor {
	ws := make([]*graph.Tensor, copies)
	for i := range ws {
		src := first
		if i > 0 {
			src = RandomWeight(first.Type, int(first.Ne[0]), int(first.Ne[1]), 1, r)
		}
		w, err := repack(src, group)
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	return ws
}

// timeInTurn warms up each backend over every activation buffer, then times them in interleaved rounds, each
// call taking the next weight of ws; it returns the medians.
func timeInTurn(t *testing.T, backends []*Backend, op *graph.Op, ws []*graph.Tensor, rounds int) []time.Duration {
	for _, b := range backends {
		for j := 0; j < actRing; j++ {
			op.Src[0] = ws[j%len(ws)]
			if _, err := b.Compute(op); err != nil {
				t.Fatal(err)
			}
		}
	}
	turn := 0
	medians, err := interleavedMedians(len(backends), rounds, func(i int) error {
		op.Src[0] = ws[turn%len(ws)]
		turn++
		_, err := backends[i].Compute(op)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return medians
}

// where names the weights' situation of a timeInTurn.
func where(copies int) string {
	if copies > 1 {
		return fmt.Sprintf("from memory (%d matrices in turn)", copies)
	}
	return "hot (one weight matrix)"
}
