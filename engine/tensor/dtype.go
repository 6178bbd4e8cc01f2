// Package tensor defines element types and block formats with ggml's exact bit layouts,
// and reference (plain Go) quantization and dequantization.
package tensor

import (
	"fmt"
	"strings"
)

// DType is a ggml element type; the numeric values are ggml's type ids, as stored in GGUF files.
type DType uint32

// The element types TileLab understands.
const (
	F32  DType = 0
	F16  DType = 1
	Q4_0 DType = 2
	Q8_0 DType = 8
	Q4_K DType = 12
	Q6_K DType = 14
	I32  DType = 26 // indices, such as the experts chosen for each token
	BF16 DType = 30
)

type typeInfo struct {
	name       string
	blockSize  int // elements per block
	blockBytes int // bytes per block
}

var types = map[DType]typeInfo{
	F32:  {"f32", 1, 4},
	F16:  {"f16", 1, 2},
	Q4_0: {"q4_0", 32, 18},
	Q8_0: {"q8_0", 32, 34},
	Q4_K: {"q4_k", 256, 144},
	Q6_K: {"q6_k", 256, 210},
	BF16: {"bf16", 1, 2},
	I32:  {"i32", 1, 4},
}

// Known reports whether TileLab understands this type id.
func (t DType) Known() bool { _, ok := types[t]; return ok }

// String returns the lower-case ggml name ("q4_0"), or "type(N)" for an unknown id.
func (t DType) String() string {
	if ti, ok := types[t]; ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements in one block (1 for plain float types); 0 if unknown.
func (t DType) BlockSize() int { return types[t].blockSize }

// BlockBytes is the size of one block in bytes; 0 if unknown.
func (t DType) BlockBytes() int { return types[t].blockBytes }

// Quantized reports whether the type stores blocks with scales rather than plain floats.
func (t DType) Quantized() bool { return t.BlockSize() > 1 }

// RowBytes is the size in bytes of n elements; n must be a multiple of BlockSize.
func (t DType) RowBytes(n int) int {
	ti := types[t]
	if ti.blockSize == 0 {
		return 0
	}
	return n / ti.blockSize * ti.blockBytes
}

// ParseDType reads a type name such as "q4_0" or "F16" (case-insensitive).
func ParseDType(s string) (DType, error) {
	l := strings.ToLower(s)
	for t, ti := range types {
		if ti.name == l {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown tensor type %q (known: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)", s)
}

// Layout says how a tensor's bytes are arranged in memory. Every tensor carries one, and a kernel
// that does not understand a layout refuses the tensor rather than reading its bytes as another format.
type Layout string

// Plain is ggml's own row-major block layout, as stored in GGUF files.
const Plain Layout = "plain"
