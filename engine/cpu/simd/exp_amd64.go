package simd

import (
	"math"
	"unsafe"
)

//go:noescape
func maxAVX512(x *float32, n int) float32

//go:noescape
func expSumAVX512(dst, x *float32, n int, shift float32) float32

//go:noescape
func scaleAVX512(x *float32, n int, s float32)

//go:noescape
func swigluAVX512(dst, gate, u *float32, n int)

// softmaxAVX512 is Softmax's AVX-512 path (lengths checked, at least one value).
func softmaxAVX512(dst, x []float32) error {
	mx := maxAVX512(unsafe.SliceData(x), len(x))
	if math.IsInf(float64(mx), -1) {
		return errFullyMasked
	}
	sum := expSumAVX512(unsafe.SliceData(dst), unsafe.SliceData(x), len(x), mx)
	scaleAVX512(unsafe.SliceData(dst), len(dst), 1/sum)
	return nil
}

// swigluAVX512Slices is SwiGLU's (u non-nil) and SiLU's (u nil) AVX-512 path.
func swigluAVX512Slices(dst, g, u []float32) {
	if len(dst) == 0 {
		return
	}
	var up *float32
	if u != nil {
		up = unsafe.SliceData(u)
	}
	swigluAVX512(unsafe.SliceData(dst), unsafe.SliceData(g), up, len(dst))
}
