package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF32ToF16KnownBitPatterns(t *testing.T) {
	cases := []struct {
		name string
		in   float32
		want uint16
	}{
		{"one is 0x3c00", 1, 0x3c00},
		{"minus two is 0xc000", -2, 0xc000},
		{"positive zero stays zero", 0, 0x0000},
		{"negative zero keeps its sign", float32(math.Copysign(0, -1)), 0x8000},
		{"0.1 rounds to 0x2e66", 0.1, 0x2e66},
		{"one third rounds to 0x3555", 1.0 / 3, 0x3555},
		{"the largest half stays exact", 65504, 0x7bff},
		{"just below the overflow threshold rounds down to 65504", 65519.99, 0x7bff},
		{"the overflow threshold rounds to infinity", 65520, 0x7c00},
		{"a huge value becomes infinity", 1e30, 0x7c00},
		{"the smallest subnormal stays exact", 0x1p-24, 0x0001},
		{"half the smallest subnormal ties to even zero", 0x1p-25, 0x0000},
		{"a bit more than half the smallest subnormal rounds up", 0x1.8p-25, 0x0001},
		{"one and a half subnormal units tie to even two", 0x1.8p-24, 0x0002},
		{"the largest subnormal stays exact", 0x3ffp-24, 0x03ff},
		{"rounding the largest subnormal up carries into the smallest normal", 0x3ff.8p-24, 0x0400},
		{"a tie above one rounds to even (down)", 1 + 0x1p-11, 0x3c00},
		{"a tie above the next half rounds to even (up)", 1 + 3*0x1p-11, 0x3c02},
		{"positive infinity stays infinite", float32(math.Inf(1)), 0x7c00},
		{"negative infinity stays infinite", float32(math.Inf(-1)), 0xfc00},
		{"a quiet NaN becomes the canonical half NaN", math.Float32frombits(0x7fc00000), 0x7e00},
		{"a signalling NaN becomes quiet and keeps its top payload bits", math.Float32frombits(0x7f802000), 0x7e01},
		{"a negative NaN keeps its sign", math.Float32frombits(0xffc00000), 0xfe00},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := F32ToF16(c.in); got != c.want {
				t.Errorf("F32ToF16(%g) = %#04x, want %#04x", c.in, got, c.want)
			}
		})
	}
}

func TestF16ToF32KnownValues(t *testing.T) {
	cases := []struct {
		name string
		in   uint16
		want float32
	}{
		{"0x3c00 is one", 0x3c00, 1},
		{"0xc000 is minus two", 0xc000, -2},
		{"0x7bff is 65504", 0x7bff, 65504},
		{"0x0001 is the smallest subnormal", 0x0001, 0x1p-24},
		{"0x8001 is the negative smallest subnormal", 0x8001, -0x1p-24},
		{"0x03ff is the largest subnormal", 0x03ff, 0x3ffp-24},
		{"0x0400 is the smallest normal", 0x0400, 0x1p-14},
		{"0x7c00 is infinity", 0x7c00, float32(math.Inf(1))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := F16ToF32(c.in); got != c.want {
				t.Errorf("F16ToF32(%#04x) = %g, want %g", c.in, got, c.want)
			}
		})
	}
	t.Run("0x8000 is negative zero", func(t *testing.T) {
		if got := F16ToF32(0x8000); got != 0 || !math.Signbit(float64(got)) {
			t.Errorf("F16ToF32(0x8000) = %g, want -0", got)
		}
	})
	t.Run("0x7e00 is NaN", func(t *testing.T) {
		if got := F16ToF32(0x7e00); !math.IsNaN(float64(got)) {
			t.Errorf("F16ToF32(0x7e00) = %g, want NaN", got)
		}
	})
}

func TestF16RoundTripsEveryHalfValue(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		back := F32ToF16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x, not a NaN", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
}

// TestF32ToF16RoundsToNearestEven checks random floats over the whole half range against the definition:
// no other half is closer, and on a tie the chosen one is even.
func TestF32ToF16RoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(44)-26))
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		if math.IsInf(got, 0) {
			if math.Abs(float64(f)) < 65520 {
				t.Fatalf("%g became infinity", f)
			}
			continue
		}
		err := math.Abs(got - float64(f))
		for _, n := range []uint16{h + 1, h - 1, h ^ 0x8000} {
			if n&0x7c00 == 0x7c00 {
				continue
			}
			alt := math.Abs(float64(F16ToF32(n)) - float64(f))
			if alt < err || alt == err && h&1 == 1 && n&1 == 0 {
				t.Fatalf("F32ToF16(%g) = %#04x (error %g) but %#04x is closer or an even tie (error %g)", f, h, err, n, alt)
			}
		}
	}
}

func TestBF16KnownBitPatterns(t *testing.T) {
	cases := []struct {
		name string
		in   uint32
		want uint16
	}{
		{"one is 0x3f80", 0x3f800000, 0x3f80},
		{"a tie above one rounds to even (down)", 0x3f808000, 0x3f80},
		{"a tie above the next value rounds to even (up)", 0x3f818000, 0x3f82},
		{"just above a tie rounds up", 0x3f808001, 0x3f81},
		{"pi rounds to 0x4049", math.Float32bits(math.Pi), 0x4049},
		{"the largest float rounds to infinity", 0x7f7fffff, 0x7f80},
		{"infinity stays infinite", 0x7f800000, 0x7f80},
		{"negative infinity stays infinite", 0xff800000, 0xff80},
		{"a signalling NaN with a low payload stays a NaN and is made quiet", 0x7f800001, 0x7fc0},
		{"a negative quiet NaN keeps sign and payload", 0xffc12345, 0xffc1},
		{"a subnormal is rounded, not flushed", 0x00018000, 0x0002},
		{"negative zero keeps its sign", 0x80000000, 0x8000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := F32ToBF16(math.Float32frombits(c.in)); got != c.want {
				t.Errorf("F32ToBF16(%#08x) = %#04x, want %#04x", c.in, got, c.want)
			}
		})
	}
	t.Run("widening is the top half of a float32", func(t *testing.T) {
		if got := math.Float32bits(BF16ToF32(0x4049)); got != 0x40490000 {
			t.Errorf("BF16ToF32(0x4049) bits = %#08x, want 0x40490000", got)
		}
	})
	t.Run("every non-NaN bfloat16 round-trips", func(t *testing.T) {
		for h := 0; h < 1<<16; h++ {
			if h&0x7f80 == 0x7f80 && h&0x7f != 0 {
				continue
			}
			if back := F32ToBF16(BF16ToF32(uint16(h))); back != uint16(h) {
				t.Fatalf("%#04x came back as %#04x", h, back)
			}
		}
	})
}
