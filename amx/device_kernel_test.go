//go:build amxdevice

package amx

import (
	"fmt"
	"testing"
	"time"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// TestDeviceBreakdown separates the costs of a GEMM: activation preparation, one kernel call on operands that
// stay in cache (one thread and all threads), and the whole op.
func TestDeviceBreakdown(t *testing.T) {
	needAMX(t)
	p := pool.New(0)
	defer p.Close()
	for _, c := range []struct {
		typ tensor.DType
		cfg TileConfig
		k   int
	}{
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 0}, 4096},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 0}, 512},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32}, 512},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 1, Group: 0}, 512},
		{tensor.Q8_0, TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 4, Group: 0}, 512},
		{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2}, 512},
		{tensor.BF16, TileConfig{Rows: 16, KStep: 64, MT: 2, NT: 2}, 4096},
	} {
		r := rng(3)
		m, n := 4*c.cfg.BlockRows(), 4*max(32, c.cfg.BlockCols()) // a rectangle of blocks per call
		w := RandomWeight(c.typ, c.k, n, 1, r)
		if err := (&BufferType{Group: c.cfg.Group}).Import(w); err != nil {
			t.Fatal(err)
		}
		b, _ := NewBackend(p, Options{Config: c.cfg, Threshold: 1})
		op := RandomMulMat(w, m, r)
		if _, err := b.Compute(op); err != nil {
			t.Fatal(err)
		}
		// One block, repeated, through runTile (the per-call Go work included).
		g := b.eng
		wt, _ := packedOf(w)
		sets := []rowSet{{x: [][]float32{}, dst: nil}}
		for i := 0; i < m; i++ {
			sets[0].x = append(sets[0].x, op.Src[1].F32[i*c.k:(i+1)*c.k])
			sets[0].dst = append(sets[0].dst, i*n)
		}
		sets[0].tiles = true
		kstep := c.cfg.KStep
		if wt.i8 != nil && wt.i8.Group < kstep {
			kstep = wt.i8.Group
		}
		cf := c.cfg
		if wt.i8 != nil {
			cf.Group = wt.i8.Group
		}
		pl, _ := g.plan(cf)
		pal := palette(pl, cf.Rows, kstep)
		_, _, _, kp := wt.dims()
		g.prepare(wt, sets, m, kp, cf.Rows, kstep, cf.BlockRows())
		dst := make([]float32, m*n)
		tk := task{set: 0, m0: 0, m1: m, n0: 0, n1: n}
		const reps = 200
		one := func(w *workspace) {
			for i := 0; i < reps; i++ {
				if err := g.tileTask(w, &pal, pl, cf, kstep, wt, &sets[0], tk, dst); err != nil {
					panic(err)
				}
			}
		}
		t0 := time.Now()
		one(&g.ws[0])
		d1 := time.Since(t0)
		ops := 2 * float64(m*n*c.k) * reps
		t0 = time.Now()
		p.Run(p.Threads(), func(_, wk int) { one(&g.ws[wk]) })
		dn := time.Since(t0)
		blocks := float64(m / cf.BlockRows() * (n / cf.BlockCols()))
		fmt.Printf("%s K=%d %s: %.2f µs per block (in calls of %.0f blocks), 1 thread %.2f TOPS, %d threads %.2f TOPS\n", c.typ, c.k, cf,
			d1.Seconds()/reps/blocks*1e6, blocks, ops/d1.Seconds()/1e12, p.Threads(), ops*float64(p.Threads())/dn.Seconds()/1e12)
	}
	// Preparation alone at 4096x4096.
	for _, typ := range []tensor.DType{tensor.Q8_0, tensor.BF16} {
		x := randomF32("x", [4]int{4096, 4096, 1, 1}, rng(4))
		s := rowSet{tiles: true}
		for i := 0; i < 4096; i++ {
			s.x = append(s.x, x.F32[i*4096:(i+1)*4096])
		}
		b, _ := NewBackend(p, Options{Threshold: 1})
		var wt weights
		if typ == tensor.Q8_0 {
			wt.i8 = &packedInt8{Group: 32, Kp: 4096}
		} else {
			wt.b16 = &packedBF16{Kp: 4096}
		}
		sets := []rowSet{s}
		b.eng.prepare(wt, sets, 4096, 4096, 16, 64, 32)
		t0 := time.Now()
		b.eng.prepare(wt, sets, 4096, 4096, 16, 64, 32)
		fmt.Printf("prepare %s 4096x4096 activations: %.2f ms\n", typ, time.Since(t0).Seconds()*1e3)
	}
	_ = graph.MulMat
}
