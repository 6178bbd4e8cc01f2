package simd

import (
	"encoding/binary"
	"math"
	"unsafe"

	"tilelab/engine/tensor"
)

// The plain-Go kernels: the reference every fast path is tested against, and the fallback on other CPUs.

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

func quantizeQ8Generic(dst []byte, x []float32) {
	for b := 0; b < len(x)/QK; b++ {
		xs := x[b*QK : b*QK+QK]
		out := dst[b*34 : b*34+34]
		var amax float32
		for _, v := range xs {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		binary.LittleEndian.PutUint16(out, floatToHalf(d))
		for j, v := range xs {
			out[2+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
}

// dotQ4Q8 is one Q4_0 row against one Q8_0 row, as ggml's ggml_vec_dot_q4_0_q8_0 defines it.
func dotQ4Q8(w, a []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb, ab := w[b*18:b*18+18], a[b*34:b*34+34]
		var s int32
		for l := 0; l < 16; l++ {
			q := wb[2+l]
			s += (int32(q&15)-8)*int32(int8(ab[2+l])) + (int32(q>>4)-8)*int32(int8(ab[18+l]))
		}
		sum += float32(s) * halfToFloat(le16(wb)) * halfToFloat(le16(ab))
	}
	return sum
}

// dotQ8Q8 is one Q8_0 row against one Q8_0 row.
func dotQ8Q8(w, a []byte, nb int) float32 {
	var sum float32
	for b := 0; b < nb; b++ {
		wb, ab := w[b*34:b*34+34], a[b*34:b*34+34]
		var s int32
		for l := 0; l < 32; l++ {
			s += int32(int8(wb[2+l])) * int32(int8(ab[2+l]))
		}
		sum += float32(s) * halfToFloat(le16(wb)) * halfToFloat(le16(ab))
	}
	return sum
}

func matMulQ4Generic(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
	nb := k / QK
	wr, ar := nb*18, nb*34
	for i := 0; i < m; i++ {
		for j := n0; j < n1; j++ {
			dst[i*n+j] = dotQ4Q8(w[j*wr:], a[i*ar:], nb)
		}
	}
}

func matMulQ8Generic(w []byte, k int, a []byte, m int, dst []float32, n, n0, n1 int) {
	nb := k / QK
	wr, ar := nb*34, nb*34
	for i := 0; i < m; i++ {
		for j := n0; j < n1; j++ {
			dst[i*n+j] = dotQ8Q8(w[j*wr:], a[i*ar:], nb)
		}
	}
}

// weightF reads element e of a float weight row.
func weightF(wt tensor.DType, row []byte, e int) float32 {
	switch wt {
	case tensor.F16:
		return halfToFloat(le16(row[2*e:]))
	case tensor.BF16:
		return bf16ToFloat(le16(row[2*e:]))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(row[4*e:]))
}

func matMulFGeneric(wt tensor.DType, w []byte, k, ws int, x []float32, m int, dst []float32, n, n0, n1 int) {
	rb := wt.RowBytes(k)
	for i := 0; i < m; i++ {
		xs := x[i*k : i*k+k]
		for j := n0; j < n1; j++ {
			dst[i*n+j] = dotFTail(wt, w[j*ws:j*ws+rb], xs, 0)
		}
	}
}

// dotFTail is Σ W[e]·x[e] over e in [from, len(x)), the part of a float dot product the vector kernels leave.
func dotFTail(wt tensor.DType, row []byte, x []float32, from int) float32 {
	var s float32
	if wt == tensor.F32 {
		ws := unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(row))), len(x))
		for e := from; e < len(x); e++ {
			s += ws[e] * x[e]
		}
		return s
	}
	for e := from; e < len(x); e++ {
		s += weightF(wt, row, e) * x[e]
	}
	return s
}
