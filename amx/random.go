package amx

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// f32ToF16 rounds to the nearest half (even on ties); values beyond the half range become infinities.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	man := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000:
		return sign | 0x7e00
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		man |= 0x800000
		shift := uint(14 - exp)
		h := man >> shift
		rem := man & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

// quantizeBlock writes one Q8_0 or Q4_0 block of x (32 values) the way ggml's reference quantizers do.
func quantizeBlock(t tensor.DType, x []float32, b []byte) {
	switch t {
	case tensor.Q8_0:
		var amax float32
		for _, v := range x[:32] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(b, f32ToF16(d))
		for i, v := range x[:32] {
			b[2+i] = byte(int8(math.Round(float64(v * id))))
		}
	case tensor.Q4_0:
		var amax, mx float32
		for _, v := range x[:32] {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := mx / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(b, f32ToF16(d))
		for i := 0; i < 16; i++ {
			q0 := min(15, int(x[i]*id+8.5))
			q1 := min(15, int(x[i+16]*id+8.5))
			b[2+i] = byte(q0) | byte(q1)<<4
		}
	}
}

// RandomWeight makes a plain (GGUF-layout) weight of e experts x n rows x k with random values in [-1, 1),
// quantized to t (q8_0, q4_0, f16, bf16). It is for tests, calibration and the workbench's kernel sweeps.
func RandomWeight(t tensor.DType, k, n, e int, rng *rand.Rand) *graph.Tensor {
	ne := [4]int{k, n, 1, 1}
	if e > 1 {
		ne[2] = e
	}
	w := &graph.Tensor{Name: fmt.Sprintf("random_%s_%dx%dx%d", t, k, n, e), Type: t, Ne: ne, Layout: tensor.Plain}
	rows := n * e
	w.Data = make([]byte, t.RowBytes(k)*rows)
	seed := rng.Uint64()
	parallelRows(rows, func(lo, hi int) {
		r := rand.New(rand.NewPCG(seed, uint64(lo)))
		x := make([]float32, k)
		for i := lo; i < hi; i++ {
			for j := range x {
				x[j] = r.Float32()*2 - 1
			}
			row := w.Data[i*t.RowBytes(k):]
			switch t {
			case tensor.Q8_0, tensor.Q4_0:
				for b := 0; b < k/32; b++ {
					quantizeBlock(t, x[b*32:], row[b*t.BlockBytes():])
				}
			case tensor.F16:
				for j, v := range x {
					binary.LittleEndian.PutUint16(row[2*j:], f32ToF16(v))
				}
			case tensor.BF16:
				for j, v := range x {
					binary.LittleEndian.PutUint16(row[2*j:], toBF16(v))
				}
			}
		}
	})
	return w
}

func randomF32(name string, ne [4]int, rng *rand.Rand) *graph.Tensor {
	t := &graph.Tensor{Name: name, Type: tensor.F32, Ne: ne}
	t.F32 = make([]float32, t.Elems())
	for i := range t.F32 {
		t.F32[i] = rng.Float32()*2 - 1
	}
	return t
}

// RandomMulMat builds a MUL_MAT of weight w (packed or not) with m random activation rows.
func RandomMulMat(w *graph.Tensor, m int, rng *rand.Rand) *graph.Op {
	k, n := w.Ne[0], w.Ne[1]
	x := randomF32("x", [4]int{k, m, 1, 1}, rng)
	dst := &graph.Tensor{Name: "dst", Type: tensor.F32, Ne: [4]int{n, m, 1, 1}, F32: make([]float32, n*m)}
	return &graph.Op{Kind: graph.MulMat, Name: "random_mul_mat", Layer: -1, Dst: dst, Src: []*graph.Tensor{w, x}}
}

// RandomMulMatID builds a MUL_MAT_ID of expert stack w with m tokens, each using `used` distinct random experts;
// shared activations (one row per token, as for gate and up projections) when shared is set.
func RandomMulMatID(w *graph.Tensor, m, used int, shared bool, rng *rand.Rand) *graph.Op {
	k, n, e := w.Ne[0], w.Ne[1], max(w.Ne[2], 1)
	xu := used
	if shared {
		xu = 1
	}
	x := randomF32("x", [4]int{k, xu, m, 1}, rng)
	ids := &graph.Tensor{Name: "ids", Type: tensor.I32, Ne: [4]int{used, m, 1, 1}, I32: make([]int32, used*m)}
	for t := 0; t < m; t++ {
		perm := rng.Perm(e)
		for s := 0; s < used; s++ {
			ids.I32[t*used+s] = int32(perm[s])
		}
	}
	dst := &graph.Tensor{Name: "dst", Type: tensor.F32, Ne: [4]int{n, used, m, 1}, F32: make([]float32, n*used*m)}
	return &graph.Op{Kind: graph.MulMatID, Name: "random_mul_mat_id", Layer: -1, Dst: dst, Src: []*graph.Tensor{w, x, ids}}
}
