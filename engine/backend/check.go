package backend

import (
	"fmt"
	"strings"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// CheckWeight asks the registry's backends whether any of them can compute the op that consumes an imported
// weight, given the buffer and layout the weight now has. A loader calls it right after Import, so a weight stored
// in a layout no kernel reads (the seed's VNNI-packed experts with no AMX MUL_MAT_ID kernel) fails the load with
// every backend's refusal, instead of reaching a kernel that would read the bytes as another format.
//
// The check builds a one-token probe op around the weight (ProbeOp); it reads no weight bytes and runs nothing.
func CheckWeight(reg *Registry, w *graph.Tensor, op graph.Kind) error {
	if w == nil {
		return fmt.Errorf("check of a nil weight")
	}
	probe, err := ProbeOp(w, op)
	if err != nil {
		return err
	}
	var refusals []string
	for _, b := range reg.Backends() {
		ok, why := b.SupportsOp(probe)
		if ok {
			return nil
		}
		refusals = append(refusals, b.Name()+": "+why)
	}
	if len(refusals) == 0 {
		return fmt.Errorf("weight %s (%s in %s, layout %s): no backend is registered to compute %s",
			w.Name, w.Type, w.Buffer(), layout(w), op)
	}
	return fmt.Errorf("weight %s (%s in %s, layout %s): no backend can compute %s on it: %s",
		w.Name, w.Type, w.Buffer(), layout(w), op, strings.Join(refusals, "; "))
}

func layout(t *graph.Tensor) tensor.Layout {
	if l := t.Source().Layout; l != "" {
		return l
	}
	return tensor.Plain
}

// ProbeOp builds the smallest op of the given kind that consumes w the way a forward pass does (one token; for
// MUL_MAT_ID one expert used), with zeroed F32 activations in ordinary CPU memory (a backend may ask that its
// inputs have host data). It is for SupportsOp questions: nothing about it is meant to be computed.
func ProbeOp(w *graph.Tensor, op graph.Kind) (*graph.Op, error) {
	k := w.Ne[0]
	f32 := func(name string, ne ...int) *graph.Tensor {
		t := &graph.Tensor{Name: name, Type: tensor.F32, Ne: [4]int{1, 1, 1, 1}, Layout: tensor.Plain}
		copy(t.Ne[:], ne)
		t.F32 = make([]float32, t.Elems())
		return t
	}
	i32 := func(name string, ne ...int) *graph.Tensor {
		t := &graph.Tensor{Name: name, Type: tensor.I32, Ne: [4]int{1, 1, 1, 1}, Layout: tensor.Plain}
		copy(t.Ne[:], ne)
		t.I32 = make([]int32, t.Elems())
		return t
	}
	p := &graph.Op{Kind: op, Name: "probe " + w.Name, Layer: -1}
	switch op {
	case graph.MulMat:
		p.Src = []*graph.Tensor{w, f32("x", k, 1)}
		p.Dst = f32("y", w.Ne[1], 1)
	case graph.MulMatID:
		p.Src = []*graph.Tensor{w, f32("x", k, 1, 1), i32("ids", 1, 1)}
		p.Dst = f32("y", w.Ne[1], 1, 1)
	case graph.GetRows:
		p.Src = []*graph.Tensor{w, i32("ids", 1)}
		p.Dst = f32("rows", k, 1)
	case graph.RMSNorm:
		p.Src = []*graph.Tensor{f32("x", k, 1), w}
		p.Dst = f32("y", k, 1)
	case graph.Add, graph.Mul:
		p.Src = []*graph.Tensor{f32("x", k, 1), w}
		p.Dst = f32("y", k, 1)
	default:
		return nil, fmt.Errorf("weight %s: no probe for op %s (weights are consumed by MUL_MAT, MUL_MAT_ID, GET_ROWS, RMS_NORM, ADD, MUL)", w.Name, op)
	}
	return p, nil
}
