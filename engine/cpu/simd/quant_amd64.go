package simd

import "unsafe"

// quantQ8AVX512 quantizes nb blocks of 32 floats from x into block_q8_0 at dst.
//
//go:noescape
func quantQ8AVX512(dst *byte, x *float32, nb int)

// quantizeQ8AVX512 is QuantizeQ8_0's AVX-512 path (sizes already checked).
func quantizeQ8AVX512(dst []byte, x []float32) {
	if nb := len(x) / QK; nb > 0 {
		quantQ8AVX512(unsafe.SliceData(dst), unsafe.SliceData(x), nb)
	}
}
