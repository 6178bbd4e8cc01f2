package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func randNormal(r *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

func TestQ8_0QuantizesAKnownBlockLikeGGML(t *testing.T) {
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j-16) * 0.5 // -8 .. 7.5: amax 8, so d = 8/127 and 1/d = 15.875
	}
	b, err := QuantizeRow(Q8_0, x)
	if err != nil {
		t.Fatal(err)
	}
	if d := binary.LittleEndian.Uint16(b); d != 0x2c08 {
		t.Errorf("scale = %#04x, want 0x2c08 (8/127 in f16)", d)
	}
	// q = round(x·15.875), half away from zero: -8→-127, -0.5→-7.9375→-8, 0.5→8, 7.5→119.0625→119.
	for j, want := range map[int]int8{0: -127, 15: -8, 16: 0, 17: 8, 31: 119} {
		if got := int8(b[2+j]); got != want {
			t.Errorf("q[%d] = %d, want %d", j, got, want)
		}
	}
	y, err := DequantizeRow(Q8_0, b, 32)
	if err != nil {
		t.Fatal(err)
	}
	if want := float32(-127) * F16ToF32(0x2c08); y[0] != want {
		t.Errorf("dequantized x[0] = %g, want %g", y[0], want)
	}
}

func TestQ4_0QuantizesAKnownBlockLikeGGML(t *testing.T) {
	x := make([]float32, 32)
	for j := range x {
		x[j] = float32(j%16-8) * 0.125 // -1 .. 0.875; the signed max is -1, so d = -1/-8 = 0.125
	}
	x[20] = 0.9 // 0.9·8 = 7.2, +8.5 = 15.7 → 15
	b, err := QuantizeRow(Q4_0, x)
	if err != nil {
		t.Fatal(err)
	}
	if d := binary.LittleEndian.Uint16(b); d != 0x3000 {
		t.Errorf("scale = %#04x, want 0x3000 (0.125)", d)
	}
	// x[j] = (j-8)/8 quantizes to j; x[16+j] to the high nibble.
	for j := 0; j < 16; j++ {
		lo, hi := b[2+j]&15, b[2+j]>>4
		wantHi := byte(j)
		if j == 4 {
			wantHi = 15
		}
		if lo != byte(j) || hi != wantHi {
			t.Errorf("qs[%d] = %#02x, want lo %d hi %d", j, b[2+j], j, wantHi)
		}
	}
	y, _ := DequantizeRow(Q4_0, b, 32)
	for j := range y {
		want := x[j]
		if j == 20 {
			want = 0.875
		}
		if y[j] != want {
			t.Errorf("y[%d] = %g, want %g", j, y[j], want)
		}
	}
}

func TestQuantizeRoundTripsWithinTheFormatsErrorBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	const n = 32 * 37 // ragged: not a multiple of 64 or 256
	for _, tc := range []struct {
		name  string
		typ   DType
		bound func(amax float32) float64 // per element, given the block's largest magnitude
	}{
		{"f32 is exact", F32, func(float32) float64 { return 0 }},
		{"f16 errs at most half an ulp", F16, func(a float32) float64 { return float64(a) * 0x1p-11 }},
		{"bf16 errs at most half an ulp", BF16, func(a float32) float64 { return float64(a) * 0x1p-8 }},
		{"q8_0 errs at most half a step plus the f16 scale's rounding", Q8_0, func(a float32) float64 { return float64(a)/127*0.5 + float64(a)*0x1p-11 }},
		{"q4_0 errs at most one step (the clamp at 15) plus the scale's rounding", Q4_0, func(a float32) float64 { return float64(a)/8 + float64(a)*0x1p-9 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := randNormal(r, n, 0.02)
			x[5] = 3 // an outlier in one block
			b, err := QuantizeRow(tc.typ, x)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != tc.typ.RowBytes(n) {
				t.Fatalf("got %d bytes, want %d", len(b), tc.typ.RowBytes(n))
			}
			y, err := DequantizeRow(tc.typ, b, n)
			if err != nil {
				t.Fatal(err)
			}
			var sumErr, sumSq float64
			for blk := 0; blk < n/32; blk++ {
				var amax float32
				for _, v := range x[blk*32 : blk*32+32] {
					amax = max(amax, float32(math.Abs(float64(v))))
				}
				for j := blk * 32; j < blk*32+32; j++ {
					e := math.Abs(float64(y[j] - x[j]))
					bound := tc.bound(amax)
					if tc.typ == F16 || tc.typ == BF16 {
						bound = max(tc.bound(float32(math.Abs(float64(x[j])))), 0x1p-25) // subnormal halves step 2^-24
					}
					if e > bound {
						t.Fatalf("element %d: %g came back as %g (error %g > bound %g)", j, x[j], y[j], e, bound)
					}
					if blk > 0 { // block 0 holds the outlier, whose large step would dominate the RMS
						sumErr += e * e
						sumSq += float64(x[j]) * float64(x[j])
					}
				}
			}
			if tc.typ.Quantized() {
				rel := math.Sqrt(sumErr / sumSq)
				limit := map[DType]float64{Q8_0: 0.01, Q4_0: 0.15}[tc.typ]
				if rel > limit {
					t.Errorf("relative RMS error %.4f > %.4f", rel, limit)
				}
			}
		})
	}
}

// TestQ4_0PicksTheNearestLevel checks the reference rounding against the definition, independent of ggml's
// arithmetic: each unclamped element lands on the level nearest to x/d.
func TestQ4_0PicksTheNearestLevel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randNormal(r, 32*64, 1)
	b, _ := QuantizeRow(Q4_0, x)
	for blk := 0; blk < 64; blk++ {
		var amax, mx float32
		for _, v := range x[blk*32 : blk*32+32] {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := float64(mx) / -8
		for j := 0; j < 32; j++ {
			q := b[blk*18+2+j%16]
			if j >= 16 {
				q >>= 4
			}
			q &= 15
			ideal := float64(x[blk*32+j])/d + 8
			if ideal > 15.5 {
				if q != 15 {
					t.Fatalf("block %d elem %d: clamped value got nibble %d", blk, j, q)
				}
				continue
			}
			if math.Abs(float64(q)-ideal) > 0.5+1e-5 {
				t.Fatalf("block %d elem %d: x/d+8 = %.4f but nibble %d", blk, j, ideal, q)
			}
		}
	}
}

// packQ4_K builds a Q4_K block from its logical contents, following the packing of ggml's quantize_row_q4_K_ref.
func packQ4_K(d, dmin uint16, sc, mn [8]byte, L [256]byte) []byte {
	b := make([]byte, 144)
	binary.LittleEndian.PutUint16(b[0:], d)
	binary.LittleEndian.PutUint16(b[2:], dmin)
	s := b[4:16]
	for j := 0; j < 8; j++ {
		if j < 4 {
			s[j] = sc[j]
			s[j+4] = mn[j]
		} else {
			s[j+4] = sc[j]&0xf | (mn[j]&0xf)<<4
			s[j-4] |= (sc[j] >> 4) << 6
			s[j] |= (mn[j] >> 4) << 6
		}
	}
	q := b[16:]
	for j := 0; j < 256; j += 64 {
		for l := 0; l < 32; l++ {
			q[j/2+l] = L[j+l] | L[j+l+32]<<4
		}
	}
	return b
}

// packQ6_K builds a Q6_K block from its logical contents, following the packing of ggml's quantize_row_q6_K_ref.
func packQ6_K(d uint16, sc [16]int8, L [256]byte) []byte {
	b := make([]byte, 210)
	ql, qh := b[0:128], b[128:192]
	for j := 0; j < 256; j += 128 {
		for l := 0; l < 32; l++ {
			q1, q2, q3, q4 := L[j+l]&0xf, L[j+l+32]&0xf, L[j+l+64]&0xf, L[j+l+96]&0xf
			ql[j/2+l] = q1 | q3<<4
			ql[j/2+l+32] = q2 | q4<<4
			qh[j/4+l] = L[j+l]>>4 | (L[j+l+32]>>4)<<2 | (L[j+l+64]>>4)<<4 | (L[j+l+96]>>4)<<6
		}
	}
	for i, v := range sc {
		b[192+i] = byte(v)
	}
	binary.LittleEndian.PutUint16(b[208:], d)
	return b
}

func TestKQuantsDequantizeTheirLogicalContents(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	t.Run("q4_k gives d·scale·q − dmin·min for every sub-block", func(t *testing.T) {
		const blocks = 3
		var raw []byte
		var want []float32
		for blk := 0; blk < blocks; blk++ {
			d, dmin := F32ToF16(0.01+r.Float32()*0.01), F32ToF16(0.005+r.Float32()*0.01)
			var sc, mn [8]byte
			var L [256]byte
			for i := range sc {
				sc[i], mn[i] = byte(r.IntN(64)), byte(r.IntN(64))
			}
			sc[7], mn[6] = 63, 63 // exercise the split top bits
			for i := range L {
				L[i] = byte(r.IntN(16))
			}
			raw = append(raw, packQ4_K(d, dmin, sc, mn, L)...)
			for i := 0; i < 256; i++ {
				want = append(want, F16ToF32(d)*float32(sc[i/32])*float32(L[i])-F16ToF32(dmin)*float32(mn[i/32]))
			}
		}
		got := make([]float32, blocks*256)
		if err := Dequantize(Q4_K, raw, got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("element %d = %g, want %g", i, got[i], want[i])
			}
		}
	})
	t.Run("q6_k gives d·scale·(q−32) with signed scales", func(t *testing.T) {
		const blocks = 2
		var raw []byte
		var want []float32
		for blk := 0; blk < blocks; blk++ {
			d := F32ToF16(0.001 + r.Float32()*0.001)
			var sc [16]int8
			var L [256]byte
			for i := range sc {
				sc[i] = int8(r.IntN(256) - 128)
			}
			for i := range L {
				L[i] = byte(r.IntN(64))
			}
			raw = append(raw, packQ6_K(d, sc, L)...)
			for i := 0; i < 256; i++ {
				want = append(want, F16ToF32(d)*float32(sc[i/16])*float32(int(L[i])-32))
			}
		}
		got := make([]float32, blocks*256)
		if err := Dequantize(Q6_K, raw, got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-6 {
				t.Fatalf("element %d = %g, want %g", i, got[i], want[i])
			}
		}
	})
	t.Run("q4_k decodes a hand-built block's fifth scale from split bits", func(t *testing.T) {
		b := make([]byte, 144)
		binary.LittleEndian.PutUint16(b[0:], 0x3c00) // d = 1
		binary.LittleEndian.PutUint16(b[2:], 0x3c00) // dmin = 1
		// Sub-block 4: scale = (b[4+8]&15) | (b[4+0]>>6)<<4 = 5 | 2<<4 = 37; min = b[4+8]>>4 | (b[4+4]>>6)<<4 = 3 | 1<<4 = 19.
		b[4+8] = 0x35
		b[4+0] = 0x80
		b[4+4] = 0x40
		b[16+64] = 0x02 // element 128 (sub-block 4, low nibble) has q = 2
		y := make([]float32, 256)
		if err := Dequantize(Q4_K, b, y); err != nil {
			t.Fatal(err)
		}
		if y[128] != 37*2-19 {
			t.Errorf("y[128] = %g, want %d", y[128], 37*2-19)
		}
		if y[129] != -19 {
			t.Errorf("y[129] = %g, want -19", y[129])
		}
	})
}

func TestConversionsRejectBadArguments(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"an unknown type is named", Dequantize(DType(99), make([]byte, 4), make([]float32, 1)), "unknown tensor type type(99)"},
		{"a length that is not a whole block is refused", Dequantize(Q4_0, make([]byte, 18), make([]float32, 31)), "31 elements is not a multiple of the block size 32"},
		{"too few source bytes are refused", Dequantize(Q8_0, make([]byte, 33), make([]float32, 32)), "32 elements need 34 bytes, got 33"},
		{"too many source bytes are refused", Dequantize(F16, make([]byte, 10), make([]float32, 4)), "4 elements need 8 bytes, got 10"},
		{"i32 is not dequantized", Dequantize(I32, make([]byte, 4), make([]float32, 1)), "i32 is not a floating-point or quantized type"},
		{"k-quants cannot be quantized here", Quantize(Q4_K, make([]float32, 256), make([]byte, 144)), "q4_k is not supported (supported: f32, f16, bf16, q8_0, q4_0)"},
		{"a short destination is refused", Quantize(Q4_0, make([]float32, 64), make([]byte, 18)), "64 elements need 36 bytes, got 18"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Errorf("error = %v, want it to contain %q", c.err, c.want)
			}
		})
	}
	t.Run("a negative row length is refused", func(t *testing.T) {
		if _, err := DequantizeRow(F32, nil, -1); err == nil {
			t.Error("no error")
		}
	})
}
