package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// BenchmarkAttention times a prompt's attention (M tokens into an empty cache) in both modes.
func BenchmarkAttention(b *testing.B) {
	for _, c := range []struct{ d, hq, hkv, m int }{{32, 8, 2, 64}, {128, 32, 4, 128}} {
		for _, reference := range []bool{true, false} {
			b.Run(fmt.Sprintf("d%d_hq%d_hkv%d_m%d_reference=%v", c.d, c.hq, c.hkv, c.m, reference), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 1))
				q := randF32(rng, c.d*c.hq*c.m)
				kc, vc := randF32(rng, c.d*c.hkv*c.m), randF32(rng, c.d*c.hkv*c.m)
				kt, vt := f32Tensor("k", kc, c.d, c.m, c.hkv), f32Tensor("v", vc, c.m, c.d, c.hkv)
				kw := &graph.Tensor{Name: "k", Type: tensor.F32, Ne: [4]int{c.d, c.m, c.hkv, 1}, F32: kc, ViewSrc: kt}
				vw := &graph.Tensor{Name: "v", Type: tensor.F32, Ne: [4]int{c.m, c.d, c.hkv, 1}, F32: vc, ViewSrc: vt}
				op := &graph.Op{Kind: graph.Attention, Name: "attn", Dst: f32Tensor("dst", make([]float32, c.d*c.hq*c.m), c.d*c.hq, c.m),
					Src:    []*graph.Tensor{f32Tensor("q", q, c.d, c.hq, c.m), kw, vw},
					Params: graph.Params{HeadsKV: c.hkv, HeadDim: c.d, Causal: true}}
				be := New(testPool, Options{Reference: reference})
				for i := 0; i < b.N; i++ {
					if _, err := be.Compute(op); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
