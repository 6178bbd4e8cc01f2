package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// Every op, run a second time on the same shapes, allocates nothing: its parallel section is a job the backend
// keeps and its scratch was sized by the first run. A closure handed to the pool, a fresh list or a buffer grown
// per call in any kernel fails this, for one token (a decode step) and for a few (a prompt).
func TestEveryOpAllocatesNothingOnceWarm(t *testing.T) {
	const k, n, e, u, hd, hq, hkv, ctx, past = 64, 96, 4, 2, 16, 4, 2, 32, 9
	for _, reference := range []bool{false, true} {
		for _, dt := range []tensor.DType{tensor.Q4_0, tensor.F16} {
			for _, m := range []int{1, 5} {
				b := New(testPool, Options{Reference: reference})
				rng := rand.New(rand.NewPCG(uint64(m), uint64(dt)))
				x := f32Tensor("x", randF32(rng, k*m), k, m)
				shared := f32Tensor("x", x.F32, k, 1, m)
				w, _ := weight(t, rng, "w", dt, k, n)
				w2, _ := weight(t, rng, "w2", dt, k, n)
				we, _ := weight(t, rng, "we", dt, k, n, e)
				we2, _ := weight(t, rng, "we2", dt, k, n, e)
				wd, _ := weight(t, rng, "wd", dt, n, k, e)
				ids := i32Tensor("ids", randomIDs(rng, e, u, m), u, m)
				toks := make([]int32, m)
				pos := make([]int32, m)
				for i := range toks {
					toks[i], pos[i] = int32(rng.IntN(n)), int32(past+i)
				}
				res := f32Tensor("res", randF32(rng, n*m), n, m)
				act := f32Tensor("act", randF32(rng, n*u*m), n, u, m)
				probs := f32Tensor("probs", randF32(rng, e*m), e, m)
				ws := f32Tensor("ws", randF32(rng, u*m), u, m)
				kt := f32Tensor("k", randF32(rng, hd*ctx*hkv), hd, ctx, hkv)
				vt := f32Tensor("v", randF32(rng, hd*ctx*hkv), ctx, hd, hkv)
				kw := &graph.Tensor{Name: "k", Type: tensor.F32, Ne: [4]int{hd, past + m, hkv, 1}, F32: kt.F32, ViewSrc: kt}
				vw := &graph.Tensor{Name: "v", Type: tensor.F32, Ne: [4]int{past + m, hd, hkv, 1}, F32: vt.F32, ViewSrc: vt}
				kwin := &graph.Tensor{Name: "k", Type: tensor.F32, Ne: [4]int{hd, m, hkv, 1}, F32: kt.F32, ViewSrc: kt}
				q := f32Tensor("q", randF32(rng, hd*hq*m), hd, hq, m)
				ops := []*graph.Op{
					{Kind: graph.MulMat, Dst: f32Out("d", n, m), Src: []*graph.Tensor{w, x}},
					{Kind: graph.MulMatID, Dst: f32Out("d", n, u, m), Src: []*graph.Tensor{we, shared, ids}},
					{Kind: graph.GetRows, Dst: f32Out("d", k, m), Src: []*graph.Tensor{w, i32Tensor("t", toks, m)}},
					{Kind: graph.RMSNorm, Dst: f32Out("d", k, m), Src: []*graph.Tensor{x, f32Tensor("g", randF32(rng, k), k)}, Params: graph.Params{Eps: 1e-6}},
					{Kind: graph.RoPE, Dst: f32Out("d", hd, hq, m), Src: []*graph.Tensor{q, i32Tensor("p", pos, m)}, Params: graph.Params{RopeDims: hd, RopeTheta: 1e4, RopeNeoX: true}},
					{Kind: graph.SoftMax, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res}},
					{Kind: graph.Add, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res, res}},
					{Kind: graph.Mul, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res, f32Tensor("s", randF32(rng, n), n)}},
					{Kind: graph.SiLU, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res}},
					{Kind: graph.Scale, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res}, Params: graph.Params{Scale: 0.5}},
					{Kind: graph.Copy, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res}},
					{Kind: graph.SwiGLU, Dst: f32Out("d", n, m), Src: []*graph.Tensor{res, res}},
					{Kind: graph.StoreKV, Dst: kwin, Src: []*graph.Tensor{f32Tensor("kn", randF32(rng, hd*hkv*m), hd, hkv, m)}, Params: graph.Params{NPast: past}},
					{Kind: graph.Attention, Dst: f32Out("d", hd*hq, m), Src: []*graph.Tensor{q, kw, vw}, Params: graph.Params{NPast: past, HeadsKV: hkv, HeadDim: hd, Causal: true}},
					{Kind: graph.TopK, Dst: &graph.Tensor{Name: "d", Type: tensor.I32, Ne: [4]int{u, m, 1, 1}, I32: make([]int32, u*m)}, Src: []*graph.Tensor{probs}, Params: graph.Params{K: u}},
					{Kind: graph.MoEWeights, Dst: f32Out("d", u, m), Src: []*graph.Tensor{probs, ids}, Params: graph.Params{Normalize: true}},
					{Kind: graph.MoESum, Dst: f32Out("d", n, m), Src: []*graph.Tensor{act, ws}},
					{Kind: graph.MulMats, Dst: f32Out("d", 2*n*m), Src: []*graph.Tensor{w, w2, x}},
					{Kind: graph.MulMatAdd, Dst: f32Out("d", n, m), Src: []*graph.Tensor{w, x, res}},
					{Kind: graph.MulMatSwiGLU, Dst: f32Out("d", n, m), Src: []*graph.Tensor{w, w2, x}},
					{Kind: graph.MulMatIDSwiGLU, Dst: f32Out("d", n, u, m), Src: []*graph.Tensor{we, we2, shared, ids}},
					{Kind: graph.MulMatIDSum, Dst: f32Out("d", k, m), Src: []*graph.Tensor{wd, act, ids, ws, f32Tensor("r", randF32(rng, k*m), k, m)}},
				}
				for _, op := range ops {
					op.Name = "op"
					t.Run(fmt.Sprintf("%s in %s mode with %s weights for %s", op.Kind, modeName(reference), dt, tokens(m)), func(t *testing.T) {
						run(t, b, op)
						if a := testing.AllocsPerRun(10, func() { b.Compute(op) }); a != 0 {
							t.Errorf("%v allocations per call", a)
						}
					})
				}
			}
		}
	}
}

func tokens(m int) string {
	if m == 1 {
		return "one token"
	}
	return fmt.Sprintf("%d tokens", m)
}
