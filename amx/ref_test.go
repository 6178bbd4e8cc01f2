package amx

import (
	"math"
	"math/rand/v2"
	"testing"

	"tilelab/engine/graph"
	"tilelab/engine/pool"
)

// dequantRow is the float64 value of row r of a plain weight: the ggml meaning of the bytes (each value is exact
// in float32, so widening loses nothing).
func dequantRow(w *graph.Tensor, r int) []float64 {
	row := make([]float32, w.Ne[0])
	deq(w, r, row)
	out := make([]float64, len(row))
	for i, v := range row {
		out[i] = float64(v)
	}
	return out
}

// refMulMatID is the float64 meaning of a MUL_MAT or MUL_MAT_ID on the plain weight (before packing):
// out[row][n] for each destination row.
func refOp(plain *graph.Tensor, op *graph.Op) []float64 {
	k, n := plain.Ne[0], plain.Ne[1]
	x := op.Src[1]
	out := make([]float64, len(op.Dst.F32))
	dot := func(wr []float64, xr []float32) float64 {
		var s float64
		for i := range wr {
			s += wr[i] * float64(xr[i])
		}
		return s
	}
	rows := map[int][]float64{}
	row := func(r int) []float64 {
		if v, ok := rows[r]; ok {
			return v
		}
		rows[r] = dequantRow(plain, r)
		return rows[r]
	}
	if op.Kind == graph.MulMat {
		for m := 0; m < x.Rows(); m++ {
			for j := 0; j < n; j++ {
				out[m*n+j] = dot(row(j), x.F32[m*k:(m+1)*k])
			}
		}
		return out
	}
	ids := op.Src[2]
	u, m, xu := ids.Ne[0], ids.Ne[1], x.Ne[1]
	for t := 0; t < m; t++ {
		for s := 0; s < u; s++ {
			e := int(ids.I32[t*u+s])
			xr := t*xu + min(s, xu-1)
			for j := 0; j < n; j++ {
				out[(t*u+s)*n+j] = dot(row(e*n+j), x.F32[xr*k:(xr+1)*k])
			}
		}
	}
	return out
}

// exactInt8 computes, in plain Go, exactly what every int8 kernel computes from the packed weights and the
// quantized activations: per group, the int32 dot, scaled by weight scale x activation scale, added in group
// order. Kernels must match it bit for bit.
func exactInt8(p *packedInt8, e int, x []float32) []float32 {
	var a actInt8
	a.reset(1, p.Kp, p.Group)
	a.quantizeRow(0, x, false)
	out := make([]float32, p.N)
	for n := 0; n < p.N; n++ {
		var acc float32
		for g := 0; g < p.Groups; g++ {
			var d int32
			for kk := g * p.Group; kk < (g+1)*p.Group; kk++ {
				d += int32(int8(a.Q[kk])) * int32(int8(p.Q[p.qIndex(e, n, kk)]))
			}
			s := p.WS[p.sIndex(e, n, g)] * a.XS[g]
			acc += float32(float32(d) * s)
		}
		out[n] = acc
	}
	return out
}

// relErr is ‖got − want‖ / ‖want‖.
func relErr(got []float32, want []float64) float64 {
	var num, den float64
	for i := range want {
		d := float64(got[i]) - want[i]
		num += d * d
		den += want[i] * want[i]
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

func poison(f []float32) {
	for i := range f {
		f[i] = float32(math.NaN())
	}
}

// testPool is shared by the tests: a few workers, so the chunking runs on this 2-core machine too.
var testPool = pool.New(3)

func newTestBackend(t *testing.T, o Options) *Backend {
	t.Helper()
	t.Setenv("TILELAB_AMX_CALIBRATION", t.TempDir()+"/none.json")
	b, err := NewBackend(testPool, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rng(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed*7919+1)) }

func clone(w *graph.Tensor) *graph.Tensor {
	c := *w
	c.Data = append([]byte(nil), w.Data...)
	return &c
}
