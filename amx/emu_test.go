package amx

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"tilelab/engine/tensor"
)

func cfgOf(shapes map[int][2]int) *[64]byte {
	var c [64]byte
	c[0] = 1
	for t, s := range shapes {
		c[48+t] = byte(s[0])
		binary.LittleEndian.PutUint16(c[16+2*t:], uint16(s[1]))
	}
	return &c
}

func TestEmulatedDotProductsMatchTheirDefinitions(t *testing.T) {
	// dst 11 rows x 40 bytes (10 int32), a 11 x 24 bytes (K = 24), b 6 rows x 40 bytes: a ragged shape.
	const m, kb, nb = 11, 24, 40
	r := rng(7)
	a := make([]byte, m*kb)
	b := make([]byte, kb/4*nb)
	for i := range a {
		a[i] = byte(r.IntN(256))
	}
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	for _, c := range []struct {
		name      string
		aS, bS    bool
		run       func(u *tileUnit) error
		reference func(x, y byte) int32
	}{
		{"tdpbssd multiplies signed by signed", true, true, func(u *tileUnit) error { return u.tdpbssd(0, 1, 2) }, nil},
		{"tdpbusd multiplies unsigned by signed", false, true, func(u *tileUnit) error { return u.tdpbusd(0, 1, 2) }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var u tileUnit
			if err := u.ldtilecfg(cfgOf(map[int][2]int{0: {m, nb}, 1: {m, kb}, 2: {kb / 4, nb}})); err != nil {
				t.Fatal(err)
			}
			if err := u.tileloadd(1, a, 0, kb); err != nil {
				t.Fatal(err)
			}
			if err := u.tileloadd(2, b, 0, nb); err != nil {
				t.Fatal(err)
			}
			// Start from a non-zero accumulator: the instruction adds.
			init := make([]byte, m*nb)
			for i := range init {
				init[i] = byte(i)
			}
			if err := u.tileloadd(0, init, 0, nb); err != nil {
				t.Fatal(err)
			}
			if err := c.run(&u); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, m*nb)
			if err := u.tilestored(0, out, 0, nb); err != nil {
				t.Fatal(err)
			}
			val := func(x byte, signed bool) int32 {
				if signed {
					return int32(int8(x))
				}
				return int32(x)
			}
			for i := 0; i < m; i++ {
				for j := 0; j < nb/4; j++ {
					want := int32(binary.LittleEndian.Uint32(init[i*nb+4*j:]))
					for k := 0; k < kb; k++ {
						want += val(a[i*kb+k], c.aS) * val(b[k/4*nb+4*j+k%4], c.bS)
					}
					if got := int32(binary.LittleEndian.Uint32(out[i*nb+4*j:])); got != want {
						t.Fatalf("[%d][%d] = %d, want %d", i, j, got, want)
					}
				}
			}
		})
	}
	t.Run("tdpbf16ps adds bf16 pair products into float32", func(t *testing.T) {
		var u tileUnit
		if err := u.ldtilecfg(cfgOf(map[int][2]int{0: {m, nb}, 1: {m, kb}, 2: {kb / 4, nb}})); err != nil {
			t.Fatal(err)
		}
		fa := make([]byte, m*kb)
		fb := make([]byte, kb/4*nb)
		for i := 0; i < len(fa); i += 2 {
			binary.LittleEndian.PutUint16(fa[i:], tensor.F32ToBF16(r.Float32()*2-1))
		}
		for i := 0; i < len(fb); i += 2 {
			binary.LittleEndian.PutUint16(fb[i:], tensor.F32ToBF16(r.Float32()*2-1))
		}
		_ = u.tileloadd(1, fa, 0, kb)
		_ = u.tileloadd(2, fb, 0, nb)
		if err := u.tdpbf16ps(0, 1, 2); err != nil {
			t.Fatal(err)
		}
		out := make([]byte, m*nb)
		_ = u.tilestored(0, out, 0, nb)
		bf := func(p []byte, i int) float64 { return float64(tensor.BF16ToF32(binary.LittleEndian.Uint16(p[i:]))) }
		for i := 0; i < m; i++ {
			for j := 0; j < nb/4; j++ {
				var want float64
				for k := 0; k < kb/2; k++ {
					want += bf(fa, i*kb+2*k) * bf(fb, k/2*nb+4*j+2*(k%2))
				}
				got := float64(math.Float32frombits(binary.LittleEndian.Uint32(out[i*nb+4*j:])))
				if math.Abs(got-want) > 1e-5 {
					t.Fatalf("[%d][%d] = %v, want %v", i, j, got, want)
				}
			}
		}
	})
}

func TestEmulatorRefusesWhatTheHardwareFaultsOn(t *testing.T) {
	for _, c := range []struct {
		name string
		run  func(u *tileUnit) error
		want string
	}{
		{"a tile used before configuration", func(u *tileUnit) error { return u.tilezero(0) }, "not configured"},
		{"palette 2", func(u *tileUnit) error { c := cfgOf(nil); c[0] = 2; return u.ldtilecfg(c) }, "palette 2"},
		{"a tile of 17 rows", func(u *tileUnit) error { return u.ldtilecfg(cfgOf(map[int][2]int{0: {17, 64}})) }, "17 rows"},
		{"a reserved byte of the header set", func(u *tileUnit) error { c := cfgOf(nil); c[9] = 1; return u.ldtilecfg(c) }, "reserved byte 9"},
		{"a ninth tile's bytes per row set", func(u *tileUnit) error { c := cfgOf(nil); c[32] = 64; return u.ldtilecfg(c) }, "reserved byte 32"},
		{"a ninth tile's rows set", func(u *tileUnit) error { c := cfgOf(nil); c[56] = 16; return u.ldtilecfg(c) }, "reserved byte 56"},
		{"a start row", func(u *tileUnit) error { c := cfgOf(nil); c[1] = 3; return u.ldtilecfg(c) }, "start_row 3"},
		{"a tile of 65 bytes per row", func(u *tileUnit) error { return u.ldtilecfg(cfgOf(map[int][2]int{0: {16, 65}})) }, "16 rows of 65 bytes"},
		{"mismatched dot-product shapes", func(u *tileUnit) error {
			if err := u.ldtilecfg(cfgOf(map[int][2]int{0: {16, 64}, 1: {16, 64}, 2: {8, 64}})); err != nil {
				return err
			}
			return u.tdpbssd(0, 1, 2)
		}, "do not match"},
		{"a load past the operand", func(u *tileUnit) error {
			if err := u.ldtilecfg(cfgOf(map[int][2]int{0: {16, 64}})); err != nil {
				return err
			}
			return u.tileloadd(0, make([]byte, 1000), 0, 64)
		}, "read past"},
		{"a dot product whose operands alias", func(u *tileUnit) error {
			if err := u.ldtilecfg(cfgOf(map[int][2]int{0: {16, 64}, 1: {16, 64}})); err != nil {
				return err
			}
			return u.tdpbssd(0, 1, 1)
		}, "distinct"},
	} {
		t.Run(c.name+" is an error", func(t *testing.T) {
			var u tileUnit
			if err := c.run(&u); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
