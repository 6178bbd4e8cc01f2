package simd

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"unsafe"

	"tilelab/engine/tensor"
)

// randFloats gives values spread over several magnitudes, with no zeros, so every block has a distinct scale.
func randFloats(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()*math.Exp(r.Float64()*3-1.5)) + 1e-3
	}
	return x
}

// randWeights builds n random rows of k elements of type wt in ggml's block layout.
func randWeights(r *rand.Rand, wt tensor.DType, n, k int) []byte {
	rb := wt.RowBytes(k)
	w := make([]byte, n*rb)
	switch wt {
	case tensor.Q8_0:
		for j := 0; j < n; j++ {
			quantizeQ8Generic(w[j*rb:], randFloats(r, k))
		}
	case tensor.Q4_0:
		for b := 0; b < len(w)/18; b++ {
			binary.LittleEndian.PutUint16(w[b*18:], floatToHalf(float32(r.Float64()*0.1+0.001)))
			for l := 2; l < 18; l++ {
				w[b*18+l] = byte(r.IntN(256))
			}
		}
	case tensor.F16:
		for e := 0; e < n*k; e++ {
			binary.LittleEndian.PutUint16(w[2*e:], floatToHalf(float32(r.NormFloat64())))
		}
	case tensor.BF16:
		for e := 0; e < n*k; e++ {
			binary.LittleEndian.PutUint16(w[2*e:], uint16(math.Float32bits(float32(r.NormFloat64()))>>16))
		}
	case tensor.F32:
		for e := 0; e < n*k; e++ {
			binary.LittleEndian.PutUint32(w[4*e:], math.Float32bits(float32(r.NormFloat64())))
		}
	}
	return w
}

// dequant expands one row of k elements of type wt to float64.
func dequant(wt tensor.DType, row []byte, k int) []float64 {
	out := make([]float64, k)
	switch wt {
	case tensor.Q4_0:
		for b := 0; b < k/32; b++ {
			d := float64(halfToFloat(le16(row[b*18:])))
			for l := 0; l < 16; l++ {
				q := row[b*18+2+l]
				out[b*32+l] = d * float64(int(q&15)-8)
				out[b*32+16+l] = d * float64(int(q>>4)-8)
			}
		}
	case tensor.Q8_0:
		for b := 0; b < k/32; b++ {
			d := float64(halfToFloat(le16(row[b*34:])))
			for l := 0; l < 32; l++ {
				out[b*32+l] = d * float64(int8(row[b*34+2+l]))
			}
		}
	default:
		for e := range out {
			out[e] = float64(weightF(wt, row, e))
		}
	}
	return out
}

// closeTo reports whether got is within float32 accumulation error of want, given Σ|terms| of the sum.
func closeTo(got float32, want, absSum float64, terms int) bool {
	tol := absSum*float64(terms+8)*3e-7 + 1e-30
	return math.Abs(float64(got)-want) <= tol
}

// unsafeFloats views b (a multiple of 4 bytes) as float32s.
func unsafeFloats(b []byte) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}
