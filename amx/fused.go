package amx

import (
	"fmt"
	"strings"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// The fused ops (graph.MulMats and the others) on AMX weights. Below the threshold, when every weight kept its
// plain bytes, the op runs as CPU mode runs it: the CPU backend's fused kernel over the plain bytes, so a decode
// step in AMX mode costs what it costs in CPU mode and gives the same bits. Otherwise it runs as the chain of ops
// it stands for: each product on this backend (tiles, or the small-batch path per expert), the elementwise tail
// (SwiGLU, the experts' weighted sum, the residual add) on the CPU backend's kernels.

// isFused reports whether k is one of the fused kinds this backend runs.
func isFused(k graph.Kind) bool {
	switch k {
	case graph.MulMats, graph.MulMatAdd, graph.MulMatSwiGLU, graph.MulMatIDSwiGLU, graph.MulMatIDSum:
		return true
	}
	return false
}

// fusedWeights lists the indices of op's weight operands, or nil when op is not a fused kind.
func fusedWeights(op *graph.Op, idx []int) []int {
	idx = idx[:0]
	switch op.Kind {
	case graph.MulMats:
		for j := 0; j < len(op.Src)-1; j++ {
			idx = append(idx, j)
		}
	case graph.MulMatAdd, graph.MulMatIDSum:
		idx = append(idx, 0)
	case graph.MulMatSwiGLU, graph.MulMatIDSwiGLU:
		idx = append(idx, 0, 1)
	default:
		return nil
	}
	return idx
}

// supportsFused is supports for the fused kinds: every weight in an AMX layout, f32 activations.
func (b *Backend) supportsFused(op *graph.Op) error {
	var buf [8]int // on the stack: SupportsOp and a decode step allocate nothing here
	idx := fusedWeights(op, buf[:0])
	if len(idx) == 0 || len(op.Src) <= idx[len(idx)-1]+1 {
		return fmt.Errorf("%s %s lacks its inputs", op.Kind, op.Name)
	}
	for _, i := range idx {
		if op.Src[i] == nil {
			return fmt.Errorf("%s %s lacks weight %d", op.Kind, op.Name, i)
		}
		if _, err := packedOf(op.Src[i]); err != nil {
			return err
		}
	}
	x := op.Src[idx[len(idx)-1]+1]
	if x == nil || x.Type != tensor.F32 {
		return fmt.Errorf("%s %s: activations must be f32", op.Kind, op.Name)
	}
	return nil
}

// computeFused runs a fused op (supportsFused has accepted it).
func (b *Backend) computeFused(op *graph.Op) (string, error) {
	var buf [8]int // on the stack: SupportsOp and a decode step allocate nothing here
	idx := fusedWeights(op, buf[:0])
	x := op.Src[idx[len(idx)-1]+1]
	rows := x.Rows()
	if op.Kind == graph.MulMatIDSwiGLU || op.Kind == graph.MulMatIDSum {
		if len(op.Src) <= idx[len(idx)-1]+2 || op.Src[idx[len(idx)-1]+2] == nil {
			return "", fmt.Errorf("%s %s: the expert ids are missing", op.Kind, op.Name)
		}
		rows = op.Src[idx[len(idx)-1]+2].Elems() // every expert is below the threshold when all entries are
	}
	plain, thr := true, 0
	var first weights
	for n, i := range idx {
		w, _ := packedOf(op.Src[i])
		t := b.Threshold
		if w.b16 != nil {
			t = b.ThresholdBF16
		}
		if n == 0 {
			first, thr = w, t
		}
		if w.plain == nil || rows >= t {
			plain = false
		}
	}
	if plain {
		b.sub = *op
		b.subSrc = append(b.subSrc[:0], op.Src...)
		for _, i := range idx {
			w, _ := packedOf(op.Src[i])
			b.subSrc[i] = w.plain.view
		}
		b.sub.Src = b.subSrc
		kernel, err := b.cpu.Compute(&b.sub)
		b.sub = graph.Op{}
		clear(b.subSrc)
		if err != nil {
			return "", fmt.Errorf("%s %s (below the threshold, on the plain bytes): %w", op.Kind, op.Name, err)
		}
		return b.plainKernel(kernel, thr, first), nil
	}
	return b.chain(op)
}

// chain runs a fused op as the ops it stands for.
func (b *Backend) chain(op *graph.Op) (string, error) {
	var names []string
	run := func(sub *graph.Op, onCPU bool) error {
		var name string
		var err error
		if onCPU {
			name, err = b.cpu.Compute(sub)
		} else {
			name, err = b.Compute(sub)
		}
		if err != nil {
			return err
		}
		if !onCPU && !contains(names, name) {
			names = append(names, name)
		}
		return nil
	}
	f32 := func(name string, f []float32, ne ...int) *graph.Tensor {
		t := &graph.Tensor{Name: name, Type: tensor.F32, Layout: tensor.Plain, Ne: [4]int{1, 1, 1, 1}, F32: f}
		copy(t.Ne[:], ne)
		return t
	}
	sub := func(k graph.Kind, dst *graph.Tensor, src ...*graph.Tensor) *graph.Op {
		return &graph.Op{Kind: k, Name: op.Name, Layer: op.Layer, Dst: dst, Src: src, Params: op.Params}
	}
	dst := op.Dst
	var err error
	switch op.Kind {
	case graph.MulMats:
		x := op.Src[len(op.Src)-1]
		m, off := x.Rows(), 0
		for _, w := range op.Src[:len(op.Src)-1] {
			n := w.Ne[1]
			if off+n*m > len(dst.F32) {
				return "", fmt.Errorf("%s %s: destination %s holds %d values, the products need more", op.Kind, op.Name, dst.Name, len(dst.F32))
			}
			if err = run(sub(graph.MulMat, f32(dst.Name, dst.F32[off:off+n*m], n, m), w, x), false); err != nil {
				break
			}
			off += n * m
		}
	case graph.MulMatAdd:
		if len(op.Src) < 3 || op.Src[2] == nil {
			return "", fmt.Errorf("%s %s: the residual is missing", op.Kind, op.Name)
		}
		if err = run(sub(graph.MulMat, dst, op.Src[0], op.Src[1]), false); err == nil {
			err = run(sub(graph.Add, dst, op.Src[2], dst), true)
		}
	case graph.MulMatSwiGLU, graph.MulMatIDSwiGLU:
		kind, rest := graph.MulMat, op.Src[2:3]
		if op.Kind == graph.MulMatIDSwiGLU {
			kind, rest = graph.MulMatID, op.Src[2:4]
		}
		b.ftmp = grow(b.ftmp, len(dst.F32))
		up := f32(op.Src[1].Name, b.ftmp, dst.Ne[0], dst.Ne[1], dst.Ne[2], dst.Ne[3])
		if err = run(sub(kind, dst, append([]*graph.Tensor{op.Src[0]}, rest...)...), false); err == nil {
			if err = run(sub(kind, up, append([]*graph.Tensor{op.Src[1]}, rest...)...), false); err == nil {
				err = run(sub(graph.SwiGLU, dst, dst, up), true)
			}
		}
	case graph.MulMatIDSum:
		if len(op.Src) < 4 || op.Src[2] == nil || op.Src[3] == nil {
			return "", fmt.Errorf("%s %s: the expert ids or weights are missing", op.Kind, op.Name)
		}
		w, ids := op.Src[0], op.Src[2]
		n, u, m := w.Ne[1], ids.Ne[0], ids.Rows()
		b.ftmp = grow(b.ftmp, n*u*m)
		experts := f32(op.Name+" (experts)", b.ftmp, n, u, m)
		if err = run(sub(graph.MulMatID, experts, w, op.Src[1], ids), false); err == nil {
			if err = run(sub(graph.MoESum, dst, experts, op.Src[3]), true); err == nil && len(op.Src) > 4 && op.Src[4] != nil {
				err = run(sub(graph.Add, dst, op.Src[4], dst), true)
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op.Kind, op.Name, err)
	}
	return strings.Join(names, " + "), nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
