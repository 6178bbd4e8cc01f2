package cpu

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
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

// BenchmarkDecodeMatMul is a decode step's matrix products on all cores: one token against big weights, reported
// as weight bytes read per second (MB/s), to compare with the machine's read bandwidth.
func BenchmarkDecodeMatMul(b *testing.B) {
	p := pool.New(0)
	defer p.Close()
	be := New(p, Options{})
	rng := rand.New(rand.NewPCG(3, 3))
	for _, c := range []struct {
		name    string
		k, n, e int
		dt      tensor.DType
	}{{"output 2048x151936", 2048, 151936, 1, tensor.Q4_0}, {"attn_q 2048x4096", 2048, 4096, 1, tensor.Q4_0},
		{"experts 2048x768x128 top-8", 2048, 768, 128, tensor.Q4_0}, {"router f32 2048x128", 2048, 128, 1, tensor.F32}} {
		w := &graph.Tensor{Name: "w", Type: c.dt, Ne: [4]int{c.k, c.n, c.e, 1}}
		w.Data = make([]byte, w.Bytes())
		for i := range w.Data {
			w.Data[i] = byte(rng.Uint32())
		}
		for i := 0; i < len(w.Data) && c.dt == tensor.Q4_0; i += 18 { // sane scales
			w.Data[i], w.Data[i+1] = 0x00, 0x20
		}
		if c.dt == tensor.F32 {
			w.F32 = randF32(rng, c.k*c.n)
			copy(w.Data, floatBytes(w.F32))
		}
		x := f32Tensor("x", randF32(rng, c.k), c.k, 1)
		var op *graph.Op
		read := w.Bytes()
		if c.e == 1 {
			op = &graph.Op{Kind: graph.MulMat, Name: c.name, Dst: f32Tensor("d", make([]float32, c.n), c.n, 1), Src: []*graph.Tensor{w, x}}
		} else {
			ids := []int32{3, 17, 29, 40, 66, 80, 99, 127}
			x.Ne = [4]int{c.k, 1, 1, 1}
			op = &graph.Op{Kind: graph.MulMatID, Name: c.name, Dst: f32Tensor("d", make([]float32, c.n*8), c.n, 8, 1),
				Src: []*graph.Tensor{w, x, i32Tensor("ids", ids, 8, 1)}}
			read = read / int64(c.e) * 8
		}
		for _, rows := range []int{16, 32, 64, 128, 256} {
			b.Run(fmt.Sprintf("%s/rows=%d", c.name, rows), func(b *testing.B) {
				defer func(a, b int) { matRows, idRows = a, b }(matRows, idRows)
				matRows, idRows = rows, rows
				b.SetBytes(read)
				for b.Loop() {
					if _, err := be.Compute(op); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPoolRun is the fixed cost of one parallel op: waking every worker for trivial chunks.
func BenchmarkPoolRun(b *testing.B) {
	p := pool.New(0)
	defer p.Close()
	parks := p.Parks()
	for b.Loop() {
		p.Run(4*p.Threads(), func(c, w int) {})
	}
	b.ReportMetric(float64(p.Parks()-parks)/float64(b.N), "parks/op")
	b.Logf("%d workers, GOMAXPROCS %d, %d CPUs, workers spin between jobs: %v", p.Threads(), runtime.GOMAXPROCS(0),
		runtime.NumCPU(), p.Spinning())
}

// BenchmarkAttentionDecode times one decode step's attention (one token over a filled cache) at Qwen3-30B-A3B's
// head shape, on all cores.
func BenchmarkAttentionDecode(b *testing.B) {
	const d, hq, hkv = 128, 32, 4
	p := pool.New(0)
	defer p.Close()
	for _, c := range []struct{ ctx, past int }{{512, 64}, {512, 500}, {4096, 4000}} {
		ctx, past := c.ctx, c.past
		b.Run(fmt.Sprintf("past=%d", past), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(2, 2))
			kc, vc := randF32(rng, d*hkv*ctx), randF32(rng, d*hkv*ctx)
			kt, vt := f32Tensor("k", kc, d, ctx, hkv), f32Tensor("v", vc, ctx, d, hkv)
			n := past + 1
			kw := &graph.Tensor{Name: "k", Type: tensor.F32, Ne: [4]int{d, n, hkv, 1}, F32: kc, ViewSrc: kt}
			vw := &graph.Tensor{Name: "v", Type: tensor.F32, Ne: [4]int{n, d, hkv, 1}, F32: vc, ViewSrc: vt}
			op := &graph.Op{Kind: graph.Attention, Name: "attn", Dst: f32Tensor("dst", make([]float32, d*hq), d*hq, 1),
				Src:    []*graph.Tensor{f32Tensor("q", randF32(rng, d*hq), d, hq, 1), kw, vw},
				Params: graph.Params{HeadsKV: hkv, HeadDim: d, Causal: true, NPast: past}}
			be := New(p, Options{})
			b.SetBytes(int64(2 * 4 * d * hkv * n)) // the visible keys and values
			for b.Loop() {
				if _, err := be.Compute(op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
