package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Block layouts, as ggml-common.h defines them (all little-endian):
//
//	Q8_0 (34 bytes, 32 elements):  d f16 | qs [32]int8             x = d·q
//	Q4_0 (18 bytes, 32 elements):  d f16 | qs [16]uint8            x[j] = d·((qs[j]&15)−8), x[j+16] = d·((qs[j]>>4)−8)
//	Q4_K (144 bytes, 256 elements): d f16 | dmin f16 | scales [12]uint8 (6-bit scales and mins) | qs [128]uint8
//	Q6_K (210 bytes, 256 elements): ql [128]uint8 | qh [64]uint8 | scales [16]int8 | d f16
//
// The decoders below follow ggml-quants.c's dequantize_row_* functions element for element, and the encoders
// follow its quantize_row_*_ref functions, so a file quantized here has the bytes llama.cpp would write.

// checkLen validates that n elements of type t fit exactly in nb bytes.
func checkLen(op string, t DType, n, nb int) error {
	if !t.Known() {
		return fmt.Errorf("tensor: %s: unknown tensor type %v", op, t)
	}
	bs := t.BlockSize()
	if n%bs != 0 {
		return fmt.Errorf("tensor: %s %v: %d elements is not a multiple of the block size %d", op, t, n, bs)
	}
	if want := t.RowBytes(n); nb != want {
		return fmt.Errorf("tensor: %s %v: %d elements need %d bytes, got %d", op, t, n, want, nb)
	}
	return nil
}

// Dequantize decodes len(dst) elements of type t from src into dst. len(dst) must be a multiple of t's block
// size and src must hold exactly t.RowBytes(len(dst)) bytes. I32 is not a float type and is refused.
func Dequantize(t DType, src []byte, dst []float32) error {
	if err := checkLen("dequantize", t, len(dst), len(src)); err != nil {
		return err
	}
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := 0; b < len(dst)/32; b++ {
			dequantQ8_0(src[b*34:b*34+34], dst[b*32:b*32+32])
		}
	case Q4_0:
		for b := 0; b < len(dst)/32; b++ {
			dequantQ4_0(src[b*18:b*18+18], dst[b*32:b*32+32])
		}
	case Q4_K:
		for b := 0; b < len(dst)/256; b++ {
			dequantQ4_K(src[b*144:b*144+144], dst[b*256:b*256+256])
		}
	case Q6_K:
		for b := 0; b < len(dst)/256; b++ {
			dequantQ6_K(src[b*210:b*210+210], dst[b*256:b*256+256])
		}
	default:
		return fmt.Errorf("tensor: dequantize: %v is not a floating-point or quantized type", t)
	}
	return nil
}

// Quantize encodes src as type t into dst, which must hold exactly t.RowBytes(len(src)) bytes. F32, F16, BF16,
// Q8_0 and Q4_0 are supported; Q4_K and Q6_K (decode-only here) give an error.
func Quantize(t DType, src []float32, dst []byte) error {
	if err := checkLen("quantize", t, len(src), len(dst)); err != nil {
		return err
	}
	switch t {
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToBF16(v))
		}
	case Q8_0:
		for b := 0; b < len(src)/32; b++ {
			quantQ8_0(src[b*32:b*32+32], dst[b*34:b*34+34])
		}
	case Q4_0:
		for b := 0; b < len(src)/32; b++ {
			quantQ4_0(src[b*32:b*32+32], dst[b*18:b*18+18])
		}
	default:
		return fmt.Errorf("tensor: quantize: %v is not supported (supported: f32, f16, bf16, q8_0, q4_0)", t)
	}
	return nil
}

// DequantizeRow is Dequantize for one row of n elements, allocating the result.
func DequantizeRow(t DType, src []byte, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("tensor: dequantize: negative element count %d", n)
	}
	if err := checkLen("dequantize", t, n, len(src)); err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	return dst, Dequantize(t, src, dst)
}

// QuantizeRow is Quantize allocating the result.
func QuantizeRow(t DType, src []float32) ([]byte, error) {
	if !t.Known() {
		return nil, fmt.Errorf("tensor: quantize: unknown tensor type %v", t)
	}
	if len(src)%t.BlockSize() != 0 {
		return nil, fmt.Errorf("tensor: quantize %v: %d elements is not a multiple of the block size %d", t, len(src), t.BlockSize())
	}
	dst := make([]byte, t.RowBytes(len(src)))
	return dst, Quantize(t, src, dst)
}

func dequantQ8_0(b []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(b))
	for j, q := range b[2:34] {
		y[j] = d * float32(int8(q))
	}
}

func dequantQ4_0(b []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(b))
	for j, q := range b[2:18] {
		y[j] = float32(int(q&15)-8) * d
		y[j+16] = float32(int(q>>4)-8) * d
	}
}

// quantQ8_0 is quantize_row_q8_0_ref for one block: scale by the largest magnitude, round half away from zero.
func quantQ8_0(x []float32, b []byte) {
	var amax float32
	for _, v := range x[:32] {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(b, F32ToF16(d))
	for j, v := range x[:32] {
		b[2+j] = byte(int8(math.Round(float64(float32(v * id)))))
	}
}

// quantQ4_0 is quantize_row_q4_0_ref for one block. The scale is the signed value of largest magnitude over −8,
// so that value maps exactly to nibble 0; the others are offset by 8.5 and truncated, as the C cast does.
func quantQ4_0(x []float32, b []byte) {
	var amax, mx float32
	for _, v := range x[:32] {
		if a := float32(math.Abs(float64(v))); amax < a {
			amax, mx = a, v
		}
	}
	d := mx / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(b, F32ToF16(d))
	for j := 0; j < 16; j++ {
		x0 := float32(x[j]*id) + 8.5
		x1 := float32(x[16+j]*id) + 8.5
		b[2+j] = nibble(x0) | nibble(x1)<<4
	}
}

// nibble truncates like C's (int8_t) cast and clamps to 15 like MIN(15, ...). For finite blocks x lies in
// [0.5, 16.5]; NaN inputs give NaN here and, like the C code's undefined cast, some nibble, never a panic.
func nibble(x float32) byte {
	if !(x >= 0) {
		return 0
	}
	return byte(min(15, int(x)))
}

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K block (ggml's get_scale_min_k4): the first four pairs
// sit in the low six bits of bytes 0..7, the last four are split between bytes 8..11 and the top two bits of 0..7.
func scaleMinK4(j int, q []byte) (sc, m byte) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

func dequantQ4_K(b []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(b[0:]))
	dmin := F16ToF32(binary.LittleEndian.Uint16(b[2:]))
	scales := b[4:16]
	q := b[16:144]
	for j, is := 0, 0; j < 256; j, is = j+64, is+2 {
		sc, m := scaleMinK4(is, scales)
		d1, m1 := d*float32(sc), dmin*float32(m)
		sc, m = scaleMinK4(is+1, scales)
		d2, m2 := d*float32(sc), dmin*float32(m)
		qq := q[j/2 : j/2+32]
		for l, v := range qq {
			y[j+l] = float32(d1*float32(v&0xf)) - m1
			y[j+32+l] = float32(d2*float32(v>>4)) - m2
		}
	}
}

func dequantQ6_K(b []byte, y []float32) {
	ql := b[0:128]
	qh := b[128:192]
	sc := b[192:208]
	d := F16ToF32(binary.LittleEndian.Uint16(b[208:]))
	for n := 0; n < 2; n++ {
		l0, h0, s0, y0 := ql[64*n:], qh[32*n:], sc[8*n:], y[128*n:]
		for l := 0; l < 32; l++ {
			is := l / 16
			q1 := int(l0[l]&0xf|(h0[l]>>0&3)<<4) - 32
			q2 := int(l0[l+32]&0xf|(h0[l]>>2&3)<<4) - 32
			q3 := int(l0[l]>>4|(h0[l]>>4&3)<<4) - 32
			q4 := int(l0[l+32]>>4|(h0[l]>>6&3)<<4) - 32
			y0[l] = d * float32(int8(s0[is])) * float32(q1)
			y0[l+32] = d * float32(int8(s0[is+2])) * float32(q2)
			y0[l+64] = d * float32(int8(s0[is+4])) * float32(q3)
			y0[l+96] = d * float32(int8(s0[is+6])) * float32(q4)
		}
	}
}
