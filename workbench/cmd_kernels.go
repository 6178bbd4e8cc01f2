package workbench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"tilelab/amx"
	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/graph"
	"tilelab/engine/placement"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
	"tilelab/workbench/result"
)

func init() {
	for name, run := range map[string]func(*ctxCall) error{"matmul": runMatmul, "tiles": runTiles, "calibrate": runCalibrate} {
		registry[name].run = run
	}
}

// refRows is how many activation rows the float32 reference recomputes to measure a kernel's error: enough to
// catch a wrong block or tile, cheap even for 4096-wide shapes on a small machine.
const refRows = 4

// randomWeight makes a plain weight of any type the sweep takes (the amx helper covers the quantized and 16-bit
// types; f32 is built here).
func randomWeight(t tensor.DType, k, n int, rng *rand.Rand) *graph.Tensor {
	if t != tensor.F32 {
		return amx.RandomWeight(t, k, n, 1, rng)
	}
	w := &graph.Tensor{Name: "w", Type: tensor.F32, Ne: [4]int{k, n, 1, 1}, Layout: tensor.Plain, F32: make([]float32, k*n)}
	for i := range w.F32 {
		w.F32[i] = rng.Float32()*2 - 1
	}
	return w
}

// referenceOf computes the first rows of op's output with the CPU backend's float32 reference kernels.
func referenceOf(p *pool.Pool, op *graph.Op) ([]float32, int, error) {
	w, x := op.Src[0], op.Src[1]
	k, n := w.Ne[0], w.Ne[1]
	r := min(refRows, x.Ne[1])
	xs := &graph.Tensor{Name: "x", Type: tensor.F32, Ne: [4]int{k, r, 1, 1}, Layout: tensor.Plain, F32: x.F32[:k*r]}
	dst := &graph.Tensor{Name: "ref", Type: tensor.F32, Ne: [4]int{n, r, 1, 1}, Layout: tensor.Plain, F32: make([]float32, n*r)}
	ref := cpu.New(p, cpu.Options{Reference: true})
	if _, err := ref.Compute(&graph.Op{Kind: graph.MulMat, Name: "reference", Layer: -1, Dst: dst, Src: []*graph.Tensor{w, xs}}); err != nil {
		return nil, 0, err
	}
	return dst.F32, r, nil
}

// errorsAgainst compares the first rows of got with want: max abs error and relative L2 error.
func errorsAgainst(got, want []float32) (maxAbs, relL2 float64) {
	var num, den float64
	for i, w := range want {
		d := float64(got[i]) - float64(w)
		maxAbs = math.Max(maxAbs, math.Abs(d))
		num += d * d
		den += float64(w) * float64(w)
	}
	if den == 0 {
		return maxAbs, math.Sqrt(num)
	}
	return maxAbs, math.Sqrt(num / den)
}

// timeCompute runs warmup untimed and reps timed executions; it stops between runs when ctx is done.
func (c *ctxCall) timeCompute(compute func() error, reps, warmup int) (result.Measure, error) {
	for i := 0; i < warmup; i++ {
		if err := compute(); err != nil {
			return result.Measure{}, err
		}
	}
	var secs []float64
	for i := 0; i < reps; i++ {
		if err := c.ctx.Err(); err != nil {
			return result.NewMeasure(secs), err
		}
		t0 := time.Now()
		if err := compute(); err != nil {
			return result.Measure{}, err
		}
		secs = append(secs, time.Since(t0).Seconds())
	}
	return result.NewMeasure(secs), nil
}

// reps returns the command's reps= or the session's.
func (c *ctxCall) reps() int {
	if c.Has("reps") {
		return c.Int("reps")
	}
	return c.s.settings.Reps
}

// tileConfig returns the command's tile=, the session's, or the kernels' default.
func (c *ctxCall) tileConfig() (amx.TileConfig, error) {
	s := c.s.settings.Tile
	if c.Has("tile") {
		s = c.Str("tile")
	}
	if s == "" || s == "default" {
		return amx.DefaultConfig, nil
	}
	cfg, err := amx.ParseTileConfig(s)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		return cfg, c.errAt("tile", `e.g. tile="16x64 2x2 g32"`, "bad tile configuration '%s': %v", s, err)
	}
	return cfg, nil
}

// shapeBytes estimates what one m×n×k multiply allocates: the weight and its AMX packing, the float32
// activations and their quantization, and the output.
func shapeBytes(typ tensor.DType, m, n, k int) float64 {
	return 3*float64(n)*float64(typ.RowBytes(k)) + 8*float64(m)*float64(k) + 4*float64(m)*float64(n)
}

func runMatmul(c *ctxCall) error {
	cfg, err := c.tileConfig()
	if err != nil {
		return err
	}
	p := pool.New(c.s.settings.Threads)
	defer p.Close()
	st := amx.Detect()
	var peakInt8, peakBF16 float64
	if st.Usable {
		peakInt8, peakBF16, _ = amx.Peak(p)
	}
	points := c.Sweep("type", "backend", "n", "k", "m")
	t := result.NewTable(fmt.Sprintf("matmul (%d threads, %d reps, tile %s)", c.s.settings.Threads, c.reps(), cfg),
		"type", "backend", "m", "n", "k", "time:ms", "TOPS", "peak:%", "kernel", "max abs err", "rel L2 err", "note")
	type key struct{ typ, backend, n, k string }
	lines := map[key]*result.Series{}
	var lineOrder []key
	prog := c.progress("matmul")
	rng := rand.New(rand.NewPCG(uint64(c.s.settings.Seed), 3))
	var weights = map[string]*graph.Tensor{}
	var packed = map[string]*graph.Tensor{}
	var stopErr error
	for i, pt := range points {
		if err := c.ctx.Err(); err != nil {
			stopErr = err
			break
		}
		typ, _ := tensor.ParseDType(pt["type"].Text)
		be := pt["backend"].Text
		m, n, k := pt["m"].V.(int), pt["n"].V.(int), pt["k"].V.(int)
		row := func(ms, tops, peak any, kernel string, maxAbs, rel any, note string) {
			t.Add(typ.String(), be, m, n, k, ms, tops, peak, kernel, maxAbs, rel, note)
		}
		if bs := typ.BlockSize(); k%bs != 0 {
			row(nil, nil, nil, "", nil, nil, fmt.Sprintf("k=%d is not a multiple of the %s block (%d)", k, typ, bs))
			continue
		}
		if err := fitsMemory(shapeBytes(typ, m, n, k), "this shape"); err != nil {
			row(nil, nil, nil, "", nil, nil, err.Error())
			continue
		}
		wkey := fmt.Sprintf("%s/%d/%d", typ, n, k)
		w := weights[wkey]
		if w == nil {
			w = randomWeight(typ, k, n, rng)
			weights[wkey] = w
		}
		op := amx.RandomMulMat(w, m, rng)
		want, _, err := referenceOf(p, op)
		if err != nil {
			return fmt.Errorf("reference for %s %dx%dx%d: %w", typ, m, n, k, err)
		}
		flops := 2 * float64(m) * float64(n) * float64(k)
		var compute func() (string, error)
		var emulated bool
		switch be {
		case "cuda":
			g := probeGPU()
			why := "no CUDA backend yet"
			if !g.Available {
				why = "no GPU here: " + strings.TrimRight(g.Reason, ": ")
			}
			row(nil, nil, nil, "", nil, nil, why)
			continue
		case "cpu":
			b := cpu.New(p, cpu.Options{})
			compute = func() (string, error) { return b.Compute(op) }
		case "amx":
			bt := &amx.BufferType{Group: cfg.Group}
			if ok, why := bt.Accepts(amxWeightInfo(w)); !ok {
				row(nil, nil, nil, "", nil, nil, "AMX does not take it: "+why)
				continue
			}
			pw := packed[wkey]
			if pw == nil {
				pw = &graph.Tensor{Name: w.Name, Type: w.Type, Ne: w.Ne, Layout: tensor.Plain, Data: append([]byte(nil), w.Data...)}
				if err := bt.Import(pw); err != nil {
					row(nil, nil, nil, "", nil, nil, "AMX cannot pack it: "+err.Error())
					continue
				}
				packed[wkey] = pw
			}
			b, err := amx.NewBackend(p, amx.Options{Config: cfg, Threshold: 1})
			if err != nil {
				return err
			}
			emulated = b.Emulated()
			aop := &graph.Op{Kind: op.Kind, Name: op.Name, Layer: -1, Dst: op.Dst, Src: []*graph.Tensor{pw, op.Src[1]}}
			compute = func() (string, error) { return b.Compute(aop) }
		}
		kernel, err := compute()
		if err != nil {
			row(nil, nil, nil, "", nil, nil, err.Error())
			continue
		}
		maxAbs, rel := errorsAgainst(op.Dst.F32[:len(want)], want)
		if emulated {
			row(nil, nil, nil, kernel, maxAbs, rel, amx.ErrEmulated.Error())
			prog.step(i+1, len(points), "points")
			continue
		}
		meas, err := c.timeCompute(func() error { _, err := compute(); return err }, c.reps(), c.s.settings.Warmup)
		if err != nil {
			if c.ctx.Err() == nil {
				return err
			}
			stopErr = err // interrupted: keep this point if any repetition finished
			if meas.N == 0 {
				break
			}
		}
		ms := result.NewMeasure(scale(meas.Raw, 1e3))
		tops := flops / meas.Mean / 1e12
		var peak any
		if be == "amx" && peakInt8 > 0 {
			pk := peakInt8
			if typ == tensor.F16 || typ == tensor.BF16 {
				pk = peakBF16
			}
			peak = 100 * tops / pk
		}
		row(ms, tops, peak, kernel, maxAbs, rel, "")
		lk := key{typ.String(), be, pt["n"].Text, pt["k"].Text}
		s := lines[lk]
		if s == nil {
			s = &result.Series{Name: fmt.Sprintf("%s %s n=%s k=%s", typ, be, lk.n, lk.k)}
			lines[lk] = s
			lineOrder = append(lineOrder, lk)
		}
		s.X = append(s.X, float64(m))
		s.Y = append(s.Y, tops)
		prog.step(i+1, len(points), "points")
		if stopErr != nil {
			break
		}
	}
	var charts []*result.Chart
	if len(lineOrder) > 0 {
		ch := &result.Chart{Kind: result.Lines, Title: "matmul throughput", XLabel: "m (activation rows)", YLabel: "TOPS (10¹² ops/s)", LogX: true}
		for _, k := range lineOrder {
			ch.Series = append(ch.Series, *lines[k])
		}
		charts = append(charts, ch)
	}
	if !st.Usable {
		t.Note("AMX: %s. AMX rows show the emulator's error against the reference, not a time.", st)
	}
	rec := &Record{Tables: []*result.Table{t}, Charts: charts, Partial: stopErr != nil}
	if stopErr != nil {
		t.Note("interrupted after %d of %d points", len(t.Rows), len(points))
		prog.done("interrupted")
		c.emit(rec)
		return interrupted(stopErr)
	}
	prog.done(fmt.Sprintf("%d points", len(points)))
	c.emit(rec)
	return nil
}

func scale(xs []float64, f float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * f
	}
	return out
}

func runTiles(c *ctxCall) error {
	typ, err := tensor.ParseDType(c.Str("type"))
	if err != nil {
		return c.errAt("type", "", "%v", err)
	}
	m, n, k := c.Int("m"), c.Int("n"), c.Int("k")
	if c.Has("kblock") && (typ == tensor.F16 || typ == tensor.BF16) {
		return c.errAt("kblock", "kblock applies to int8 weights (q8_0, q4_0)", "%s weights keep the whole K in the tiles", typ)
	}
	if err := fitsMemory(shapeBytes(typ, m, n, k), "this shape"); err != nil {
		return c.errAt("n", "try a smaller shape", "%v", err)
	}
	// Build every configuration first, so a bad one is an error before anything runs.
	type cell struct {
		cfg      amx.TileConfig
		row, col string
	}
	var cells []cell
	var rowOrder, colOrder []string
	seenR, seenC := map[string]bool{}, map[string]bool{}
	for _, pt := range c.Sweep("rows", "kblock", "kstep", "acc") {
		cfg := amx.DefaultConfig
		cfg.Rows = pt["rows"].V.(int)
		cfg.KStep = pt["kstep"].V.(int)
		if g, ok := pt["kblock"]; ok {
			cfg.Group = g.V.(int)
		}
		mt, nt, ok := parseAcc(pt["acc"].Text)
		if !ok {
			return c.errAt("acc", "write DOWNxACROSS, e.g. 2x2 or 1x4", "bad accumulator layout '%s'", pt["acc"].Text)
		}
		cfg.MT, cfg.NT = mt, nt
		if err := cfg.Validate(); err != nil {
			return c.errAt("acc", "", "tile configuration %s: %v", cfg, err)
		}
		r := fmt.Sprintf("rows=%d", cfg.Rows)
		if _, ok := pt["kblock"]; ok {
			r += fmt.Sprintf(" kblock=%d", cfg.Group)
		}
		col := fmt.Sprintf("kstep=%d %s", cfg.KStep, pt["acc"].Text)
		if !seenR[r] {
			seenR[r] = true
			rowOrder = append(rowOrder, r)
		}
		if !seenC[col] {
			seenC[col] = true
			colOrder = append(colOrder, col)
		}
		cells = append(cells, cell{cfg, r, col})
	}
	t := result.NewTable(fmt.Sprintf("tiles: %s %dx%dx%d (%d threads, %d reps)", typ, m, n, k, c.s.settings.Threads, c.reps()),
		"config", "rows", "kstep", "acc", "kblock", "time:ms", "TOPS", "rel err", "kernel", "note")
	st := amx.Detect()
	if !st.Usable {
		for _, cl := range cells {
			t.Add(cl.cfg.String(), cl.cfg.Rows, cl.cfg.KStep, fmt.Sprintf("%dx%d", cl.cfg.MT, cl.cfg.NT), cl.cfg.Group, nil, nil, nil, "", amx.ErrEmulated.Error())
		}
		t.Note("AMX: %s", st)
		c.emit(&Record{Tables: []*result.Table{t}})
		return nil
	}
	p := pool.New(c.s.settings.Threads)
	defer p.Close()
	z := make([][]float64, len(rowOrder))
	for i := range z {
		z[i] = make([]float64, len(colOrder))
		for j := range z[i] {
			z[i][j] = math.NaN()
		}
	}
	prog := c.progress("tiles")
	best, bestTOPS := -1, 0.0
	var stopErr error
	for i, cl := range cells {
		if err := c.ctx.Err(); err != nil {
			stopErr = err
			break
		}
		rows, err := amx.Sweep(p, typ, m, n, k, []amx.TileConfig{cl.cfg}, c.reps())
		if err != nil {
			t.Add(cl.cfg.String(), cl.cfg.Rows, cl.cfg.KStep, fmt.Sprintf("%dx%d", cl.cfg.MT, cl.cfg.NT), cl.cfg.Group, nil, nil, nil, "", err.Error())
			continue
		}
		r := rows[0]
		t.Add(cl.cfg.String(), cl.cfg.Rows, cl.cfg.KStep, fmt.Sprintf("%dx%d", cl.cfg.MT, cl.cfg.NT), cl.cfg.Group, r.Seconds*1e3, r.TOPS, r.RelErr, r.Kernel, "")
		z[slices.Index(rowOrder, cl.row)][slices.Index(colOrder, cl.col)] = r.TOPS
		if r.TOPS > bestTOPS {
			best, bestTOPS = i, r.TOPS
		}
		prog.step(i+1, len(cells), "configurations")
	}
	var charts []*result.Chart
	if best >= 0 {
		b := cells[best]
		t.Note("best: %s at %s TOPS; use it with: set tile=\"%s\"", b.cfg, result.Format(bestTOPS), b.cfg)
		charts = append(charts, &result.Chart{Kind: result.Heatmap, Title: fmt.Sprintf("AMX tiles, %s %dx%dx%d", typ, m, n, k),
			XLabel: "K step and accumulators (down x across)", YLabel: "rows per tile", ZLabel: "TOPS", Z: z,
			RowLabels: rowOrder, ColLabels: colOrder, HighlightR: slices.Index(rowOrder, b.row), HighlightC: slices.Index(colOrder, b.col)})
	}
	rec := &Record{Tables: []*result.Table{t}, Charts: charts, Partial: stopErr != nil}
	if stopErr != nil {
		prog.done("interrupted")
		t.Note("interrupted after %d of %d configurations", len(t.Rows), len(cells))
		c.emit(rec)
		return interrupted(stopErr)
	}
	prog.done(fmt.Sprintf("%d configurations", len(cells)))
	c.emit(rec)
	return nil
}

// parseAcc reads an accumulator layout "2x2" as tiles down (M) and across (N).
func parseAcc(s string) (mt, nt int, ok bool) {
	a, b, found := strings.Cut(s, "x")
	if !found {
		return 0, 0, false
	}
	if _, err := fmt.Sscanf(a+" "+b, "%d %d", &mt, &nt); err != nil || mt < 1 || nt < 1 {
		return 0, 0, false
	}
	return mt, nt, true
}

// amxDetect is how calibrate learns whether AMX runs here; tests replace it to take the other branch.
var amxDetect = amx.Detect

func runCalibrate(c *ctxCall) error {
	threads := c.s.settings.Threads
	if c.Has("threads") {
		threads = c.Int("threads")
	}
	st := amxDetect()
	if !st.Usable {
		c.emit(calibrationUnavailable(st, c.Strs("types")))
		return nil
	}
	t := result.NewTable("", calibrationColumns...)
	p := pool.New(threads)
	defer p.Close()
	cfg, err := c.tileConfig()
	if err != nil {
		return err
	}
	prog := c.progress("calibrate amx")
	cal, err := amx.Calibrate(p, cfg)
	if err != nil {
		prog.done("failed")
		return err
	}
	path, err := cal.Save()
	if err != nil {
		return fmt.Errorf("calibrated, but could not store it: %w", err)
	}
	prog.done("stored in " + path)
	types := c.Strs("types")
	for _, pt := range cal.Points {
		if len(types) > 0 && !slices.Contains(types, pt.Type) {
			continue
		}
		t.Add(calibrationCells(pt)...)
	}
	t.Title = fmt.Sprintf("AMX calibration (%s, %d threads, %s)", cal.CPU, cal.Threads, cal.Config)
	t.Note("thresholds: int8 weights use tiles from %d rows, bf16 from %d rows", cal.Threshold, cal.ThresholdBF16)
	c.emit(&Record{Tables: []*result.Table{t}, Raw: cal})
	return nil
}

// calibrationColumns head calibrate's table. The tiles are timed against whatever CPU mode runs at that size on
// the plain bytes (amx.CalPoint.Kernel names it), so that column says "cpu", not a particular instruction set.
var calibrationColumns = []string{"type", "shape", "tiles:µs", "cpu:µs", "faster", "tiles:GOP/s", "cpu:GOP/s", "cpu kernel"}

func calibrationCells(pt amx.CalPoint) []any {
	kernel, _, _ := strings.Cut(pt.Kernel, " (")
	return []any{pt.Type, pt.Shape, pt.TileUs, pt.VecUs, pt.Faster, pt.TileGop, pt.VecGop, kernel}
}

// calibrationUnavailable is calibrate's answer where AMX does not run: nothing is timed (the emulator would
// measure nothing real), so, as bench does for modes it cannot run, it is a result that says why rather than an
// error that stops the script; it shows the stored calibration when there is one, wherever it was measured.
func calibrationUnavailable(st amx.Status, types []string) *Record {
	why := fmt.Sprintf("%s (%s)", amx.ErrEmulated, st)
	t := result.NewTable("AMX calibration: not measured here", append(calibrationColumns, "note")...)
	stored, path, problem := storedCalibration()
	raw := map[string]any{"available": false, "reason": why, "path": path}
	shown := map[string]bool{}
	if stored != nil {
		raw["stored"] = stored
		t.Title = fmt.Sprintf("AMX calibration stored for %s (%d threads, %s), not measured here", stored.CPU, stored.Threads, stored.Config)
		for _, pt := range stored.Points {
			if len(types) > 0 && !slices.Contains(types, pt.Type) {
				continue
			}
			shown[pt.Type] = true
			t.Add(append(calibrationCells(pt), "stored "+stored.When)...)
		}
	}
	for _, typ := range types {
		if !shown[typ] {
			t.Add(typ, nil, nil, nil, nil, nil, nil, nil, why)
		}
	}
	t.Note("not measured: %s", why)
	if stored != nil {
		t.Note("showing the calibration stored in %s, measured %s on %s", path, stored.When, stored.CPU)
		if stored.Against != "" {
			t.Note("the tiles were timed against %s", stored.Against)
		}
		t.Note("its thresholds: int8 weights use tiles from %d rows, bf16 from %d rows", stored.Threshold, stored.ThresholdBF16)
	}
	if problem != "" {
		t.Note("%s", problem)
	}
	return &Record{Tables: []*result.Table{t}, Raw: raw}
}

// storedCalibration reads the stored calibration without amx.LoadCalibration's check that this CPU measured it:
// on a machine without AMX the stored one, if any, came from elsewhere, and showing it (with the CPU it names) is
// the point. problem says why none is shown.
func storedCalibration() (cal *amx.Calibration, path, problem string) {
	path, err := amx.CalibrationPath()
	if err != nil {
		return nil, "", err.Error()
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, "no calibration is stored in " + path + "; calibrate amx on a machine with AMX stores one there"
	}
	if err != nil {
		return nil, path, "the stored calibration cannot be read: " + err.Error()
	}
	cal = &amx.Calibration{}
	if err := json.Unmarshal(data, cal); err != nil {
		return nil, path, fmt.Sprintf("the stored calibration %s is not valid JSON: %v", path, err)
	}
	if len(cal.Points) == 0 {
		return nil, path, "the stored calibration " + path + " holds no measurements"
	}
	return cal, path, ""
}

// amxWeightInfo describes a sweep's weight for the AMX buffer type's rule.
func amxWeightInfo(w *graph.Tensor) backend.WeightInfo {
	return placement.Weight("blk.0.ffn_up.weight", w.Type, w.Ne)
}
