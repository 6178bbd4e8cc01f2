package backend_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tilelab/engine/backend"
	"tilelab/engine/cpu"
	"tilelab/engine/graph"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// randomWeight fills an n x k weight of type t with random values (never zeros). Types TileLab can quantize are
// quantized from random floats; the K-quants, which it only decodes, get random bytes with their float16 scales
// set to small finite values so every block decodes to ordinary numbers.
func randomWeight(t *testing.T, rng *rand.Rand, typ tensor.DType, k, n int) []byte {
	t.Helper()
	data := make([]byte, typ.RowBytes(k)*n)
	switch typ {
	case tensor.Q4_K, tensor.Q6_K:
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		bb := typ.BlockBytes()
		for b := 0; b < len(data)/bb; b++ {
			blk := data[b*bb : (b+1)*bb]
			scale := tensor.F32ToF16(0.001 + 0.01*rng.Float32())
			if typ == tensor.Q4_K { // d then dmin lead the block
				binary.LittleEndian.PutUint16(blk[0:], scale)
				binary.LittleEndian.PutUint16(blk[2:], tensor.F32ToF16(0.001+0.01*rng.Float32()))
			} else { // Q6_K keeps d last
				binary.LittleEndian.PutUint16(blk[bb-2:], scale)
			}
		}
	default:
		src := make([]float32, k*n)
		for i := range src {
			src[i] = float32(rng.NormFloat64())
		}
		if err := tensor.Quantize(typ, src, data); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

func weightTensor(t *testing.T, rng *rand.Rand, typ tensor.DType, k, n int) *graph.Tensor {
	w := &graph.Tensor{Name: fmt.Sprintf("blk.0.w_%s_%dx%d.weight", typ, k, n), Type: typ, Ne: [4]int{k, n, 1, 1}, Layout: tensor.Plain, BufferType: "CPU"}
	raw := randomWeight(t, rng, typ, k, n)
	if typ == tensor.F32 {
		w.F32 = make([]float32, k*n)
		if err := tensor.Dequantize(typ, raw, w.F32); err != nil {
			t.Fatal(err)
		}
	} else {
		w.Data = raw
	}
	return w
}

// referenceMulMat is Dst[m][n] = Σk W[n][k]·X[m][k] in float64 over the dequantized weight.
func referenceMulMat(t *testing.T, w *graph.Tensor, x []float32, m int) []float64 {
	k, n := w.Ne[0], w.Ne[1]
	wf := w.F32
	if w.Type != tensor.F32 {
		wf = make([]float32, k*n)
		if err := tensor.Dequantize(w.Type, w.Data, wf); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]float64, n*m)
	for i := range m {
		for j := range n {
			var s float64
			for l := range k {
				s += float64(wf[j*k+l]) * float64(x[i*k+l])
			}
			out[i*n+j] = s
		}
	}
	return out
}

func relL2(got []float32, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	return math.Sqrt(num / den)
}

// Seed bug 1: capability is not acceleration. The CPU backend computes MUL_MAT on a plain weight of every type it
// reads, whether or not AMX would accelerate that weight: ne1 = 64 is a shape AMX takes, ne1 = 48 (not a multiple
// of 32) one it refuses, and F32 one it never packs. SupportsOp must say yes to all of them, and the result must
// match a float64 reference.
func TestCPUComputesMulMatOnEveryPlainWeight(t *testing.T) {
	p := pool.New(2)
	defer p.Close()
	rng := rand.New(rand.NewPCG(7, 11))
	types := []tensor.DType{tensor.F32, tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K}
	for _, ref := range []bool{true, false} {
		be := cpu.New(p, cpu.Options{Reference: ref})
		for _, typ := range types {
			for _, n := range []int{64, 48} {
				k := 256 // one K-quant super-block
				m := 3
				name := fmt.Sprintf("%s weight of %d rows (reference=%v) is supported and computed", typ, n, ref)
				t.Run(name, func(t *testing.T) {
					w := weightTensor(t, rng, typ, k, n)
					x := &graph.Tensor{Name: "x", Type: tensor.F32, Ne: [4]int{k, m, 1, 1}, F32: make([]float32, k*m)}
					for i := range x.F32 {
						x.F32[i] = float32(rng.NormFloat64())
					}
					y := &graph.Tensor{Name: "y", Type: tensor.F32, Ne: [4]int{n, m, 1, 1}, F32: make([]float32, n*m)}
					op := &graph.Op{Kind: graph.MulMat, Name: "blk.0.w", Dst: y, Src: []*graph.Tensor{w, x}}
					if ok, why := be.SupportsOp(op); !ok {
						t.Fatalf("CPU refused MUL_MAT on a plain %s weight: %s", typ, why)
					}
					if err := backend.CheckWeight(oneBackend(be), w, graph.MulMat); err != nil {
						t.Fatalf("load-time check refused a plain weight: %v", err)
					}
					if _, err := be.Compute(op); err != nil {
						t.Fatal(err)
					}
					// The fast path quantizes activations to Q8_0 (as llama.cpp does), which costs about 1%.
					tol := 1e-5
					if !ref {
						tol = 2e-2
					}
					if e := relL2(y.F32, referenceMulMat(t, w, x.F32, m)); !(e <= tol) {
						t.Errorf("relative L2 error %.3g exceeds %.0e", e, tol)
					}
				})
			}
		}
	}
}

func oneBackend(b backend.Backend) *backend.Registry {
	reg := backend.NewRegistry()
	reg.AddBackend(b)
	return reg
}

// Seed bugs 2 and 3 against the real CPU backend: a weight packed for AMX, reached directly or through a view
// whose own fields look plain, must be refused by SupportsOp and by Compute, with an error naming the layout, and
// the output must stay untouched.
func TestCPURefusesAPackedWeightDirectlyOrThroughAView(t *testing.T) {
	p := pool.New(2)
	defer p.Close()
	be := cpu.New(p, cpu.Options{})
	rng := rand.New(rand.NewPCG(3, 5))
	packed := weightTensor(t, rng, tensor.Q4_0, 64, 32)
	packed.Name, packed.Layout, packed.BufferType = "blk.0.ffn_up_exps.weight", amxLayout, "AMX"
	packed.Ne[2] = 1
	view := &graph.Tensor{Name: "blk.0.ffn_up_exps.weight (view)", Type: packed.Type, Ne: packed.Ne, Data: packed.Data, ViewSrc: packed}
	for _, c := range []struct {
		name string
		w    *graph.Tensor
	}{{"the packed weight itself", packed}, {"a view of it", view}} {
		t.Run(c.name, func(t *testing.T) {
			x := &graph.Tensor{Name: "x", Type: tensor.F32, Ne: [4]int{64, 2, 1, 1}, F32: make([]float32, 128)}
			for i := range x.F32 {
				x.F32[i] = float32(rng.NormFloat64())
			}
			y := &graph.Tensor{Name: "y", Type: tensor.F32, Ne: [4]int{32, 2, 1, 1}, F32: make([]float32, 64)}
			for i := range y.F32 {
				y.F32[i] = 42
			}
			op := &graph.Op{Kind: graph.MulMat, Name: "blk.0.ffn_up", Dst: y, Src: []*graph.Tensor{c.w, x}}
			if ok, why := be.SupportsOp(op); ok {
				t.Errorf("CPU accepted MUL_MAT on a weight packed as %s", amxLayout)
			} else if !strings.Contains(why, string(amxLayout)) {
				t.Errorf("refusal %q does not name the layout", why)
			}
			if _, err := be.Compute(op); err == nil || !strings.Contains(err.Error(), string(amxLayout)) {
				t.Errorf("Compute on a packed weight returned %v, want an error naming the layout", err)
			}
			for i, v := range y.F32 {
				if v != 42 {
					t.Fatalf("y[%d] = %v: the CPU wrote output from packed bytes", i, v)
				}
			}
		})
	}
}
