package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/profile"
)

// Assignment records which backend ran an op, the kernel it chose, and why that backend was picked.
type Assignment struct {
	Op      *graph.Op
	Backend string
	Kernel  string
	Reason  string // why this backend: its SupportsOp answer, and the refusals of those ahead of it
}

// Scheduler gives each op of a graph to the first backend (in registry order) that supports it.
type Scheduler struct {
	Registry *Registry
	Profile  *profile.Recorder // nil: no per-op records
	// Trace, when true, keeps the Assignments of the last Run (the workbench's `ops` command reads them).
	Trace       bool
	Assignments []Assignment
}

// Run executes the graph's ops in order. It stops at the first error, and between ops when ctx is done.
func (s *Scheduler) Run(ctx context.Context, g *graph.Graph) error {
	if s.Trace {
		s.Assignments = s.Assignments[:0]
	}
	for _, op := range g.Ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, reason, err := s.pick(op)
		if err != nil {
			return err
		}
		var t0 time.Time
		if s.Profile.Enabled() {
			t0 = time.Now()
		}
		kernel, err := b.Compute(op)
		if err != nil {
			return fmt.Errorf("%s %s on %s: %w", op.Kind, op.Name, b.Name(), err)
		}
		if s.Profile.Enabled() {
			s.Profile.Add(Describe(op, b.Name(), kernel, time.Since(t0)))
		}
		if s.Trace {
			s.Assignments = append(s.Assignments, Assignment{Op: op, Backend: b.Name(), Kernel: kernel, Reason: reason})
		}
	}
	return nil
}

func (s *Scheduler) pick(op *graph.Op) (Backend, string, error) {
	var refusals []string
	for _, b := range s.Registry.Backends() {
		ok, why := b.SupportsOp(op)
		if ok {
			if len(refusals) > 0 {
				why += " (" + strings.Join(refusals, "; ") + ")"
			}
			return b, why, nil
		}
		refusals = append(refusals, b.Name()+": "+why)
	}
	return nil, "", fmt.Errorf("no backend can compute %s %s: %s", op.Kind, op.Name, strings.Join(refusals, "; "))
}

// Describe builds the profile record of one op execution: shapes, buffers, bytes and flops from the op itself.
func Describe(op *graph.Op, backendName, kernel string, d time.Duration) profile.Record {
	var shapes, bufs []string
	for _, t := range op.Src {
		if t == nil {
			continue
		}
		shapes = append(shapes, t.Type.String()+t.Shape())
		bufs = append(bufs, t.Buffer())
	}
	return profile.Record{
		Op: op.Kind.String(), Name: op.Name, Layer: op.Layer, Backend: backendName, Kernel: kernel,
		Shapes: strings.Join(shapes, " "), Buffers: strings.Join(bufs, ","), Bytes: Bytes(op), Flops: Flops(op), Time: d,
	}
}

// Flops counts the arithmetic of the matrix ops (2 per multiply-add); elementwise ops count one per element.
func Flops(op *graph.Op) int64 {
	switch op.Kind {
	case graph.MulMat:
		w, x := op.Src[0], op.Src[1]
		return 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(x.Rows())
	case graph.MulMatID:
		w, ids := op.Src[0], op.Src[2]
		return 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(ids.Elems())
	case graph.MulMats: // the fused ops: their products, plus one per output element for the elementwise tail
		x, n := op.Src[len(op.Src)-1], int64(0)
		for _, w := range op.Src[:len(op.Src)-1] {
			n += 2 * int64(w.Ne[0]) * int64(w.Ne[1]) * int64(x.Rows())
		}
		return n
	case graph.MulMatAdd, graph.MulMatSwiGLU:
		w, x, prods := op.Src[0], op.Src[1], int64(1)
		if op.Kind == graph.MulMatSwiGLU {
			x, prods = op.Src[2], 2
		}
		return prods*2*int64(w.Ne[0])*int64(w.Ne[1])*int64(x.Rows()) + int64(op.Dst.Elems())
	case graph.MulMatIDSwiGLU, graph.MulMatIDSum:
		w, ids, prods := op.Src[0], op.Src[2], int64(1)
		if op.Kind == graph.MulMatIDSwiGLU {
			ids, prods = op.Src[3], 2
		}
		return prods*2*int64(w.Ne[0])*int64(w.Ne[1])*int64(ids.Elems()) + int64(op.Dst.Elems())
	}
	if op.Dst != nil {
		return int64(op.Dst.Elems())
	}
	return 0
}

// Bytes estimates the memory an op touches: its inputs and output, except that GET_ROWS reads only the rows it
// fetches and MUL_MAT_ID only the experts its tokens chose (counted once each), not the whole table or stack.
func Bytes(op *graph.Op) int64 {
	var n int64
	if op.Dst != nil {
		n += op.Dst.Bytes()
	}
	for i, t := range op.Src {
		if t == nil {
			continue
		}
		switch {
		case op.Kind == graph.GetRows && i == 0:
			if len(op.Src) > 1 && op.Src[1] != nil {
				n += int64(t.Type.RowBytes(t.Ne[0])) * int64(op.Src[1].Elems())
			}
		case op.Kind == graph.MulMatID && i == 0 && len(op.Src) > 2 && op.Src[2] != nil,
			op.Kind == graph.MulMatIDSum && i == 0 && len(op.Src) > 2 && op.Src[2] != nil:
			n += int64(t.Type.RowBytes(t.Ne[0])) * int64(t.Ne[1]) * int64(distinct(op.Src[2].I32, t.Ne[2]))
		case op.Kind == graph.MulMatIDSwiGLU && i < 2 && len(op.Src) > 3 && op.Src[3] != nil:
			n += int64(t.Type.RowBytes(t.Ne[0])) * int64(t.Ne[1]) * int64(distinct(op.Src[3].I32, t.Ne[2]))
		default:
			n += t.Bytes()
		}
	}
	return n
}

// distinct counts the different experts in ids (all of them when ids is not filled in yet).
func distinct(ids []int32, experts int) int {
	if len(ids) == 0 {
		return experts
	}
	seen := make(map[int32]struct{}, experts)
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	return len(seen)
}
