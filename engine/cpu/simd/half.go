package simd

import "tilelab/engine/tensor"

// The plain-Go kernels convert block scales and half-precision weights with engine/tensor's exact conversions
// (round-to-nearest-even, as F16C and ggml's reference do); the short names keep the kernels readable.
func halfToFloat(h uint16) float32 { return tensor.F16ToF32(h) }
func floatToHalf(f float32) uint16 { return tensor.F32ToF16(f) }
func bf16ToFloat(h uint16) float32 { return tensor.BF16ToF32(h) }

// halfTable maps every fp16 bit pattern to its float32 value. The assembly kernels read block scales through it
// with broadcast loads, which keeps the conversion off the shuffle port their loops are bound by.
var halfTable [1 << 16]float32

func init() {
	for h := range halfTable {
		halfTable[h] = halfToFloat(uint16(h))
	}
}
