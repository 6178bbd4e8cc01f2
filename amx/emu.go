package amx

import (
	"encoding/binary"
	"fmt"
	"math"

	"tilelab/engine/tensor"
)

// EmulatedBF16Tolerance bounds the relative difference (max |emulated - hardware| / max |hardware|) between the
// emulator's TDPBF16PS results and the hardware's. The emulator adds each bf16 product (exact in float32) with
// one rounding, in the SDM's order; the hardware may combine the pair before rounding, so results differ in the
// last bits. Checked on the accelerator machine by TestHardwareMatchesEmulator.
const EmulatedBF16Tolerance = 1e-5

// tileUnit is a software model of the AMX tile state and of the instructions the kernels use: LDTILECFG,
// TILELOADD, TILESTORED, TILEZERO, TDPBSSD, TDPBUSD, TDPBF16PS and TILERELEASE, with the SDM's shape rules
// (what raises #UD on the hardware is an error here).
type tileUnit struct {
	configured bool
	rows       [8]int
	colsb      [8]int
	t          [8][16][64]byte
}

// ldtilecfg loads a palette-1 configuration and zeroes every tile, as the instruction does.
func (u *tileUnit) ldtilecfg(cfg *[64]byte) error {
	if cfg[0] == 0 {
		u.release()
		return nil
	}
	if cfg[0] != 1 {
		return fmt.Errorf("ldtilecfg: palette %d is not supported (only 1)", cfg[0])
	}
	if cfg[1] != 0 {
		return fmt.Errorf("ldtilecfg: start_row %d must be 0", cfg[1])
	}
	// Bytes 2-15, 32-47 (colsb of tiles 8-15) and 56-63 (their rows) are reserved and must be zero, or the
	// instruction faults (Intel SDM, LDTILECFG; tabulated at officedaytime.com/simd512e, "tileconfig").
	for _, r := range [][2]int{{2, 16}, {32, 48}, {56, 64}} {
		for i := r[0]; i < r[1]; i++ {
			if cfg[i] != 0 {
				return fmt.Errorf("ldtilecfg: reserved byte %d is %d, must be 0", i, cfg[i])
			}
		}
	}
	for t := 0; t < 8; t++ {
		c := int(binary.LittleEndian.Uint16(cfg[16+2*t:]))
		r := int(cfg[48+t])
		if c > 64 || r > 16 || (c == 0) != (r == 0) {
			return fmt.Errorf("ldtilecfg: tile %d has %d rows of %d bytes (want both 0, or up to 16 rows of up to 64 bytes)", t, r, c)
		}
		u.rows[t], u.colsb[t] = r, c
	}
	u.t = [8][16][64]byte{}
	u.configured = true
	return nil
}

func (u *tileUnit) release() {
	*u = tileUnit{}
}

func (u *tileUnit) check(op string, tiles ...int) error {
	if !u.configured {
		return fmt.Errorf("%s: tiles are not configured", op)
	}
	for _, t := range tiles {
		if t < 0 || t > 7 || u.rows[t] == 0 {
			return fmt.Errorf("%s: tile %d is not configured", op, t)
		}
	}
	return nil
}

// tileloadd loads the configured rows of tile t, stride bytes apart, from mem at off; the bytes of each row past
// colsb stay zero.
func (u *tileUnit) tileloadd(t int, mem []byte, off, stride int) error {
	if err := u.check("tileloadd", t); err != nil {
		return err
	}
	r, c := u.rows[t], u.colsb[t]
	if off < 0 || off+(r-1)*stride+c > len(mem) {
		return fmt.Errorf("tileloadd tmm%d: %d rows of %d bytes at %d, stride %d, read past the %d-byte operand", t, r, c, off, stride, len(mem))
	}
	for i := 0; i < r; i++ {
		copy(u.t[t][i][:c], mem[off+i*stride:])
	}
	return nil
}

// tilestored writes the configured rows of tile t to mem.
func (u *tileUnit) tilestored(t int, mem []byte, off, stride int) error {
	if err := u.check("tilestored", t); err != nil {
		return err
	}
	r, c := u.rows[t], u.colsb[t]
	if off < 0 || off+(r-1)*stride+c > len(mem) {
		return fmt.Errorf("tilestored tmm%d: %d rows of %d bytes at %d, stride %d, write past the %d-byte operand", t, r, c, off, stride, len(mem))
	}
	for i := 0; i < r; i++ {
		copy(mem[off+i*stride:off+i*stride+c], u.t[t][i][:c])
	}
	return nil
}

func (u *tileUnit) tilezero(t int) error {
	if err := u.check("tilezero", t); err != nil {
		return err
	}
	u.t[t] = [16][64]byte{}
	return nil
}

// dotShape applies the SDM's #UD conditions shared by the dot products: dst rows = a rows, a colsb = 4 x b rows,
// dst colsb = b colsb.
func (u *tileUnit) dotShape(op string, c, a, b int) error {
	if err := u.check(op, c, a, b); err != nil {
		return err
	}
	if c == a || c == b || a == b {
		return fmt.Errorf("%s: tiles %d, %d, %d must be distinct", op, c, a, b)
	}
	if u.rows[c] != u.rows[a] || u.colsb[a] != 4*u.rows[b] || u.colsb[c] != u.colsb[b] || u.colsb[a]%4 != 0 || u.colsb[c]%4 != 0 {
		return fmt.Errorf("%s tmm%d, tmm%d, tmm%d: shapes %dx%d += %dx%d · %dx%d do not match", op, c, a, b,
			u.rows[c], u.colsb[c], u.rows[a], u.colsb[a], u.rows[b], u.colsb[b])
	}
	return nil
}

// tdpb computes dst += a·b over bytes, four at a time into int32, with a and b signed or unsigned
// (TDPBSSD: both signed; TDPBUSD: a unsigned, b signed). Sums wrap like the hardware's int32 arithmetic.
func (u *tileUnit) tdpb(op string, c, a, b int, aSigned, bSigned bool) error {
	if err := u.dotShape(op, c, a, b); err != nil {
		return err
	}
	val := func(x byte, signed bool) int32 {
		if signed {
			return int32(int8(x))
		}
		return int32(x)
	}
	for m := 0; m < u.rows[c]; m++ {
		for n := 0; n < u.colsb[c]/4; n++ {
			acc := int32(binary.LittleEndian.Uint32(u.t[c][m][4*n:]))
			for k := 0; k < u.colsb[a]/4; k++ {
				for i := 0; i < 4; i++ {
					acc += val(u.t[a][m][4*k+i], aSigned) * val(u.t[b][k][4*n+i], bSigned)
				}
			}
			binary.LittleEndian.PutUint32(u.t[c][m][4*n:], uint32(acc))
		}
	}
	return nil
}

func (u *tileUnit) tdpbssd(c, a, b int) error { return u.tdpb("tdpbssd", c, a, b, true, true) }
func (u *tileUnit) tdpbusd(c, a, b int) error { return u.tdpb("tdpbusd", c, a, b, false, true) }

// bf16In reads a bf16 as float32 with denormals treated as zero, as TDPBF16PS does.
func bf16In(h uint16) float32 {
	if h&0x7f80 == 0 {
		h &= 0x8000
	}
	return tensor.BF16ToF32(h)
}

// ftz flushes a float32 denormal result to a zero of the same sign.
func ftz(f float32) float32 {
	if b := math.Float32bits(f); b&0x7f800000 == 0 {
		return math.Float32frombits(b & 0x80000000)
	}
	return f
}

// tdpbf16ps computes dst (float32) += a·b over pairs of bf16: for each pair, the even product is added, then the
// odd one, each product exact in float32 and each addition rounded to nearest even, denormals flushed.
func (u *tileUnit) tdpbf16ps(c, a, b int) error {
	if err := u.dotShape("tdpbf16ps", c, a, b); err != nil {
		return err
	}
	for m := 0; m < u.rows[c]; m++ {
		for n := 0; n < u.colsb[c]/4; n++ {
			acc := math.Float32frombits(binary.LittleEndian.Uint32(u.t[c][m][4*n:]))
			for k := 0; k < u.colsb[a]/4; k++ {
				for i := 0; i < 2; i++ {
					x := bf16In(binary.LittleEndian.Uint16(u.t[a][m][4*k+2*i:]))
					y := bf16In(binary.LittleEndian.Uint16(u.t[b][k][4*n+2*i:]))
					acc = ftz(acc + x*y)
				}
			}
			binary.LittleEndian.PutUint32(u.t[c][m][4*n:], math.Float32bits(acc))
		}
	}
	return nil
}
