package cpu

import (
	"encoding/binary"
	"fmt"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// rowReader turns row r of a weight into float32, whatever the weight's type. Quantized rows are decoded block by
// block into the caller's buffer, so no full float copy of a weight ever exists.
type rowReader struct {
	t        *graph.Tensor
	k        int // elements per row
	rowBytes int
}

func newRowReader(t *graph.Tensor, op *graph.Op) (rowReader, error) {
	if err := checkLayout(t, op); err != nil {
		return rowReader{}, err
	}
	r := rowReader{t: t, k: t.Ne[0]}
	switch t.Type {
	case tensor.F32:
		if len(t.F32) < t.Elems() {
			return r, fmt.Errorf("tensor %s: %d floats for shape %s", t.Name, len(t.F32), t.Shape())
		}
		return r, nil
	case tensor.F16, tensor.BF16, tensor.Q8_0, tensor.Q4_0, tensor.Q4_K, tensor.Q6_K:
	default:
		return r, fmt.Errorf("tensor %s: type %s is not readable by the CPU backend", t.Name, t.Type)
	}
	if bs := t.Type.BlockSize(); r.k%bs != 0 {
		return r, fmt.Errorf("tensor %s: row length %d is not a multiple of the %s block (%d)", t.Name, r.k, t.Type, bs)
	}
	r.rowBytes = t.Type.RowBytes(r.k)
	if len(t.Data) < r.rowBytes*t.Rows() {
		return r, fmt.Errorf("tensor %s: %d bytes for %s %s (need %d)", t.Name, len(t.Data), t.Type, t.Shape(), r.rowBytes*t.Rows())
	}
	return r, nil
}

// row returns row i as float32: a slice of the tensor itself for F32, otherwise decoded into buf (len ≥ k).
func (r rowReader) row(i int, buf []float32) []float32 {
	if r.t.Type == tensor.F32 {
		return r.t.F32[i*r.k : (i+1)*r.k]
	}
	dequantizeRow(r.t.Type, r.t.Data[i*r.rowBytes:(i+1)*r.rowBytes], buf[:r.k])
	return buf[:r.k]
}

// checkLayout refuses any layout other than ggml's plain one: reading packed bytes as plain blocks is exactly the
// seed's NaN bug.
func checkLayout(t *graph.Tensor, op *graph.Op) error {
	if l := t.StorageLayout(); l != tensor.Plain {
		return &LayoutError{Tensor: t.Name, Op: op.Kind.String() + " " + op.Name, Layout: l}
	}
	return nil
}

// LayoutError is returned when a CPU kernel is handed a tensor in a layout it does not understand.
type LayoutError struct {
	Tensor string
	Op     string
	Layout tensor.Layout
}

// Error names the tensor, the op and the layout the CPU could not read.
func (e *LayoutError) Error() string {
	return fmt.Sprintf("tensor %s: CPU op %s cannot read layout %q (only %q)", e.Tensor, e.Op, e.Layout, tensor.Plain)
}

// dequantizeRow decodes one row of a weight into dst, following ggml's block layouts (ggml-common.h); the hot
// types are decoded inline.
func dequantizeRow(t tensor.DType, src []byte, dst []float32) {
	switch t {
	case tensor.Q4_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*18 : b*18+18]
			d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk))
			out := dst[b*32 : b*32+32]
			for j := 0; j < 16; j++ {
				q := blk[2+j]
				out[j] = float32(int(q&0x0F)-8) * d
				out[j+16] = float32(int(q>>4)-8) * d
			}
		}
	case tensor.Q8_0:
		for b := 0; b < len(dst)/32; b++ {
			blk := src[b*34 : b*34+34]
			d := tensor.F16ToF32(binary.LittleEndian.Uint16(blk))
			out := dst[b*32 : b*32+32]
			for j := range out {
				out[j] = float32(int8(blk[2+j])) * d
			}
		}
	case tensor.F16:
		for i := range dst {
			dst[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case tensor.BF16:
		for i := range dst {
			dst[i] = tensor.BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	default:
		// The K-quants (in real Q4_K_M files) are rare enough that the tensor package's decoder serves. newRowReader
		// has checked the sizes, so an error here is a bug in this package.
		if err := tensor.Dequantize(t, src, dst); err != nil {
			panic("cpu: " + err.Error())
		}
	}
}
