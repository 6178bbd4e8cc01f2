package amx

import (
	"fmt"
	"math"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// paths are the ways a backend can compute: the tile kernels (emulated here unless the test says hardware) and
// the small-batch path in assembly and in Go.
type path struct {
	name      string
	opts      Options
	threshold int  // 0: every set goes to tiles
	wide      bool // tasks as large as the cache allows, so one call computes many blocks
}

// setUp applies the path's task shapes to b's engine.
func (p path) setUp(b *Backend) {
	if p.wide {
		// Largest rectangles; quantization overlapped with the tiles whatever the rows (the default gives 1024
		// rows or more a section of their own), into a ring of three buffers.
		b.eng.spread, b.eng.taskBytes, b.eng.overlapBelow, b.eng.buffers = 0, 2<<20, math.MaxInt, 3
	}
}

func paths(cfg TileConfig) []path {
	ps := []path{
		{"the emulated tile kernels", Options{Config: cfg, Emulate: true}, 0, false},
		{"the emulated tile kernels with many blocks per call", Options{Config: cfg, Emulate: true}, 0, true},
		{"the AVX-512 small-batch kernels", Options{Config: cfg}, 1 << 20, false},
		{"the plain-Go small-batch kernels", Options{Config: cfg, NoVecAsm: true}, 1 << 20, false},
	}
	if Detect().Usable {
		ps = append(ps, path{"the hardware tile kernels", Options{Config: cfg}, 0, false},
			path{"the hardware tile kernels with many blocks per call", Options{Config: cfg}, 0, true})
	}
	return ps
}

func runOp(t *testing.T, b *Backend, threshold int, op *graph.Op) string {
	t.Helper()
	b.Threshold, b.ThresholdBF16 = threshold, threshold
	poison(op.Dst.F32)
	name, err := b.Compute(op)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range op.Dst.F32 {
		if math.IsNaN(float64(v)) {
			t.Fatalf("%s left output %d unwritten (NaN)", name, i)
		}
	}
	return name
}

func TestInt8MulMatMatchesExactReferenceBitForBit(t *testing.T) {
	shapes := []struct{ m, n, k int }{{1, 32, 32}, {5, 96, 96}, {17, 64, 160}, {33, 32, 256}, {50, 96, 128}}
	configs := []TileConfig{
		{Rows: 16, KStep: 64, MT: 2, NT: 2, Group: 32},
		{Rows: 16, KStep: 64, MT: 1, NT: 4, Group: 64},
		{Rows: 16, KStep: 32, MT: 4, NT: 1, Group: 0},
		{Rows: 8, KStep: 64, MT: 2, NT: 1, Group: 128},
		{Rows: 5, KStep: 64, MT: 1, NT: 2, Group: 32},
		{Rows: 16, KStep: 64, MT: 1, NT: 1, Group: 0},
	}
	for _, typ := range []tensor.DType{tensor.Q8_0, tensor.Q4_0} {
		for ci, cfg := range configs {
			sh := shapes[ci%len(shapes)]
			for _, p := range paths(cfg) {
				t.Run(fmt.Sprintf("%s %dx%dx%d with %s in %s equals the exact reference", typ, sh.m, sh.n, sh.k, cfg, p.name), func(t *testing.T) {
					r := rng(uint64(ci + 10*int(typ)))
					plain := RandomWeight(typ, sh.k, sh.n, 1, r)
					w := clone(plain)
					if err := (&BufferType{Group: cfg.Group}).Import(w); err != nil {
						t.Fatal(err)
					}
					b := newTestBackend(t, p.opts)
					p.setUp(b)
					op := RandomMulMat(w, sh.m, r)
					name := runOp(t, b, p.threshold, op)
					pk := w.Extra.(*weights).i8
					for m := 0; m < sh.m; m++ {
						want := exactInt8(pk, 0, op.Src[1].F32[m*sh.k:(m+1)*sh.k])
						got := op.Dst.F32[m*sh.n : (m+1)*sh.n]
						for n := range want {
							if math.Float32bits(got[n]) != math.Float32bits(want[n]) {
								t.Fatalf("%s: row %d col %d = %v, exact reference %v", name, m, n, got[n], want[n])
							}
						}
					}
					if e := relErr(op.Dst.F32, refOp(plain, op)); e > 0.02 {
						t.Errorf("%s: relative error %.2g against the float64 meaning of the weights (want < 0.02)", name, e)
					}
				})
			}
		}
	}
}

func TestBF16MulMatMatchesFloatReference(t *testing.T) {
	shapes := []struct{ m, n, k int }{{1, 32, 2}, {7, 96, 48}, {35, 64, 160}, {20, 32, 64}, {40, 64, 192}}
	configs := []TileConfig{
		{Rows: 16, KStep: 64, MT: 2, NT: 2},
		{Rows: 16, KStep: 32, MT: 1, NT: 4, Chunk: 32},
		{Rows: 7, KStep: 64, MT: 4, NT: 1},
		{Rows: 16, KStep: 64, MT: 1, NT: 2, Chunk: 64},
		{Rows: 16, KStep: 64, MT: 2, NT: 1, Chunk: 128},
	}
	for _, typ := range []tensor.DType{tensor.BF16, tensor.F16} {
		for ci, cfg := range configs {
			sh := shapes[ci]
			for _, p := range paths(cfg) {
				t.Run(fmt.Sprintf("%s %dx%dx%d with %s in %s is within bf16 rounding", typ, sh.m, sh.n, sh.k, cfg, p.name), func(t *testing.T) {
					r := rng(uint64(100 + ci))
					plain := RandomWeight(typ, sh.k, sh.n, 1, r)
					w := clone(plain)
					if err := NewBufferType().Import(w); err != nil {
						t.Fatal(err)
					}
					b := newTestBackend(t, p.opts)
					p.setUp(b)
					op := RandomMulMat(w, sh.m, r)
					name := runOp(t, b, p.threshold, op)
					// The tiles see bf16 activations; the AVX-512 path keeps them in float32.
					limit := 1e-5
					if p.threshold == 0 {
						limit = 8e-3
					}
					if typ == tensor.F16 {
						limit = 8e-3
					}
					if e := relErr(op.Dst.F32, refOp(plain, op)); e > limit {
						t.Errorf("%s: relative error %.2g, want < %g", name, e, limit)
					}
				})
			}
		}
	}
}

func TestMulMatIDGroupsTokensPerExpert(t *testing.T) {
	cases := []struct {
		typ              tensor.DType
		e, used, m, n, k int
		shared           bool
	}{
		{tensor.Q4_0, 8, 2, 13, 32, 64, true},
		{tensor.Q8_0, 16, 4, 9, 64, 96, false},
		{tensor.BF16, 6, 3, 11, 32, 64, false},
		{tensor.Q4_0, 4, 2, 40, 32, 128, false},
	}
	cfg := DefaultConfig
	for _, c := range cases {
		for _, p := range append(paths(cfg), path{"tiles for large experts, AVX-512 for small", Options{Config: cfg, Emulate: true}, 12, true}) {
			t.Run(fmt.Sprintf("%s %d experts, %d used, %d tokens, shared=%v, in %s", c.typ, c.e, c.used, c.m, c.shared, p.name), func(t *testing.T) {
				r := rng(uint64(c.e*100 + c.m))
				plain := RandomWeight(c.typ, c.k, c.n, c.e, r)
				w := clone(plain)
				if err := NewBufferType().Import(w); err != nil {
					t.Fatal(err)
				}
				b := newTestBackend(t, p.opts)
				p.setUp(b)
				op := RandomMulMatID(w, c.m, c.used, c.shared, r)
				name := runOp(t, b, p.threshold, op)
				limit := 0.02
				if c.typ == tensor.BF16 {
					limit = 8e-3
				}
				if e := relErr(op.Dst.F32, refOp(plain, op)); e > limit {
					t.Fatalf("%s: relative error %.2g, want < %g", name, e, limit)
				}
				if c.typ != tensor.BF16 {
					pk := w.Extra.(*weights).i8
					x, ids := op.Src[1], op.Src[2]
					for tok := 0; tok < c.m; tok++ {
						for s := 0; s < c.used; s++ {
							xr := tok*x.Ne[1] + min(s, x.Ne[1]-1)
							want := exactInt8(pk, int(ids.I32[tok*c.used+s]), x.F32[xr*c.k:(xr+1)*c.k])
							got := op.Dst.F32[(tok*c.used+s)*c.n:]
							for n := range want {
								if got[n] != want[n] {
									t.Fatalf("%s: token %d slot %d col %d = %v, exact %v", name, tok, s, n, got[n], want[n])
								}
							}
						}
					}
				}
			})
		}
	}
}

// TestSplitTailHalvesTheLastTasks checks the tail split on its own: the same blocks are covered exactly once, the
// last task of each worker's share is halved by columns where it can be, and too few tasks are left alone.
func TestSplitTailHalvesTheLastTasks(t *testing.T) {
	sets := []rowSet{{tiles: true}}
	var tasks []task
	for m := 0; m < 128; m += 32 {
		for n := 0; n < 160; n += 32 {
			tasks = append(tasks, task{m0: m, m1: m + 32, n0: n, n1: n + 32})
		}
	}
	tasks[len(tasks)-1].n1 = tasks[len(tasks)-1].n0 + 16 // one column block: cannot be split
	const workers, bn = 4, 16
	got, _ := splitTail(append([]task(nil), tasks...), nil, sets, bn, workers)
	if want := len(tasks) + workers - 1; len(got) != want {
		t.Fatalf("%d tasks after the split, want %d", len(got), want)
	}
	for i := 0; i < len(tasks)-workers; i++ {
		if got[i] != tasks[i] {
			t.Fatalf("task %d changed: %+v, was %+v", i, got[i], tasks[i])
		}
	}
	covered := map[[2]int]int{}
	for _, ts := range got {
		for m := ts.m0; m < ts.m1; m += 16 {
			for n := ts.n0; n < ts.n1; n += bn {
				covered[[2]int{m, n}]++
			}
		}
	}
	for _, ts := range tasks {
		for m := ts.m0; m < ts.m1; m += 16 {
			for n := ts.n0; n < ts.n1; n += bn {
				if c := covered[[2]int{m, n}]; c != 1 {
					t.Fatalf("block (%d, %d) covered %d times after the split", m, n, c)
				}
				delete(covered, [2]int{m, n})
			}
		}
	}
	if len(covered) != 0 {
		t.Fatalf("the split covers %d blocks the tasks did not", len(covered))
	}
	for _, h := range got[len(tasks)-workers : len(got)-1] {
		if h.n1-h.n0 != bn {
			t.Fatalf("a tail half spans %d columns, want %d", h.n1-h.n0, bn)
		}
	}
	few := tasks[:4*workers-1]
	if kept, _ := splitTail(append([]task(nil), few...), nil, sets, bn, workers); len(kept) != len(few) {
		t.Fatalf("%d tasks (fewer than four a worker) became %d", len(few), len(kept))
	}
	many := append(append([]task(nil), tasks...), tasks...)
	if kept, _ := splitTail(append([]task(nil), many...), nil, sets, bn, workers); len(kept) != len(many) {
		t.Fatalf("%d tasks (more than eight a worker) became %d", len(many), len(kept))
	}
}

// TestSplitTailKeepsTheBits runs a GEMM whose tail is split (small tasks, so there are many) against the same GEMM
// without the split: the same bits.
func TestSplitTailKeepsTheBits(t *testing.T) {
	r := rng(77)
	w := RandomWeight(tensor.Q8_0, 256, 320, 1, r)
	if err := (&BufferType{Group: 64}).Import(w); err != nil {
		t.Fatal(err)
	}
	op := RandomMulMat(w, 96, r)
	cfg := TileConfig{Rows: 16, KStep: 64, MT: 1, NT: 1, Group: 64}
	var outs [2][]float32
	for i, split := range []bool{false, true} {
		b := newTestBackend(t, Options{Config: cfg, Emulate: true})
		b.eng.taskBytes, b.eng.splitTail = 24<<10, split // 48x48 rectangles: 14 tasks, four to eight a worker
		runOp(t, b, 0, op)
		if split && len(b.eng.tail) != testPool.Threads() {
			t.Fatalf("%d tasks, %d of them split: the split did not happen", len(b.eng.tasks), len(b.eng.tail))
		}
		outs[i] = append([]float32(nil), op.Dst.F32...)
	}
	for i := range outs[0] {
		if math.Float32bits(outs[0][i]) != math.Float32bits(outs[1][i]) {
			t.Fatalf("element %d: %v with the tail split, %v without", i, outs[1][i], outs[0][i])
		}
	}
}
