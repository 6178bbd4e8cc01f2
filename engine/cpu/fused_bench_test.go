package cpu

import (
	"math/rand/v2"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// BenchmarkDecodeLayerFused times one decode step's projections of a Qwen3-30B-A3B layer (attention q/k/v and
// output with the residual, the MoE experts' gate/up/down with the weighted sum and the residual) as the unfused
// chain of ops and as the fused ops, on all cores. Compare the two sub-benchmarks' ns/op (ratios, same run).
func BenchmarkDecodeLayerFused(b *testing.B) {
	p := pool.New(0)
	defer p.Close()
	be := New(p, Options{})
	rng := rand.New(rand.NewPCG(5, 5))
	const embd, qdim, kvdim, ff, experts, used = 2048, 4096, 512, 768, 128, 8
	w := func(name string, ne ...int) *graph.Tensor {
		t := &graph.Tensor{Name: name, Type: tensor.Q4_0, Layout: tensor.Plain, Ne: [4]int{1, 1, 1, 1}}
		copy(t.Ne[:], ne)
		t.Data = make([]byte, t.Bytes())
		for i := range t.Data {
			t.Data[i] = byte(rng.Uint32())
		}
		for i := 0; i < len(t.Data); i += 18 {
			t.Data[i], t.Data[i+1] = 0x00, 0x20
		}
		return t
	}
	wq, wk, wv, wo := w("q", embd, qdim), w("k", embd, kvdim), w("v", embd, kvdim), w("o", qdim, embd)
	gate, up, down := w("gate", embd, ff, experts), w("up", embd, ff, experts), w("down", ff, embd, experts)
	x := f32Tensor("x", randF32(rng, embd), embd, 1)
	att := f32Tensor("att", randF32(rng, qdim), qdim, 1)
	res := f32Tensor("res", randF32(rng, embd), embd, 1)
	ids := i32Tensor("ids", []int32{3, 17, 29, 40, 66, 80, 99, 127}, used, 1)
	ws := f32Tensor("weights", randF32(rng, used), used, 1)
	shared := f32Tensor("x", x.F32, embd, 1, 1)
	q, k, v, o, sum := f32Out("q", qdim), f32Out("k", kvdim), f32Out("v", kvdim), f32Out("o", embd), f32Out("sum", embd)
	g, u, act, dn := f32Out("g", ff, used, 1), f32Out("u", ff, used, 1), f32Out("act", ff, used, 1), f32Out("dn", embd, used, 1)
	act.Ne = [4]int{ff, used, 1, 1}
	unfused := []*graph.Op{
		{Kind: graph.MulMat, Name: "q", Dst: q, Src: []*graph.Tensor{wq, x}},
		{Kind: graph.MulMat, Name: "k", Dst: k, Src: []*graph.Tensor{wk, x}},
		{Kind: graph.MulMat, Name: "v", Dst: v, Src: []*graph.Tensor{wv, x}},
		{Kind: graph.MulMat, Name: "o", Dst: o, Src: []*graph.Tensor{wo, att}},
		{Kind: graph.Add, Name: "res", Dst: res, Src: []*graph.Tensor{res, o}},
		{Kind: graph.MulMatID, Name: "gate", Dst: g, Src: []*graph.Tensor{gate, shared, ids}},
		{Kind: graph.MulMatID, Name: "up", Dst: u, Src: []*graph.Tensor{up, shared, ids}},
		{Kind: graph.SwiGLU, Name: "act", Dst: act, Src: []*graph.Tensor{g, u}},
		{Kind: graph.MulMatID, Name: "down", Dst: dn, Src: []*graph.Tensor{down, act, ids}},
		{Kind: graph.MoESum, Name: "sum", Dst: sum, Src: []*graph.Tensor{dn, ws}},
		{Kind: graph.Add, Name: "res2", Dst: res, Src: []*graph.Tensor{res, sum}},
	}
	qkv := f32Out("qkv", qdim+2*kvdim)
	fused := []*graph.Op{
		{Kind: graph.MulMats, Name: "qkv", Dst: qkv, Src: []*graph.Tensor{wq, wk, wv, x}},
		{Kind: graph.MulMatAdd, Name: "o+res", Dst: res, Src: []*graph.Tensor{wo, att, res}},
		{Kind: graph.MulMatIDSwiGLU, Name: "gate_up", Dst: act, Src: []*graph.Tensor{gate, up, shared, ids}},
		{Kind: graph.MulMatIDSum, Name: "down_sum", Dst: res, Src: []*graph.Tensor{down, act, ids, ws, res}},
	}
	bytes := wq.Bytes() + wk.Bytes() + wv.Bytes() + wo.Bytes() + (gate.Bytes()+up.Bytes()+down.Bytes())/experts*used
	for _, c := range []struct {
		name string
		ops  []*graph.Op
	}{{"unfused", unfused}, {"fused", fused}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(bytes)
			s0, parks := p.Sections(), p.Parks()
			for b.Loop() {
				for _, op := range c.ops {
					if _, err := be.Compute(op); err != nil {
						b.Fatal(err)
					}
				}
				for i := range res.F32 { // keep the residual from growing without bound
					res.F32[i] *= 0.5
				}
			}
			b.ReportMetric(float64(p.Sections()-s0)/float64(b.N), "sections/op")
			b.ReportMetric(float64(p.Parks()-parks)/float64(b.N), "parks/op")
		})
	}
}
