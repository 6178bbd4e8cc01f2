package workbench

import (
	"fmt"
	"math"
	"strings"

	"tilelab/engine/bench"
	"tilelab/engine/bench/hw"
	"tilelab/engine/tensor"
	"tilelab/workbench/result"
)

func init() {
	registry["bench"].run = runBench
	// bench's ngl defaults to the seed's quarter of the layers, which depends on the model.
	p := registry["bench"].spec.Param("ngl")
	p.Default, p.List, p.Doc = "", true, "GPU layers of the +gpu modes (default: a quarter of the layers, as the seed used)"
}

func runBench(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	cfg := bench.Config{
		Model:   l.name,
		File:    l.file.f,
		Prompt:  c.Ints("pp"),
		Gen:     c.Ints("tg"),
		Reps:    c.reps(),
		Threads: c.Ints("threads"),
		AMX:     c.Str("amx"),
		NGL:     c.Ints("ngl"),
		NoWarm:  c.s.settings.Warmup == 0,
		Seed:    uint64(c.s.settings.Seed),
		KV:      l.m.KV,
		Setup:   hw.Setup,
	}
	if c.Has("kv") {
		cfg.KV, _ = tensor.ParseDType(c.Str("kv")) // the spec allows f32 and f16 only
	}
	if len(cfg.Threads) == 0 {
		cfg.Threads = []int{c.s.settings.Threads}
	}
	for _, m := range c.Strs("mode") {
		cfg.Modes = append(cfg.Modes, bench.Mode(m))
	}
	var tests int
	for _, n := range cfg.Prompt {
		if n > 0 {
			tests++
		}
	}
	for _, n := range cfg.Gen {
		if n > 0 {
			tests++
		}
	}
	if tests == 0 {
		return c.errAt("pp", "give pp= or tg= a positive size", "nothing to measure: every pp and tg is 0")
	}
	// Each test loads the model with a context of pp+tg and runs a batch of pp tokens (activations of about a
	// dozen embedding-wide float32 rows per token).
	pp, tg := 0, 0
	for _, n := range cfg.Prompt {
		pp = max(pp, n)
	}
	for _, n := range cfg.Gen {
		tg = max(tg, n)
	}
	need := float64(l.m.Hyper.KVBytes(pp+tg, cfg.KV)) + 16*4*float64(pp)*float64(l.m.Hyper.Embd)
	if err := fitsMemory(need, fmt.Sprintf("a test of pp=%d tg=%d", pp, tg)); err != nil {
		return c.errAt("pp", "measure smaller tests", "%v", err)
	}
	total := tests * len(cfg.Modes) * len(cfg.Threads) * max(len(cfg.NGL), 1) * cfg.Reps
	prog := c.progress(fmt.Sprintf("bench %s", l.name))
	done := 0
	res, runErr := bench.Run(c.ctx, cfg, func(p bench.Progress) {
		if l := p.Load; l != nil {
			prog.step(min(done, total), total, fmt.Sprintf("repetitions (%s: converting weights for amx=%s, %.1f of %.1f GiB)",
				l.Mode, l.AMX, float64(l.Done)/(1<<30), float64(l.Total)/(1<<30)))
			return
		}
		if p.Rep > 0 || p.Row.Skipped != "" {
			done++
			if p.Row.Skipped != "" {
				done += p.Of - 1
			}
		}
		prog.step(min(done, total), total, fmt.Sprintf("repetitions (%s %s, %d threads)", p.Row.Mode, p.Row.Test, p.Row.Threads))
	})
	if res == nil {
		prog.done("failed")
		return runErr
	}
	t, ch := benchTables(l.name, res)
	t.Note("%s; KV cache %s", hw.Describe(), cfg.KV)
	rec := &Record{Tables: []*result.Table{t}, Charts: []*result.Chart{ch}, Raw: res, Context: map[string]any{"model": modelInfo{l}}}
	if runErr != nil {
		rec.Partial = true
		if c.ctx.Err() != nil {
			t.Note("interrupted: the rows measured so far are kept (the last one may have fewer repetitions)")
			prog.done("interrupted")
			c.emit(rec)
			return interrupted(runErr)
		}
		t.Note("stopped by an error (below): the rows measured before it are kept")
		prog.done("failed")
		c.emit(rec)
		return runErr
	}
	prog.done(fmt.Sprintf("%d rows", len(res.Rows)))
	c.emit(rec)
	return nil
}

// ran reports whether a bench row measured anything: a skipped row, or one interrupted before its first
// repetition, did not.
func ran(r bench.Row) bool { return r.Skipped == "" && len(r.SamplesT) > 0 }

// benchTables renders bench rows as a table (mean ± sd tok/s, llama-bench style) and a grouped bar chart of
// tok/s per mode, one bar per test.
func benchTables(name string, res *bench.Result) (*result.Table, *result.Chart) {
	t := result.NewTable("bench "+name, "mode", "amx", "ngl", "threads", "test", "speed:tok/s", "reps", "kernels", "note")
	ch := &result.Chart{Kind: result.Bars, Title: "throughput of " + name, XLabel: "mode", YLabel: "tok/s"}
	var tests []string
	cats := map[string]int{}
	vals := map[string]map[int]float64{}
	threads := map[int]bool{}
	for _, r := range res.Rows {
		threads[r.Threads] = true
	}
	for _, r := range res.Rows {
		note := r.Skipped
		if r.Partial {
			note = "interrupted"
		}
		if r.Warning != "" {
			note = strings.TrimPrefix(note+"; "+r.Warning, "; ")
		}
		var speed any
		if r.Skipped == "" && len(r.SamplesT) > 0 {
			speed = result.NewMeasure(r.SamplesT)
		}
		amxPolicy := r.AMX
		if amxPolicy == "" {
			amxPolicy = "off"
		}
		// engine/bench stamps every row with the kernel family it was built with; a row that never ran used no
		// kernel, and saying otherwise reads as a measurement.
		kernels, reps := r.Kernel, any(len(r.SamplesT))
		if !ran(r) {
			// "0 reps" beside a reason reads like a measurement that failed; nothing was tried.
			kernels, reps = "", nil
		}
		t.Add(string(r.Mode), amxPolicy, r.NGL, r.Threads, r.Test, speed, reps, kernels, note)

		cat := string(r.Mode)
		if r.NGL > 0 {
			cat += fmt.Sprintf(" ngl=%d", r.NGL)
		}
		if len(threads) > 1 {
			cat += fmt.Sprintf(" t=%d", r.Threads)
		}
		if _, ok := cats[cat]; !ok {
			cats[cat] = len(ch.Categories)
			ch.Categories = append(ch.Categories, cat)
		}
		if _, ok := vals[r.Test]; !ok {
			vals[r.Test] = map[int]float64{}
			tests = append(tests, r.Test)
		}
		v := math.NaN()
		if m, ok := speed.(result.Measure); ok {
			v = m.Mean
		}
		vals[r.Test][cats[cat]] = v
	}
	for _, test := range tests {
		s := result.Series{Name: test, Y: make([]float64, len(ch.Categories))}
		for i := range s.Y {
			v, ok := vals[test][i]
			if !ok {
				v = math.NaN()
			}
			s.Y[i] = v
		}
		ch.Series = append(ch.Series, s)
	}
	if len(tests) > 0 {
		ch.Title += " (" + strings.Join(tests, ", ") + ")"
	}
	return t, ch
}
