package amx

import (
	"fmt"
	"math"
	"testing"

	"tilelab/engine/tensor"
)

func TestActivationQuantizationIsTheSameInAssemblyAndGo(t *testing.T) {
	if !quantAsm {
		t.Skip("needs AVX-512 F/BW/VL: there is no assembly quantizer to compare")
	}
	for _, c := range []struct{ k, group int }{{64, 32}, {256, 64}, {512, 512}, {96, 32}, {192, 48}, {320, 80}} {
		for _, unsigned := range []bool{false, true} {
			t.Run(fmt.Sprintf("K %d group %d unsigned %v gives identical bytes and scales", c.k, c.group, unsigned), func(t *testing.T) {
				r := rng(uint64(c.k))
				kp := roundUp(c.k, 64)
				x := make([]float32, c.k)
				for i := range x {
					x[i] = r.Float32()*4 - 2
				}
				// Ties: 127 sets the first group's scale to 1, so these land exactly on .5.
				x[0], x[1], x[2], x[3] = 127, 2.5, -3.5, 0.5
				var asm, gol actInt8
				asm.reset(3, kp, c.group)
				gol.reset(3, kp, c.group)
				asm.quantizeRow(1, x, unsigned)
				quantAsm = false
				gol.quantizeRow(1, x, unsigned)
				quantAsm = true
				for i := 0; i < kp; i++ {
					if asm.Q[kp+i] != gol.Q[kp+i] {
						t.Fatalf("byte %d: assembly %d, Go %d (x %v)", i, asm.Q[kp+i], gol.Q[kp+i], x[min(i, len(x)-1)])
					}
				}
				for i := range asm.XS {
					if asm.XS[i] != gol.XS[i] {
						t.Fatalf("scale %d: assembly %v, Go %v", i, asm.XS[i], gol.XS[i])
					}
				}
				if want := byte(int8(2)) ^ map[bool]byte{false: 0, true: 0x80}[unsigned]; asm.Q[kp+1] != want {
					t.Errorf("2.5 quantized to %d, want 2 (round half to even)", int8(asm.Q[kp+1]))
				}
			})
		}
	}
	t.Run("tile order gives identical bytes", func(t *testing.T) {
		const k, rows = 256, 48
		x := randomRows(11, rows, k)
		for _, ks := range []int{32, 64} {
			var asm, gol actInt8
			asm.reset(rows+16, k, 64)
			gol.reset(rows+16, k, 64)
			tmp := make([]byte, k)
			for i := 0; i < rows; i++ {
				asm.quantizeTileRow(16, i, 16, ks, x[i], tmp)
			}
			quantAsm = false
			for i := 0; i < rows; i++ {
				gol.quantizeTileRow(16, i, 16, ks, x[i], tmp)
			}
			quantAsm = true
			for i := range asm.Q {
				if asm.Q[i] != gol.Q[i] {
					t.Fatalf("K step %d, byte %d: assembly %d, Go %d", ks, i, asm.Q[i], gol.Q[i])
				}
			}
			// Row 5's K step 2 lies in band 0 at step 2, row 5 of the band.
			var row actInt8
			row.reset(1, k, 64)
			row.quantizeRow(0, x[5], false)
			got := asm.Q[16*k+2*16*ks+5*ks:][:ks]
			if string(got) != string(row.Q[2*ks:3*ks]) {
				t.Fatalf("K step %d: tile order misplaces row 5", ks)
			}
		}
	})
	t.Run("bf16 conversion gives identical bytes", func(t *testing.T) {
		r := rng(9)
		x := make([]float32, 64)
		for i := range x {
			x[i] = r.Float32()*8 - 4
		}
		x[0] = math.Float32frombits(0x3f808000) // a tie: rounds to even
		// NaNs whose rounding would carry into the sign or exponent must stay NaN, not become -0 or infinity.
		x[1], x[2], x[3] = math.Float32frombits(0x7fffffff), math.Float32frombits(0x7f800001), math.Float32frombits(0xffffffff)
		var asm, gol actBF16
		asm.reset(40, 64, true, true)
		gol.reset(40, 64, true, true)
		tmp := make([]byte, 128)
		asm.setRow(0, x, false)
		for i := 0; i < 32; i++ {
			asm.setTileRow(8, i, 16, 64, x, tmp)
		}
		quantAsm = false
		gol.setRow(0, x, false)
		for i := 0; i < 32; i++ {
			gol.setTileRow(8, i, 16, 64, x, tmp)
		}
		quantAsm = true
		for i := range asm.B {
			if asm.B[i] != gol.B[i] {
				t.Fatalf("byte %d: assembly %#x, Go %#x", i, asm.B[i], gol.B[i])
			}
		}
		for i := 1; i <= 3; i++ {
			if h := uint16(asm.B[2*i]) | uint16(asm.B[2*i+1])<<8; h&0x7f80 != 0x7f80 || h&0x7f == 0 {
				t.Errorf("NaN %#x became %#x, not a NaN", math.Float32bits(x[i]), h)
			}
		}
	})
}

// randomRows returns rows activation rows of k values in [-3, 3).
func randomRows(seed uint64, rows, k int) [][]float32 {
	r := rng(seed)
	x := make([][]float32, rows)
	for i := range x {
		x[i] = make([]float32, k)
		for j := range x[i] {
			x[i][j] = r.Float32()*6 - 3
		}
	}
	return x
}

func TestRepackingKeepsTheWeightsValues(t *testing.T) {
	for _, c := range []struct {
		typ         tensor.DType
		n, k, group int
		tol         float64 // largest |packed - original| relative to the row's largest magnitude
	}{
		{tensor.Q8_0, 32, 96, 32, 0},
		{tensor.Q4_0, 96, 160, 32, 0},
		{tensor.Q4_0, 64, 256, 128, 0.5 / 127},
		{tensor.Q8_0, 32, 192, 0, 0.5 / 127},
		{tensor.BF16, 32, 40, 0, 0},
		{tensor.F16, 64, 64, 0, 1.0 / 256},
	} {
		t.Run(fmt.Sprintf("%s %dx%d group %d is within %.2g of the original", c.typ, c.n, c.k, c.group, c.tol), func(t *testing.T) {
			w := RandomWeight(c.typ, c.k, c.n, 2, rng(uint64(c.k)))
			plain := clone(w)
			if err := (&BufferType{Group: c.group}).Import(w); err != nil {
				t.Fatal(err)
			}
			for e := 0; e < 2; e++ {
				for n := 0; n < c.n; n++ {
					orig := dequantRow(plain, e*c.n+n)
					var amax float64
					for _, v := range orig {
						amax = max(amax, math.Abs(v))
					}
					for k := 0; k < c.k; k++ {
						var got float64
						pw := w.Extra.(*weights)
						if p := pw.i8; p != nil {
							got = float64(p.WS[p.sIndex(e, n, k/p.Group)]) * float64(int8(p.Q[p.qIndex(e, n, k)]))
						} else {
							p := pw.b16
							i := p.bIndex(e, n, k)
							got = float64(tensor.BF16ToF32(uint16(p.B[i]) | uint16(p.B[i+1])<<8))
						}
						if d := math.Abs(got - orig[k]); d > c.tol*amax*1.0001 {
							t.Fatalf("expert %d row %d k %d: packed %v, original %v", e, n, k, got, orig[k])
						}
					}
				}
			}
		})
	}
}

// BenchmarkQuantizeTileRows is the activations' quantization as a 512-row prompt meets a weight of K = 4096
// (group 512, tile order), on one goroutine with the rows in cache: the quantizer's compute speed alone.
func BenchmarkQuantizeTileRows(b *testing.B) {
	const rows, k = 64, 4096
	r := rng(3)
	x := make([][]float32, rows)
	for i := range x {
		x[i] = make([]float32, k)
		for j := range x[i] {
			x[i][j] = r.Float32()*4 - 2
		}
	}
	var a actInt8
	a.reset(rows, k, 512)
	tmp := make([]byte, k)
	b.SetBytes(4 * rows * k)
	for b.Loop() {
		for i := 0; i < rows; i++ {
			a.quantizeTileRow(0, i, 16, 64, x[i], tmp)
		}
	}
}
