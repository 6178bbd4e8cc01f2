package workbench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"tilelab/amx"
	"tilelab/engine/bench"
	"tilelab/engine/model"
	"tilelab/engine/placement"
	"tilelab/engine/profile"
	"tilelab/engine/tensor"
	"tilelab/engine/tokenizer"
	"tilelab/workbench/result"
)

func init() {
	for name, run := range map[string]func(*ctxCall) error{
		"load": runLoad, "models": runModels, "unload": runUnload, "generate": runGenerate,
		"placement": runPlacement, "buffers": runBuffers, "ops": runOps, "compare": runCompare, "profile": runProfile,
	} {
		registry[name].run = run
	}
}

// resolveSource returns the GGUF path of a source: the file itself, or a synthetic model generated into the
// cache (once) for synth:PRESET.
func (c *ctxCall) resolveSource(param, src, quant string, layers int) (path, name string, err error) {
	if preset, ok := strings.CutPrefix(src, "synth:"); ok {
		return c.synthCached(param, preset, quant, layers)
	}
	if quant != "" || layers != 0 {
		return "", "", c.errAt(param, "they shape synth:PRESET sources; a file keeps its own", "quant= and layers= do not apply to the file %s", src)
	}
	path = c.path(src)
	st, err := os.Stat(path)
	if err != nil {
		hint := "give a .gguf path (relative to " + c.baseDir() + ") or synth:PRESET"
		if errors.Is(err, os.ErrNotExist) {
			return "", "", c.errAt(param, hint, "no such file: %s", src)
		}
		return "", "", c.errAt(param, hint, "cannot open %s: %v", src, err)
	}
	if st.IsDir() {
		return "", "", c.errAt(param, "give the .gguf file inside it", "%s is a folder", src)
	}
	return path, strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), nil
}

func runLoad(c *ctxCall) error {
	path, name, err := c.resolveSource("source", c.Str("source"), c.Str("quant"), c.Int("layers"))
	if err != nil {
		return err
	}
	if c.Has("as") {
		name = c.Str("as")
		if name == "" {
			// Commands take an empty model name to mean the last one loaded, so this model could never be named.
			return c.errAt("as", "give it a name, e.g. as=moe", "a model needs a name")
		}
	}
	threads := c.s.settings.Threads
	if c.Has("threads") {
		threads = c.Int("threads")
	}
	ms := c.s.models
	ref, err := ms.open(path)
	if err != nil {
		return c.errAt("source", "is it a GGUF model?", "cannot read %s: %v", c.Str("source"), err)
	}
	o := placement.Options{AMX: c.Str("amx"), NGL: c.Int("ngl")}
	start := time.Now()
	// A progress line only for a load that converts weights (AMX repacking: tens of seconds for a 30B model).
	var prog *progress
	kv, _ := tensor.ParseDType(c.Str("kv")) // the spec allows f32 and f16 only
	m, p, ab, err := place(ref, o, threads, c.Int("ctx"), c.Int("batch"), kv, false, nil, func(done, total int64) {
		if prog == nil {
			prog = c.progress("load " + name)
		}
		prog.step(int(done>>20), int(total>>20), "MiB of weights converted for "+o.String())
	})
	if prog != nil {
		prog.done(fmt.Sprintf("weights converted in %.1f s", time.Since(start).Seconds()))
	}
	if err != nil {
		ms.release(ref)
		param := "source"
		switch {
		case errors.Is(err, errMemory):
			param = "ctx"
		case o.NGL > 0:
			param = "ngl"
		}
		return c.errAt(param, "", "cannot load %s (%s): %v", c.Str("source"), o, err)
	}
	l := &loaded{name: name, source: c.Str("source"), file: ref, m: m, pool: p, amx: ab, opts: o, threads: threads,
		ctx: m.Ctx, batch: m.Batch, took: time.Since(start)}
	l.tok, l.tokErr = tokenizer.FromGGUF(ref.f)
	ms.add(l)

	h := m.Hyper
	params, quant, mib := modelStats(l)
	info := result.NewTable(fmt.Sprintf("loaded %s as %s", c.Str("source"), name), "name", "arch", "layers", "params:M", "quant", "mode", "memory:MiB", "load:s")
	info.Add(name, h.Arch, h.Layers, float64(params)/1e6, quant, o.String(), mib, l.took.Seconds())
	if ab != nil && ab.Emulated() {
		info.Note("AMX buffers run in the emulator here: correct but not fast, so timed commands do not time them (%s)", amxSummary())
	}
	if l.tokErr != nil {
		info.Note("no tokenizer: %v (generate needs one; bench and profile do not)", l.tokErr)
	}
	tot := totalsTable("buffers of "+name, m.Plan)
	c.emit(&Record{Tables: []*result.Table{info, tot}, Context: map[string]any{"model": modelInfo{l}}})
	return nil
}

// totalsTable is the seed's buffer table: per buffer type, tensors, GGUF MiB and packed MiB.
func totalsTable(title string, p *placement.Plan) *result.Table {
	t := result.NewTable(title, "buffer type", "tensors", "GGUF:MiB", "packed:MiB")
	for _, x := range p.Totals() {
		if x.Count > 0 {
			t.Add(x.BufferType, x.Count, x.MiB, x.PackedMiB)
		}
	}
	return t
}

func runModels(c *ctxCall) error {
	t := result.NewTable("models", "name", "arch", "layers", "params:M", "quant", "mode", "memory:MiB", "threads", "source")
	for _, n := range c.s.models.order {
		l := c.s.models.byName[n]
		params, quant, mib := modelStats(l)
		t.Add(n, l.m.Hyper.Arch, l.m.Hyper.Layers, float64(params)/1e6, quant, l.opts.String(), mib, l.threads, l.source)
	}
	if len(t.Rows) == 0 {
		t.Note("nothing loaded yet: load synth:tiny-moe, or load FILE.gguf")
	}
	c.emit(&Record{Tables: []*result.Table{t}})
	return nil
}

func runUnload(c *ctxCall) error {
	l, err := c.model("name")
	if err != nil {
		return err
	}
	c.s.models.close(l)
	c.out.Stream("stdout", "unloaded "+l.name+"\n")
	return nil
}

func runPlacement(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	buf, match := c.Str("buffer"), c.Str("match")
	layers := map[int]bool{}
	for _, n := range c.Ints("layer") {
		layers[n] = true
	}
	var rows []placement.TensorRow
	for _, r := range l.m.Plan.Rows() {
		if buf != "" && !strings.EqualFold(r.BufferType, buf) || match != "" && !strings.Contains(r.Name, match) {
			continue
		}
		if len(layers) > 0 && !layers[placement.LayerOf(r.Name)] {
			continue
		}
		rows = append(rows, r)
	}
	t := tensorTable(fmt.Sprintf("placement of %s (%s)", l.name, l.opts), rows)
	if len(rows) == 0 {
		t.Note("no tensor matches; buffer types here: %s", strings.Join(bufferTypesOf(l.m.Plan), ", "))
	}
	c.emit(&Record{Tables: []*result.Table{t}, Context: map[string]any{"model": modelInfo{l}}})
	return nil
}

func bufferTypesOf(p *placement.Plan) []string {
	var out []string
	for _, x := range p.Totals() {
		if x.Count > 0 {
			out = append(out, x.BufferType)
		}
	}
	return out
}

func runBuffers(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	t := totalsTable(fmt.Sprintf("buffers of %s (%s)", l.name, l.opts), l.m.Plan)
	ch := &result.Chart{Kind: result.StackedBars, Title: "buffers of " + l.name, XLabel: "model", YLabel: "size (MiB)",
		Categories: []string{l.name + " GGUF", l.name + " packed"}}
	for _, x := range l.m.Plan.Totals() {
		if x.Count > 0 {
			ch.Series = append(ch.Series, result.Series{Name: x.BufferType, Y: []float64{x.MiB, x.PackedMiB}})
		}
	}
	c.emit(&Record{Tables: []*result.Table{t}, Charts: []*result.Chart{ch}, Context: map[string]any{"model": modelInfo{l}}})
	return nil
}

// workload returns n token ids drawn from the vocabulary with the session seed, so timings do not depend on a
// tokenizer (synthetic models may have none).
func (c *ctxCall) workload(l *loaded, n int) []int32 {
	rng := rand.New(rand.NewPCG(uint64(c.s.settings.Seed), 7))
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(rng.IntN(l.m.Hyper.Vocab))
	}
	return ids
}

func runOps(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	n := c.Int("tokens")
	if n > l.batch {
		return c.errAt("tokens", fmt.Sprintf("load with batch=%d or more", n), "tokens=%d is more than the model's batch of %d", n, l.batch)
	}
	sched := l.m.Sched
	sched.Trace = true
	l.m.Reset()
	_, err = l.m.Eval(c.ctx, c.workload(l, n))
	sched.Trace = false
	l.m.Reset()
	if err != nil {
		return interrupted(err)
	}
	type key struct{ op, backend, kernel, reason string }
	count := map[key]int{}
	var order []key
	for _, a := range sched.Assignments {
		k := key{a.Op.Kind.String(), a.Backend, a.Kernel, a.Reason}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].op < order[j].op })
	t := result.NewTable(fmt.Sprintf("ops of %s for %d token(s) (%s)", l.name, n, l.opts), "op", "count", "backend", "kernel", "why this backend")
	for _, k := range order {
		t.Add(k.op, count[k], k.backend, k.kernel, k.reason)
	}
	c.emit(&Record{Tables: []*result.Table{t}, Context: map[string]any{"model": modelInfo{l}}})
	return nil
}

func runCompare(c *ctxCall) error {
	a, err := c.model("a")
	if err != nil {
		return err
	}
	b, err := c.model("b")
	if err != nil {
		return err
	}
	moves, err := placement.Diff(a.m.Plan, b.m.Plan)
	if err != nil {
		return c.errAt("b", "compare two loads of the same file", "%v", err)
	}
	t := result.NewTable(fmt.Sprintf("placement: %s (%s) → %s (%s)", a.name, a.opts, b.name, b.opts),
		"tensor", "size:MiB", "from", "to", "why there in "+a.name, "why there in "+b.name)
	var mib float64
	for _, m := range moves {
		t.Add(m.Name, placement.MiB(m.Bytes), m.From, m.To, m.FromReason, m.ToReason)
		mib += placement.MiB(m.Bytes)
	}
	t.Note("%d tensor(s), %s MiB moved", len(moves), result.Format(mib))
	c.emit(&Record{Tables: []*result.Table{t}, Raw: moves})
	return nil
}

func runGenerate(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	if l.tok == nil {
		return c.errAt("model", "load a model that carries a vocabulary", "%s has no tokenizer: %v", l.name, l.tokErr)
	}
	ids := l.tok.Encode(c.Str("prompt"), true)
	if len(ids) == 0 {
		return c.errAt("prompt", "", "the prompt has no tokens")
	}
	seed := c.s.settings.Seed
	if c.Has("seed") {
		seed = c.Int("seed")
	}
	s := &model.Sampler{Temp: float32(c.Float("temp")), TopK: c.Int("top_k"), TopP: float32(c.Float("top_p")), Seed: uint64(seed)}
	l.m.Reset()
	var text []byte
	stream := utf8Writer{emit: func(b []byte) { c.out.Stream("stdout", string(b)); text = append(text, b...) }}
	c.out.Stream("stdout", c.Str("prompt"))
	st, err := l.m.Generate(c.ctx, ids, c.Int("n"), s, func(id int32) error {
		if l.tok.IsEOG(id) {
			return model.ErrStop
		}
		stream.write(l.tok.TokenBytes(id))
		return nil
	})
	stream.flush()
	c.out.Stream("stdout", "\n")
	l.m.Reset()
	if err != nil && c.ctx.Err() == nil {
		return err
	}
	t := result.NewTable("generate with "+l.name, "prompt:tokens", "prompt:tok/s", "generated:tokens", "generation:tok/s", "mode", "threads")
	t.Add(st.PromptTokens, st.PromptRate(), st.GenTokens, st.GenRate(), l.opts.String(), l.threads)
	if why := unavailable(l.opts); why != "" {
		t.Note("timings are not AMX's: %s", why)
	}
	rec := &Record{Tables: []*result.Table{t}, Raw: map[string]any{"prompt": c.Str("prompt"), "text": string(text), "stats": st},
		Context: map[string]any{"model": modelInfo{l}}, Partial: err != nil}
	c.emit(rec)
	if err != nil {
		return interrupted(err)
	}
	return nil
}

// utf8Writer passes token bytes on as they come but holds back a trailing incomplete UTF-8 sequence, so a
// character split over two tokens arrives whole.
type utf8Writer struct {
	emit    func([]byte)
	pending []byte
}

func (u *utf8Writer) write(b []byte) {
	u.pending = append(u.pending, b...)
	cut := len(u.pending)
	for i := len(u.pending) - 1; i >= 0 && i >= len(u.pending)-3; i-- {
		if ch := u.pending[i]; ch < 0x80 || ch >= 0xC0 {
			if need := utf8Len(ch); i+need > len(u.pending) {
				cut = i
			}
			break
		}
	}
	if cut > 0 {
		u.emit(append([]byte(nil), u.pending[:cut]...))
		u.pending = append(u.pending[:0], u.pending[cut:]...)
	}
}

func (u *utf8Writer) flush() {
	if len(u.pending) > 0 {
		u.emit(u.pending)
		u.pending = nil
	}
}

func utf8Len(lead byte) int {
	switch {
	case lead < 0x80:
		return 1
	case lead >= 0xF0:
		return 4
	case lead >= 0xE0:
		return 3
	case lead >= 0xC0:
		return 2
	}
	return 1
}

func runProfile(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	if why := unavailable(l.opts); why != "" {
		return c.errAt("model", "load the model with amx=off to profile on this machine", "cannot time %s (%s): %s", l.name, l.opts, why)
	}
	pp, tg := c.Int("pp"), c.Int("tg")
	if !c.Has("pp") && !c.Has("tg") {
		pp = min(64, l.batch)
	}
	if pp > l.batch {
		return c.errAt("pp", fmt.Sprintf("load with batch=%d or more", pp), "pp=%d is more than the model's batch of %d", pp, l.batch)
	}
	if pp+tg+1 > l.ctx {
		return c.errAt("tg", "load with a larger ctx=", "pp+tg does not fit the context of %d", l.ctx)
	}
	key, err := profile.ParseKey(c.Str("by"))
	if err != nil {
		return c.errAt("by", "", "%v", err)
	}
	rec := &profile.Recorder{}
	l.m.Sched.Profile = rec
	defer func() { l.m.Sched.Profile = nil; l.m.Reset() }()
	l.m.Reset()
	start := time.Now()
	_, faults0 := bench.ProcessUsage()
	what := ""
	var stopErr error
	kept, finished := 0, tg // records of whole tokens, and how many tokens finished
	if pp > 0 {
		what = fmt.Sprintf("pp%d", pp)
		if _, err := l.m.Eval(c.ctx, c.workload(l, pp)); err != nil {
			return interrupted(err)
		}
	}
	if tg > 0 {
		if pp == 0 {
			// A generation profile needs a context to attend to; the first token is not counted.
			if _, err := l.m.Eval(c.ctx, c.workload(l, 1)); err != nil {
				return interrupted(err)
			}
			rec.Reset()
			start = time.Now()
		}
		what = strings.TrimPrefix(what+fmt.Sprintf("+tg%d", tg), "+")
		ids := c.workload(l, tg)
		prog := c.progress("profile " + what)
		kept = len(rec.Records)
		for i, id := range ids {
			if _, err := l.m.Eval(c.ctx, []int32{id}); err != nil {
				if c.ctx.Err() == nil {
					prog.done("failed")
					return err
				}
				// Keep the tokens that finished, as other timed commands keep what they measured. The token cut
				// short is dropped: its ops ran only in part.
				stopErr, finished = interrupted(err), i
				rec.Records = rec.Records[:kept]
				prog.done(fmt.Sprintf("interrupted after %d of %d tokens", i, tg))
				break
			}
			kept = len(rec.Records)
			prog.step(i+1, tg, "tokens")
		}
		if stopErr == nil {
			prog.done("done")
		}
	}
	wall := time.Since(start)
	_, faults1 := bench.ProcessUsage()
	if stopErr != nil && finished == 0 && pp == 0 {
		return stopErr // nothing measured
	}
	rows, err := profile.Summarize(rec.Records, key)
	if err != nil {
		return err
	}
	peakInt8, peakBF16 := c.s.amxPeak(l)
	// Only a row that is all AMX tile work has a meaningful fraction of the tile unit's peak.
	peaks := make([]any, len(rows))
	anyPeak := false
	for i, r := range rows {
		switch k := r.Key(); {
		case strings.HasPrefix(k, "amx-int8") && peakInt8 > 0:
			peaks[i] = 100 * r.GOPS / (peakInt8 * 1000)
		case strings.HasPrefix(k, "amx-bf16") && peakBF16 > 0:
			peaks[i] = 100 * r.GOPS / (peakBF16 * 1000)
		}
		anyPeak = anyPeak || peaks[i] != nil
	}
	cols := []string{string(key), "calls", "total:ms", "share:%", "GOP/s", "GB/s"}
	if anyPeak {
		// A column that would be empty on every row (no AMX here, or no row of pure tile work) reads as missing
		// data, so it appears only where it says something.
		cols = append(cols, "AMX peak:%")
	}
	t := result.NewTable(fmt.Sprintf("profile of %s, %s, by %s (%s, %d threads)", l.name, what, key, l.opts, l.threads), cols...)
	ch := &result.Chart{Kind: result.Bars, Title: fmt.Sprintf("time share by %s: %s %s", key, l.name, what), XLabel: string(key), YLabel: "share of op time (%)"}
	s := result.Series{Name: what}
	for i, r := range rows {
		k := r.Key()
		cells := []any{k, r.Calls, float64(r.Time.Microseconds()) / 1000, 100 * r.Share, r.GOPS, r.GBps}
		if anyPeak {
			cells = append(cells, peaks[i])
		}
		t.Add(cells...)
		ch.Categories = append(ch.Categories, k)
		s.Y = append(s.Y, 100*r.Share)
	}
	ch.Series = []result.Series{s}
	if acc := rec.Account(wall); acc.Overhead > 0 {
		t.Note("accounting: %s", acc)
	} else {
		// Nothing here measures the time between ops, so "overhead 0s" would claim there was none.
		t.Note("ops took %v of %v (%.1f%%); the rest is outside the ops (graph building, scheduling, waiting between them)",
			acc.Ops.Round(time.Microsecond), acc.Wall.Round(time.Microsecond), 100*acc.Covered())
	}
	charts := []*result.Chart{ch}
	if len(rows) > 24 {
		charts = nil // too many bars to read; the table has them
	}
	if stopErr != nil {
		t.Note("interrupted: %d of %d generated tokens measured", finished, tg)
	}
	if w := bench.ReadFromDisk(faults1 - faults0); w != "" {
		t.Note("warning: %s", w)
	}
	c.emit(&Record{Tables: []*result.Table{t}, Charts: charts, Raw: rec.Records, Context: map[string]any{"model": modelInfo{l}}, Partial: stopErr != nil})
	return stopErr
}

// amxPeak measures the tile unit's peak on the model's threads once per session (0, 0 where AMX is not usable).
func (s *Session) amxPeak(l *loaded) (int8TOPS, bf16TFLOPS float64) {
	if l.amx == nil || l.amx.Emulated() {
		return 0, 0
	}
	if s.peak == nil {
		s.peak = map[int][2]float64{}
	}
	if p, ok := s.peak[l.threads]; ok {
		return p[0], p[1]
	}
	i8, bf, err := amx.Peak(l.pool)
	if err != nil {
		return 0, 0
	}
	s.peak[l.threads] = [2]float64{i8, bf}
	return i8, bf
}
