package amx

import (
	"fmt"
	"math/rand/v2"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// RandomWeight makes a plain (GGUF-layout) weight of e experts x n rows x k with random values in [-1, 1),
// quantized to t (q8_0, q4_0, f16, bf16) by engine/tensor's reference encoders, so the bytes are llama.cpp's. It
// is for tests, calibration and the workbench's kernel sweeps; a type those encoders cannot write (the k-quants)
// leaves the bytes zero.
func RandomWeight(t tensor.DType, k, n, e int, rng *rand.Rand) *graph.Tensor {
	ne := [4]int{k, n, 1, 1}
	if e > 1 {
		ne[2] = e
	}
	w := &graph.Tensor{Name: fmt.Sprintf("random_%s_%dx%dx%d", t, k, n, e), Type: t, Ne: ne, Layout: tensor.Plain}
	rows := n * e
	w.Data = make([]byte, t.RowBytes(k)*rows)
	seed := rng.Uint64()
	parallelRows(rows, func(lo, hi int) {
		r := rand.New(rand.NewPCG(seed, uint64(lo)))
		x := make([]float32, k)
		for i := lo; i < hi; i++ {
			for j := range x {
				x[j] = r.Float32()*2 - 1
			}
			if err := tensor.Quantize(t, x, w.Data[i*t.RowBytes(k):(i+1)*t.RowBytes(k)]); err != nil {
				return // a type without an encoder: the bytes stay zero, as documented
			}
		}
	})
	return w
}

func randomF32(name string, ne [4]int, rng *rand.Rand) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.F32, Ne: ne}
	t.F32 = make([]float32, t.Elems())
	for i := range t.F32 {
		t.F32[i] = rng.Float32()*2 - 1
	}
	return t
}

// RandomMulMat builds a MUL_MAT of weight w (packed or not) with m random activation rows.
func RandomMulMat(w *graph.Tensor, m int, rng *rand.Rand) *graph.Op {
	k, n := w.Ne[0], w.Ne[1]
	x := randomF32("x", [4]int{k, m, 1, 1}, rng)
	dst := &graph.Tensor{Name: "dst", Type: tensor.F32, Ne: [4]int{n, m, 1, 1}, F32: make([]float32, n*m)}
	return &graph.Op{Kind: graph.MulMat, Name: "random_mul_mat", Layer: -1, Dst: dst, Src: []*graph.Tensor{w, x}}
}

// RandomMulMatID builds a MUL_MAT_ID of expert stack w with m tokens, each using `used` (at most the number of
// experts) distinct random experts; shared activations (one row per token, as for gate and up projections) when
// shared is set.
func RandomMulMatID(w *graph.Tensor, m, used int, shared bool, rng *rand.Rand) *graph.Op {
	k, n, e := w.Ne[0], w.Ne[1], max(w.Ne[2], 1)
	xu := used
	if shared {
		xu = 1
	}
	x := randomF32("x", [4]int{k, xu, m, 1}, rng)
	ids := &graph.Tensor{Name: "ids", Type: tensor.I32, Ne: [4]int{used, m, 1, 1}, I32: make([]int32, used*m)}
	for t := 0; t < m; t++ {
		perm := rng.Perm(e)
		for s := 0; s < used; s++ {
			ids.I32[t*used+s] = int32(perm[s])
		}
	}
	dst := &graph.Tensor{Name: "dst", Type: tensor.F32, Ne: [4]int{n, used, m, 1}, F32: make([]float32, n*used*m)}
	return &graph.Op{Kind: graph.MulMatID, Name: "random_mul_mat_id", Layer: -1, Dst: dst, Src: []*graph.Tensor{w, x, ids}}
}
