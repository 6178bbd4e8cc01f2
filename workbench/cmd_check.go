package workbench

import (
	"fmt"
	"math"
	"strings"
	"sync"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/reference"
	"tilelab/engine/tensor"
	"tilelab/workbench/result"
)

func init() {
	registry["check"].run = runCheck
}

// nanScan records which ops produced NaN or Inf, in the order they ran.
type nanScan struct {
	mu    sync.Mutex
	ops   int
	bad   int
	first []string
}

func (s *nanScan) check(op *graph.Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ops++
	if op.Dst == nil {
		return
	}
	for _, v := range op.Dst.F32 {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			s.bad++
			if len(s.first) < 3 {
				where := op.Kind.String() + " " + op.Name
				if op.Layer >= 0 {
					where += fmt.Sprintf(" (layer %d)", op.Layer)
				}
				s.first = append(s.first, where)
			}
			return
		}
	}
}

// scanBackend scans the output of every op its backend computes.
type scanBackend struct {
	backend.Backend
	scan *nanScan
}

// Reads passes the wrapped backend's answer through, so the scheduler still copies tensors into buffers the
// backend reads (a wrapper without it would be taken to read every buffer).
func (b scanBackend) Reads(bufferType string) bool {
	if r, ok := b.Backend.(backend.BufferReader); ok {
		return r.Reads(bufferType)
	}
	return true
}

// Compute runs the op on the wrapped backend, then scans its output for NaN and Inf.
func (b scanBackend) Compute(op *graph.Op) (string, error) {
	k, err := b.Backend.Compute(op)
	if err == nil {
		b.scan.check(op)
	}
	return k, err
}

// logitErrors compares engine logits with the reference's: max abs, relative L2, cosine similarity, whether the
// argmax agrees, and KL(reference ‖ engine) of the softmax distributions.
func logitErrors(got, want []float32) (maxAbs, relL2, cosine float64, top1 bool, kl float64) {
	var num, den, dot, ng, nw float64
	ag, aw := 0, 0
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		d := g - w
		maxAbs = math.Max(maxAbs, math.Abs(d))
		num += d * d
		den += w * w
		dot += g * w
		ng += g * g
		nw += w * w
		if got[i] > got[ag] {
			ag = i
		}
		if want[i] > want[aw] {
			aw = i
		}
	}
	relL2 = math.Sqrt(num / math.Max(den, 1e-300))
	cosine = dot / math.Sqrt(math.Max(ng*nw, 1e-300))
	lp, lq := logSoftmax(want), logSoftmax(got)
	for i := range lp {
		kl += math.Exp(lp[i]) * (lp[i] - lq[i])
	}
	return maxAbs, relL2, cosine, ag == aw, math.Max(kl, 0)
}

func logSoftmax(x []float32) []float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	ls := math.Log(sum) + mx
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) - ls
	}
	return out
}

func runCheck(c *ctxCall) error {
	l, err := c.model("model")
	if err != nil {
		return err
	}
	var tokens []int32
	if l.tok != nil {
		tokens = l.tok.Encode(c.Str("prompt"), true)
	}
	if len(tokens) == 0 {
		tokens = c.workload(l, 8)
	}
	amxPolicy := l.opts.AMX
	if amxPolicy == "" || amxPolicy == "off" {
		amxPolicy = "all"
	}
	prog := c.progress("check " + l.name)
	prog.step(0, 1, "float32 reference")
	refRows, err := reference.ForwardFile(l.file.f, tokens, reference.Options{})
	if err != nil {
		prog.done("failed")
		return fmt.Errorf("the float32 reference cannot run %s: %w", l.name, err)
	}
	ref := refRows[len(refRows)-1]
	t := result.NewTable(fmt.Sprintf("check %s: %d prompt tokens against the float32 reference", l.name, len(tokens)),
		"mode", "amx", "ops", "NaN/Inf ops", "first bad op", "max abs", "rel L2", "cosine", "top-1", "KL", "note")
	if l.m.KV != tensor.F32 {
		t.Note("the model's KV cache is %s; the reference keeps float32", l.m.KV)
	}
	modes := c.Strs("mode")
	var stopErr error
	for i, mode := range modes {
		if err := c.ctx.Err(); err != nil {
			stopErr = err
			break
		}
		o := modeOptions(mode, amxPolicy, max(l.m.Hyper.Layers/4, 1))
		pol := o.AMX
		if o.NGL > 0 {
			why := unavailable(o)
			t.Add(mode, pol, nil, nil, nil, nil, nil, nil, nil, nil, why)
			continue
		}
		scan := &nanScan{}
		m, p, ab, err := place(l.file, o, l.threads, len(tokens)+1, len(tokens), l.m.KV, false, func(b backend.Backend) backend.Backend {
			return scanBackend{b, scan}
		}, nil)
		if err != nil {
			t.Add(mode, pol, nil, nil, nil, nil, nil, nil, nil, nil, "cannot load: "+err.Error())
			continue
		}
		logits, err := m.Eval(c.ctx, tokens)
		var got []float32
		if err == nil {
			got = append([]float32(nil), logits...)
		}
		m.Close()
		p.Close()
		note := ""
		if ab != nil && ab.Emulated() {
			note = "AMX emulated (int8 bit-exact with the hardware; bf16 within a tolerance)"
		}
		if err != nil {
			if c.ctx.Err() != nil {
				stopErr = err
				break
			}
			t.Add(mode, pol, scan.ops, scan.bad, strings.Join(scan.first, "; "), nil, nil, nil, nil, nil, "failed: "+err.Error())
			continue
		}
		maxAbs, rel, cos, top1, kl := logitErrors(got, ref)
		agree := "agrees"
		if !top1 {
			agree = "differs"
		}
		t.Add(mode, pol, scan.ops, scan.bad, strings.Join(scan.first, "; "), maxAbs, rel, cos, agree, kl, note)
		prog.step(i+1, len(modes), "modes")
	}
	rec := &Record{Tables: []*result.Table{t}, Context: map[string]any{"model": modelInfo{l}, "tokens": tokens}}
	if stopErr != nil {
		rec.Partial = true
		prog.done("interrupted")
		c.emit(rec)
		return interrupted(stopErr)
	}
	prog.done("done")
	c.emit(rec)
	return nil
}
