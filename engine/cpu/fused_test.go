package cpu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// The fused ops are held to the chains of unfused ops they replace, run on the same backend in the same mode: the
// unfused ops are held to plain loops elsewhere in this package.

var fusedTypes = []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.F16, tensor.F32}

func modeName(reference bool) string {
	if reference {
		return "reference"
	}
	return "fast"
}

func f32Out(name string, ne ...int) *graph.Tensor {
	n := 1
	for _, v := range ne {
		n *= v
	}
	return f32Tensor(name, make([]float32, n), ne...)
}

// randomIDs gives each of m tokens u distinct experts of e.
func randomIDs(rng *rand.Rand, e, u, m int) []int32 {
	ids := make([]int32, u*m)
	for i := 0; i < m; i++ {
		perm := rng.Perm(e)
		for s := 0; s < u; s++ {
			ids[i*u+s] = int32(perm[s])
		}
	}
	return ids
}

func TestMulMatsGivesEachWeightsMulMat(t *testing.T) {
	for _, reference := range []bool{false, true} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range fusedTypes {
			for _, c := range []struct{ k, m int }{{64, 1}, {96, 3}, {160, 37}} {
				t.Run(fmt.Sprintf("%s mode matches three %s MUL_MATs for k=%d m=%d", modeName(reference), dt, c.k, c.m), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.k), uint64(c.m)))
					ns := []int{67, 9, 130}
					var ws []*graph.Tensor
					for j, n := range ns {
						w, _ := weight(t, rng, fmt.Sprint("w", j), dt, c.k, n)
						ws = append(ws, w)
					}
					x := f32Tensor("x", randF32(rng, c.k*c.m), c.k, c.m)
					total := 0
					var want []float32
					for _, w := range ws {
						d := f32Out("d", w.Ne[1], c.m)
						run(t, b, &graph.Op{Kind: graph.MulMat, Name: "mm", Dst: d, Src: []*graph.Tensor{w, x}})
						want = append(want, d.F32...)
						total += w.Ne[1]
					}
					dst := f32Out("qkv", total*c.m)
					run(t, b, &graph.Op{Kind: graph.MulMats, Name: "qkv", Dst: dst, Src: append(append([]*graph.Tensor{}, ws...), x)})
					closeTo(t, dst.F32, want, 1e-6)
				})
			}
		}
	}
	t.Run("a weight whose rows do not match the input is an error", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 1))
		w0, _ := weight(t, rng, "w0", tensor.Q4_0, 64, 8)
		w1, _ := weight(t, rng, "w1", tensor.Q4_0, 96, 8)
		x := f32Tensor("x", randF32(rng, 64), 64, 1)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.MulMats, Name: "qkv", Dst: f32Out("d", 16), Src: []*graph.Tensor{w0, w1, x}})
		if err == nil || !strings.Contains(err.Error(), "w1") {
			t.Fatalf("got %v, want an error naming w1", err)
		}
	})
}

func TestMulMatAddIsMulMatThenAdd(t *testing.T) {
	for _, reference := range []bool{false, true} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range fusedTypes {
			for _, c := range []struct{ k, n, m int }{{64, 37, 1}, {96, 130, 2}, {32, 19, 9}} {
				t.Run(fmt.Sprintf("%s mode with %s weights [%d %d] and %d rows", modeName(reference), dt, c.k, c.n, c.m), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.m)))
					w, _ := weight(t, rng, "wo", dt, c.k, c.n)
					x := f32Tensor("x", randF32(rng, c.k*c.m), c.k, c.m)
					r := f32Tensor("res", randF32(rng, c.n*c.m), c.n, c.m)
					mm := f32Out("mm", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMat, Name: "wo", Dst: mm, Src: []*graph.Tensor{w, x}})
					want := f32Out("want", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.Add, Name: "res", Dst: want, Src: []*graph.Tensor{r, mm}})
					dst := f32Out("d", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatAdd, Name: "wo+res", Dst: dst, Src: []*graph.Tensor{w, x, r}})
					closeTo(t, dst.F32, want.F32, 1e-6)
				})
			}
		}
	}
	t.Run("a residual of the wrong shape is an error", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(2, 2))
		w, _ := weight(t, rng, "wo", tensor.Q4_0, 64, 8)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.MulMatAdd, Name: "wo+res", Dst: f32Out("d", 8, 1),
			Src: []*graph.Tensor{w, f32Tensor("x", randF32(rng, 64), 64, 1), f32Out("res", 7, 1)}})
		if err == nil || !strings.Contains(err.Error(), "residual") {
			t.Fatalf("got %v, want an error about the residual", err)
		}
	})
}

func TestMulMatSwiGLUIsGateAndUpThenSwiGLU(t *testing.T) {
	for _, reference := range []bool{false, true} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range fusedTypes {
			for _, c := range []struct{ k, n, m int }{{64, 37, 1}, {96, 130, 3}, {160, 19, 9}} {
				t.Run(fmt.Sprintf("%s mode with %s weights [%d %d] and %d rows", modeName(reference), dt, c.k, c.n, c.m), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.k), uint64(c.n)))
					gw, _ := weight(t, rng, "gate", dt, c.k, c.n)
					uw, _ := weight(t, rng, "up", dt, c.k, c.n)
					x := f32Tensor("x", randF32(rng, c.k*c.m), c.k, c.m)
					g, u := f32Out("g", c.n, c.m), f32Out("u", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMat, Name: "gate", Dst: g, Src: []*graph.Tensor{gw, x}})
					run(t, b, &graph.Op{Kind: graph.MulMat, Name: "up", Dst: u, Src: []*graph.Tensor{uw, x}})
					want := f32Out("want", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.SwiGLU, Name: "act", Dst: want, Src: []*graph.Tensor{g, u}})
					dst := f32Out("d", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatSwiGLU, Name: "ffn", Dst: dst, Src: []*graph.Tensor{gw, uw, x}})
					closeTo(t, dst.F32, want.F32, 1e-6)
				})
			}
		}
	}
	t.Run("gate and up of different shapes are an error", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 3))
		gw, _ := weight(t, rng, "gate", tensor.Q4_0, 64, 8)
		uw, _ := weight(t, rng, "up", tensor.Q4_0, 64, 9)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.MulMatSwiGLU, Name: "ffn", Dst: f32Out("d", 8, 1),
			Src: []*graph.Tensor{gw, uw, f32Tensor("x", randF32(rng, 64), 64, 1)}})
		if err == nil || !strings.Contains(err.Error(), "differ") {
			t.Fatalf("got %v, want an error saying gate and up differ", err)
		}
	})
}

func TestMulMatIDSwiGLUIsBothExpertProductsThenSwiGLU(t *testing.T) {
	cases := []struct {
		k, n, e, u, m int
		shared        bool
	}{{64, 37, 6, 2, 1, true}, {96, 13, 5, 3, 7, true}, {32, 70, 4, 2, 5, false}, {128, 9, 8, 4, 40, true}}
	for _, reference := range []bool{false, true} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range fusedTypes {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s mode with %s experts [%d %d %d], %d of them for %d tokens", modeName(reference), dt, c.k, c.n, c.e, c.u, c.m), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.k), uint64(c.m)))
					gw, _ := weight(t, rng, "gate_exps", dt, c.k, c.n, c.e)
					uw, _ := weight(t, rng, "up_exps", dt, c.k, c.n, c.e)
					xu := c.u
					if c.shared {
						xu = 1
					}
					x := f32Tensor("x", randF32(rng, c.k*xu*c.m), c.k, xu, c.m)
					ids := i32Tensor("ids", randomIDs(rng, c.e, c.u, c.m), c.u, c.m)
					g, u := f32Out("g", c.n, c.u, c.m), f32Out("u", c.n, c.u, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatID, Name: "gate", Dst: g, Src: []*graph.Tensor{gw, x, ids}})
					run(t, b, &graph.Op{Kind: graph.MulMatID, Name: "up", Dst: u, Src: []*graph.Tensor{uw, x, ids}})
					want := f32Out("want", c.n, c.u, c.m)
					run(t, b, &graph.Op{Kind: graph.SwiGLU, Name: "act", Dst: want, Src: []*graph.Tensor{g, u}})
					dst := f32Out("d", c.n, c.u, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatIDSwiGLU, Name: "gate_up", Dst: dst, Src: []*graph.Tensor{gw, uw, x, ids}})
					closeTo(t, dst.F32, want.F32, 1e-6)
				})
			}
		}
	}
}

func TestMulMatIDSumIsExpertProductsWeightedSumAndResidual(t *testing.T) {
	cases := []struct {
		k, n, e, u, m int
		residual      bool
	}{{64, 37, 6, 2, 1, true}, {96, 130, 5, 3, 1, false}, {32, 70, 4, 2, 5, true}, {128, 9, 8, 4, 40, false}}
	for _, reference := range []bool{false, true} {
		b := New(testPool, Options{Reference: reference})
		for _, dt := range fusedTypes {
			for _, c := range cases {
				t.Run(fmt.Sprintf("%s mode with %s experts [%d %d %d], %d of them for %d tokens, residual %v", modeName(reference), dt, c.k, c.n, c.e, c.u, c.m, c.residual), func(t *testing.T) {
					rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.e)))
					w, _ := weight(t, rng, "down_exps", dt, c.k, c.n, c.e)
					x := f32Tensor("x", randF32(rng, c.k*c.u*c.m), c.k, c.u, c.m)
					ids := i32Tensor("ids", randomIDs(rng, c.e, c.u, c.m), c.u, c.m)
					ws := f32Tensor("weights", randF32(rng, c.u*c.m), c.u, c.m)
					ex := f32Out("ex", c.n, c.u, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatID, Name: "down", Dst: ex, Src: []*graph.Tensor{w, x, ids}})
					want := f32Out("want", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MoESum, Name: "sum", Dst: want, Src: []*graph.Tensor{ex, ws}})
					srcs := []*graph.Tensor{w, x, ids, ws}
					if c.residual {
						r := f32Tensor("res", randF32(rng, c.n*c.m), c.n, c.m)
						withRes := f32Out("want+res", c.n, c.m)
						run(t, b, &graph.Op{Kind: graph.Add, Name: "res", Dst: withRes, Src: []*graph.Tensor{r, want}})
						want, srcs = withRes, append(srcs, r)
					}
					dst := f32Out("d", c.n, c.m)
					run(t, b, &graph.Op{Kind: graph.MulMatIDSum, Name: "down_sum", Dst: dst, Src: srcs})
					closeTo(t, dst.F32, want.F32, 1e-6)
				})
			}
		}
	}
	t.Run("weights of the wrong shape are an error", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(4, 4))
		w, _ := weight(t, rng, "down_exps", tensor.Q4_0, 64, 8, 4)
		_, err := New(testPool, Options{}).Compute(&graph.Op{Kind: graph.MulMatIDSum, Name: "down_sum", Dst: f32Out("d", 8, 1),
			Src: []*graph.Tensor{w, f32Tensor("x", randF32(rng, 128), 64, 2, 1), i32Tensor("ids", []int32{0, 3}, 2, 1), f32Out("weights", 3, 1)}})
		if err == nil || !strings.Contains(err.Error(), "weights") {
			t.Fatalf("got %v, want an error about the weights", err)
		}
	})
}
