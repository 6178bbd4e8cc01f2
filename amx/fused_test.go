package amx

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// fusedCase builds one fused op over the given weights (plain or packed, the same shapes): m rows or tokens.
type fusedCase struct {
	kind    graph.Kind
	experts int // 0: 2-D weights
	weights int
	build   func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op
}

func f32Rand(name string, r *rand.Rand, ne ...int) *graph.Tensor {
	var n [4]int
	for i := range n {
		n[i] = 1
	}
	copy(n[:], ne)
	return randomF32(name, n, r)
}

func idsRand(u, m, e int, r *rand.Rand) *graph.Tensor {
	ids := &graph.Tensor{Name: "ids", Type: tensor.I32, Ne: [4]int{u, m, 1, 1}, I32: make([]int32, u*m)}
	for t := 0; t < m; t++ {
		for s, p := range r.Perm(e)[:u] {
			ids.I32[t*u+s] = int32(p)
		}
	}
	return ids
}

func fusedCases(k, n int) []fusedCase {
	const e, u = 6, 2
	out := func(name string, ne ...int) *graph.Tensor {
		t := f32Rand(name, rand.New(rand.NewPCG(1, 1)), ne...)
		poison(t.F32)
		return t
	}
	return []fusedCase{
		{graph.MulMats, 0, 3, func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op {
			x := f32Rand("x", r, k, m)
			total := 0
			for _, w := range ws {
				total += w.Ne[1] * m
			}
			return &graph.Op{Kind: graph.MulMats, Name: "qkv", Dst: out("qkv", total), Src: append(append([]*graph.Tensor{}, ws...), x)}
		}},
		{graph.MulMatAdd, 0, 1, func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op {
			return &graph.Op{Kind: graph.MulMatAdd, Name: "o", Dst: out("o", n, m), Src: []*graph.Tensor{ws[0], f32Rand("x", r, k, m), f32Rand("res", r, n, m)}}
		}},
		{graph.MulMatSwiGLU, 0, 2, func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op {
			return &graph.Op{Kind: graph.MulMatSwiGLU, Name: "ffn", Dst: out("ffn", n, m), Src: []*graph.Tensor{ws[0], ws[1], f32Rand("x", r, k, m)}}
		}},
		{graph.MulMatIDSwiGLU, e, 2, func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op {
			return &graph.Op{Kind: graph.MulMatIDSwiGLU, Name: "moe", Dst: out("moe", n, u, m),
				Src: []*graph.Tensor{ws[0], ws[1], f32Rand("x", r, k, 1, m), idsRand(u, m, e, r)}}
		}},
		{graph.MulMatIDSum, e, 1, func(ws []*graph.Tensor, m int, r *rand.Rand) *graph.Op {
			return &graph.Op{Kind: graph.MulMatIDSum, Name: "down", Dst: out("down", n, m),
				Src: []*graph.Tensor{ws[0], f32Rand("x", r, k, u, m), idsRand(u, m, e, r), f32Rand("w", r, u, m), f32Rand("res", r, n, m)}}
		}},
	}
}

func TestFusedOpsOnAMXWeights(t *testing.T) {
	const k, n, thr = 128, 64, 8
	for _, typ := range []tensor.DType{tensor.Q4_0, tensor.BF16} {
		for _, c := range fusedCases(k, n) {
			for _, v := range []struct {
				name   string
				m      int
				policy PlainPolicy
				same   bool // bit for bit CPU mode's
			}{
				{"below the threshold on plain bytes gives CPU mode's bits", 2, PlainAlways, true},
				{"from the threshold up runs its chain on the tiles close to CPU mode", 30, PlainAlways, false},
				{"below the threshold without plain bytes runs its chain close to CPU mode", 2, PlainNever, false},
			} {
				t.Run(fmt.Sprintf("%s on %s %s", c.kind, typ, v.name), func(t *testing.T) {
					r := rng(uint64(c.kind)*31 + uint64(v.m))
					var plains, packed []*graph.Tensor
					for i := 0; i < c.weights; i++ {
						p := RandomWeight(typ, k, n, max(c.experts, 1), r)
						w := clone(p)
						if err := (&BufferType{Group: DefaultConfig.Group, Plain: v.policy}).Import(w); err != nil {
							t.Fatal(err)
						}
						plains, packed = append(plains, p), append(packed, w)
					}
					op := c.build(packed, v.m, r)
					cop := *op
					cop.Src = append([]*graph.Tensor{}, op.Src...)
					copy(cop.Src, plains)
					cop.Dst = &graph.Tensor{Name: "cpu", Type: tensor.F32, Ne: op.Dst.Ne, F32: make([]float32, len(op.Dst.F32))}
					want, cpuKernel := cpuModeOp(t, &cop)
					b := newTestBackend(t, Options{Emulate: true, Threshold: thr})
					if ok, why := b.SupportsOp(op); !ok {
						t.Fatalf("refused: %s", why)
					}
					name, err := b.Compute(op)
					if err != nil {
						t.Fatal(err)
					}
					for i, x := range op.Dst.F32 {
						if math.IsNaN(float64(x)) {
							t.Fatalf("%s left output %d unwritten", name, i)
						}
					}
					if v.same {
						sameBits(t, name, op.Dst.F32, want)
						if !strings.HasPrefix(name, cpuKernel+" (m < ") {
							t.Fatalf("kernel %q, want CPU mode's %q", name, cpuKernel)
						}
						// The chain of unfused ops gives the same bits (CPU mode's fused kernels are built to), so
						// what shows that the fused kernel itself ran is that it costs what CPU mode costs.
						cb := newCPU()
						cb.Compute(&cop)
						if a, c := testing.AllocsPerRun(10, func() { b.Compute(op) }), testing.AllocsPerRun(10, func() { cb.Compute(&cop) }); a > c {
							t.Fatalf("%.1f allocations per op, CPU mode %.1f: not CPU mode's fused kernel", a, c)
						}
						return
					}
					if strings.Contains(name, "plain") && v.policy == PlainNever {
						t.Fatalf("kernel %q ran on plain bytes it does not have", name)
					}
					if v.m >= thr && !strings.Contains(name, "amx-") {
						t.Fatalf("kernel %q: %d rows ran no tiles", name, v.m)
					}
					ref := make([]float64, len(want))
					for i, x := range want {
						ref[i] = float64(x)
					}
					if e := relErr(op.Dst.F32, ref); e > 0.03 {
						t.Fatalf("%s: relative difference %.3g from CPU mode", name, e)
					}
				})
			}
		}
	}
}

// cpuModeOp runs op (over plain weights) on the CPU backend.
func cpuModeOp(t *testing.T, op *graph.Op) ([]float32, string) {
	t.Helper()
	name, err := newCPU().Compute(op)
	if err != nil {
		t.Fatal(err)
	}
	return op.Dst.F32, name
}
