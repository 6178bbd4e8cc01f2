package amx

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"tilelab/engine/cpu"
	"tilelab/engine/cpu/simd"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// cpuMode computes op as CPU mode does: the CPU backend on the plain weight, on the same pool.
func cpuMode(t *testing.T, plain *graph.Tensor, op *graph.Op) ([]float32, string) {
	t.Helper()
	c := *op
	c.Src = append([]*graph.Tensor{plain}, op.Src[1:]...)
	c.Dst = &graph.Tensor{Name: "cpu dst", Type: tensor.F32, Ne: op.Dst.Ne, F32: make([]float32, len(op.Dst.F32))}
	poison(c.Dst.F32)
	name, err := cpu.New(testPool, cpu.Options{}).Compute(&c)
	if err != nil {
		t.Fatal(err)
	}
	return c.Dst.F32, name
}

func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, CPU mode gives %v", what, i, got[i], want[i])
		}
	}
}

// importKeepingPlain packs a copy of plain, keeping a reference to the copy's plain bytes.
func importKeepingPlain(t *testing.T, plain *graph.Tensor) *graph.Tensor {
	t.Helper()
	w := clone(plain)
	if err := (&BufferType{Group: DefaultConfig.Group, Plain: PlainAlways}).Import(w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestBelowTheThresholdTheAMXBackendIsCPUModeBitForBit(t *testing.T) {
	const thr = 12
	cases := []struct {
		typ    tensor.DType
		op     graph.Kind
		m      int // rows (MUL_MAT) or tokens (MUL_MAT_ID)
		k, n   int
		e, u   int
		shared bool
	}{
		{tensor.Q4_0, graph.MulMat, 1, 256, 96, 1, 0, false},
		{tensor.Q4_0, graph.MulMat, 11, 160, 64, 1, 0, false},
		{tensor.Q8_0, graph.MulMat, 3, 96, 128, 1, 0, false},
		{tensor.F16, graph.MulMat, 5, 80, 64, 1, 0, false},
		{tensor.BF16, graph.MulMat, 1, 64, 96, 1, 0, false},
		{tensor.Q4_0, graph.MulMatID, 1, 128, 64, 16, 8, true},
		{tensor.Q4_0, graph.MulMatID, 1, 128, 64, 16, 8, false},
		{tensor.Q8_0, graph.MulMatID, 3, 64, 32, 4, 2, false},
		{tensor.BF16, graph.MulMatID, 2, 64, 32, 6, 3, true},
	}
	for _, c := range cases {
		name := fmt.Sprintf("%s %s of %d rows, K %d, N %d, %d experts (shared activations %v)", c.typ, c.op, c.m, c.k, c.n, c.e, c.shared)
		t.Run(name+" gives CPU mode's output and names CPU mode's kernel", func(t *testing.T) {
			r := rng(uint64(c.k*c.n + c.m))
			plain := RandomWeight(c.typ, c.k, c.n, c.e, r)
			w := importKeepingPlain(t, plain)
			var op *graph.Op
			if c.op == graph.MulMat {
				op = RandomMulMat(w, c.m, r)
			} else {
				op = RandomMulMatID(w, c.m, c.u, c.shared, r)
			}
			want, cpuKernel := cpuMode(t, plain, op)
			b := newTestBackend(t, Options{Emulate: true, Threshold: thr})
			got := runOp(t, b, thr, op)
			sameBits(t, got, op.Dst.F32, want)
			wantName := fmt.Sprintf("%s (m < %d, plain %s)", cpuKernel, thr, c.typ)
			if got != wantName {
				t.Fatalf("kernel %q, want %q", got, wantName)
			}
			if cpuKernel != simd.Variant() {
				t.Fatalf("CPU mode ran %q, not its simd kernel %q: the comparison would prove nothing", cpuKernel, simd.Variant())
			}
		})
	}
}

func TestFromTheThresholdUpTheTilesRunWithinTolerance(t *testing.T) {
	for _, typ := range []tensor.DType{tensor.Q4_0, tensor.Q8_0, tensor.BF16} {
		t.Run(typ.String()+" at the threshold runs the emulated tiles close to CPU mode", func(t *testing.T) {
			const thr, m = 8, 8
			r := rng(77)
			plain := RandomWeight(typ, 192, 64, 1, r)
			w := importKeepingPlain(t, plain)
			op := RandomMulMat(w, m, r)
			want, _ := cpuMode(t, plain, op)
			b := newTestBackend(t, Options{Emulate: true, Threshold: thr})
			name := runOp(t, b, thr, op)
			if !strings.HasPrefix(name, "amx-") || !strings.HasSuffix(name, "(emulated)") || strings.Contains(name, "plain") {
				t.Fatalf("kernel %q: want the emulated tiles alone", name)
			}
			ref := make([]float64, len(want))
			for i, v := range want {
				ref[i] = float64(v)
			}
			// Both quantize activations to int8 (CPU mode per 32, the tiles per group of 512 by default), so they
			// differ by rounding, not by more.
			if e := relErr(op.Dst.F32, ref); e > 0.02 {
				t.Fatalf("%s: relative difference %.3g from CPU mode", name, e)
			}
			if e := relErr(op.Dst.F32, refOp(plain, op)); e > 0.02 {
				t.Fatalf("%s: relative error %.3g", name, e)
			}
		})
	}
}

func TestExpertsOnBothSidesOfTheThresholdSplitBetweenTilesAndCPUMode(t *testing.T) {
	const thr = 6
	r := rng(31)
	plain := RandomWeight(tensor.Q4_0, 128, 64, 4, r)
	w := importKeepingPlain(t, plain)
	op := RandomMulMatID(w, 16, 2, false, r)
	// Expert 0 gets every token's first slot (16 rows: tiles); experts 1..3 share the second (5 or 6 rows each).
	ids := op.Src[2].I32
	for tok := 0; tok < 16; tok++ {
		ids[2*tok], ids[2*tok+1] = 0, int32(1+tok%3)
	}
	ids[2*15+1] = 1 // expert 1: 6 rows (tiles), experts 2 and 3: 5 rows (CPU mode)
	want, cpuKernel := cpuMode(t, plain, op)
	b := newTestBackend(t, Options{Emulate: true, Threshold: thr})
	name := runOp(t, b, thr, op)
	if !strings.Contains(name, "(emulated)") || !strings.Contains(name, cpuKernel+" (m < 6, plain q4_0)") {
		t.Fatalf("kernel %q: want the emulated tiles and CPU mode's kernel", name)
	}
	n := 64
	ref := refOp(plain, op)
	for entry, e := range ids {
		got, cpuRow := op.Dst.F32[entry*n:(entry+1)*n], want[entry*n:(entry+1)*n]
		if e >= 2 {
			sameBits(t, fmt.Sprintf("entry %d (expert %d, below the threshold)", entry, e), got, cpuRow)
			continue
		}
		if d := relErr(got, ref[entry*n:(entry+1)*n]); d > 0.02 {
			t.Fatalf("entry %d (expert %d, tiles): relative error %.3g", entry, e, d)
		}
	}
}

func TestThePlainBytesAreKeptOnlyWhereThePolicySays(t *testing.T) {
	r := rng(5)
	plain := RandomWeight(tensor.Q4_0, 128, 32, 1, r)
	for _, c := range []struct {
		policy PlainPolicy
		keep   bool
		kernel string // what a 2-row batch runs
	}{
		{PlainAlways, true, "plain q4_0"},
		{PlainIfMapped, false, "(m < 8, packed amx-int8"}, // a heap copy is not a mapped file
		{PlainNever, false, "(m < 8, packed amx-int8"},
	} {
		t.Run(fmt.Sprintf("%s on memory of the Go heap keeps them: %v", c.policy, c.keep), func(t *testing.T) {
			w := clone(plain)
			if err := (&BufferType{Group: DefaultConfig.Group, Plain: c.policy}).Import(w); err != nil {
				t.Fatal(err)
			}
			pw := w.Extra.(*weights)
			if (pw.plain != nil) != c.keep {
				t.Fatalf("plain kept: %v", pw.plain != nil)
			}
			// Whatever is kept, the tensor itself describes the packing, and CPU kernels refuse it.
			if w.Layout != LayoutInt8 || len(w.Data) != len(pw.i8.Q) || &w.Data[0] != &pw.i8.Q[0] {
				t.Fatalf("t.Data/t.Layout do not describe the packing (layout %s, %d bytes)", w.Layout, len(w.Data))
			}
			op := RandomMulMat(w, 2, r)
			if ok, why := cpu.New(testPool, cpu.Options{}).SupportsOp(op); ok {
				t.Fatalf("the CPU backend would read the packed tensor: %s", why)
			}
			name := runOp(t, newTestBackend(t, Options{Emulate: true}), 8, op)
			if !strings.Contains(name, c.kernel) {
				t.Fatalf("kernel %q, want one saying %q", name, c.kernel)
			}
		})
	}
}

func TestADecodeStepAllocatesNoMoreThanInCPUMode(t *testing.T) {
	r := rng(12)
	for _, c := range []struct {
		name string
		op   func(w *graph.Tensor) *graph.Op
		e    int
	}{
		{"a MUL_MAT of one row", func(w *graph.Tensor) *graph.Op { return RandomMulMat(w, 1, r) }, 1},
		{"a MUL_MAT_ID of one token over 8 of 16 experts", func(w *graph.Tensor) *graph.Op { return RandomMulMatID(w, 1, 8, true, r) }, 16},
	} {
		t.Run(c.name+" allocates no more in AMX mode than in CPU mode", func(t *testing.T) {
			plain := RandomWeight(tensor.Q4_0, 256, 64, c.e, r)
			w := importKeepingPlain(t, plain)
			op := c.op(w)
			b := newTestBackend(t, Options{Emulate: true})
			cb := cpu.New(testPool, cpu.Options{})
			cop := *op
			cop.Src = append([]*graph.Tensor{plain}, op.Src[1:]...)
			for _, run := range []func() (string, error){func() (string, error) { return b.Compute(op) }, func() (string, error) { return cb.Compute(&cop) }} {
				if _, err := run(); err != nil { // warm-up: scratch grows once
					t.Fatal(err)
				}
			}
			amxAllocs := testing.AllocsPerRun(20, func() { b.Compute(op) })
			cpuAllocs := testing.AllocsPerRun(20, func() { cb.Compute(&cop) })
			if amxAllocs > cpuAllocs {
				t.Fatalf("%.1f allocations per op in AMX mode, %.1f in CPU mode", amxAllocs, cpuAllocs)
			}
		})
	}
}

func newCPU() *cpu.Backend { return cpu.New(testPool, cpu.Options{}) }

func TestRefusingTheOpsOfOtherBackendsAllocatesNothing(t *testing.T) {
	r := rng(14)
	b := newTestBackend(t, Options{Emulate: true})
	norm := &graph.Op{Kind: graph.RMSNorm, Name: "norm", Dst: randomF32("d", [4]int{64, 1, 1, 1}, r), Src: []*graph.Tensor{randomF32("x", [4]int{64, 1, 1, 1}, r)}}
	plainMat := RandomMulMat(RandomWeight(tensor.Q4_0, 64, 32, 1, r), 1, r)
	unset := RandomWeight(tensor.Q4_0, 64, 32, 1, r)
	unset.Layout = "" // plain, as graph.StorageLayout reads it
	unsetMat := RandomMulMat(unset, 1, r)
	for _, c := range []struct {
		name string
		op   *graph.Op
	}{{"an RMS_NORM", norm}, {"a MUL_MAT of a plain weight", plainMat}, {"a MUL_MAT of a weight with no layout set", unsetMat}} {
		t.Run(c.name+" is refused without allocating", func(t *testing.T) {
			if ok, why := b.SupportsOp(c.op); ok || why == "" {
				t.Fatalf("SupportsOp = %v, %q", ok, why)
			}
			if a := testing.AllocsPerRun(10, func() { b.SupportsOp(c.op) }); a != 0 {
				t.Fatalf("%.1f allocations per refusal", a)
			}
		})
	}
}
