// Package tileasm encodes the AMX instructions TileLab's kernels use. The Go assembler has no AMX mnemonics, so
// the kernel generator writes each instruction as bytes; this package computes those bytes from the operand
// fields given in the Intel SDM (VEX prefix, opcode map 0F38, ModRM and SIB), and a test checks every generated
// macro against GNU as.
package tileasm

import (
	"fmt"
	"strings"
)

// Reg is a 64-bit general-purpose register number as the hardware encodes it (RAX=0 ... R15=15).
type Reg int

// The general-purpose registers, numbered as in ModRM/SIB encodings.
const (
	RAX Reg = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

var regNames = [...]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
	"r13", "r14", "r15"}

var goNames = [...]string{"AX", "CX", "DX", "BX", "SP", "BP", "SI", "DI", "R8", "R9", "R10", "R11", "R12", "R13",
	"R14", "R15"}

// GNU is the register's AT&T name without the % sign ("rsi").
func (r Reg) GNU() string { return regNames[r] }

// Go is the register's Go assembler name ("SI").
func (r Reg) Go() string { return goNames[r] }

// Inst is one encoded instruction: its bytes, the AT&T form GNU as accepts, and a macro name.
type Inst struct {
	Name  string // macro name, e.g. TILELOADD_T4_SI_R8
	GNU   string // AT&T syntax, e.g. "tileloadd (%rsi,%r8,1), %tmm4"
	Bytes []byte
}

// Macro renders the instruction as a Go assembler #define line.
func (in Inst) Macro() string {
	parts := make([]string, len(in.Bytes))
	for i, b := range in.Bytes {
		parts[i] = fmt.Sprintf("BYTE $0x%02x", b)
	}
	return fmt.Sprintf("// %s\n#define %s %s", in.GNU, in.Name, strings.Join(parts, "; "))
}

// vex builds a three-byte VEX prefix for map 0F38, W0, L0. rxb are the inverted-to-be R, X, B extension bits,
// vvvv the (uninverted) extra register, pp the implied prefix (0 none, 1 66, 2 F3, 3 F2).
func vex(r, x, b bool, vvvv, pp int) []byte {
	b1 := byte(0x02) // map 0F38
	if !r {
		b1 |= 0x80
	}
	if !x {
		b1 |= 0x40
	}
	if !b {
		b1 |= 0x20
	}
	b2 := byte((^vvvv&0xf)<<3) | byte(pp)
	return []byte{0xc4, b1, b2}
}

// sibmem encodes ModRM(mod=00, reg, rm=100) + SIB(scale=1, index, base) for [base + index*1].
// Bases whose low bits are 101 (RBP, R13) would need a displacement and are refused, as is RSP as an index.
func sibmem(reg int, base, index Reg) (modrm, sib byte, err error) {
	if base&7 == 5 {
		return 0, 0, fmt.Errorf("tileasm: base %s needs a displacement; use another register", base.GNU())
	}
	if index == RSP {
		return 0, 0, fmt.Errorf("tileasm: rsp cannot be an index")
	}
	modrm = byte((reg&7)<<3 | 4)
	sib = byte((int(index)&7)<<3 | int(base)&7)
	return modrm, sib, nil
}

// checkTiles refuses tile numbers outside tmm0..tmm7: the encodings keep only the low three bits, so tmm8 would
// silently become tmm0.
func checkTiles(op string, tiles ...int) error {
	for _, t := range tiles {
		if t < 0 || t > 7 {
			return fmt.Errorf("tileasm: %s names tmm%d; there are eight tiles, tmm0 to tmm7", op, t)
		}
	}
	return nil
}

// checkRegs refuses register numbers outside RAX..R15.
func checkRegs(op string, regs ...Reg) error {
	for _, r := range regs {
		if r < RAX || r > R15 {
			return fmt.Errorf("tileasm: %s names general register %d; there are sixteen, 0 to 15", op, int(r))
		}
	}
	return nil
}

func memOp(name, gnu string, pp, opcode, tmm int, base, index Reg) (Inst, error) {
	if err := checkTiles(name, tmm); err != nil {
		return Inst{}, err
	}
	m, s, err := sibmem(tmm, base, index)
	if err != nil {
		return Inst{}, err
	}
	b := vex(false, index >= 8, base >= 8, 0, pp)
	b = append(b, byte(opcode), m, s)
	return Inst{Name: name, GNU: gnu, Bytes: b}, nil
}

// TileLoadD is TILELOADD tmm, [base + stride*1]: load rows of the tile from base, stride bytes apart.
func TileLoadD(tmm int, base, stride Reg) (Inst, error) {
	if err := checkRegs("tileloadd", base, stride); err != nil {
		return Inst{}, err
	}
	return memOp(fmt.Sprintf("TILELOADD_T%d_%s_%s", tmm, base.Go(), stride.Go()),
		fmt.Sprintf("tileloadd (%%%s,%%%s,1), %%tmm%d", base.GNU(), stride.GNU(), tmm), 3, 0x4b, tmm, base, stride)
}

// TileLoadDT1 is TILELOADDT1 tmm, [base + stride*1]: TILELOADD with the hint that the rows will not be reused
// soon, so the caches nearest the core need not keep them.
func TileLoadDT1(tmm int, base, stride Reg) (Inst, error) {
	if err := checkRegs("tileloaddt1", base, stride); err != nil {
		return Inst{}, err
	}
	return memOp(fmt.Sprintf("TILELOADDT1_T%d_%s_%s", tmm, base.Go(), stride.Go()),
		fmt.Sprintf("tileloaddt1 (%%%s,%%%s,1), %%tmm%d", base.GNU(), stride.GNU(), tmm), 1, 0x4b, tmm, base, stride)
}

// TileStoreD is TILESTORED [base + stride*1], tmm.
func TileStoreD(tmm int, base, stride Reg) (Inst, error) {
	if err := checkRegs("tilestored", base, stride); err != nil {
		return Inst{}, err
	}
	return memOp(fmt.Sprintf("TILESTORED_T%d_%s_%s", tmm, base.Go(), stride.Go()),
		fmt.Sprintf("tilestored %%tmm%d, (%%%s,%%%s,1)", tmm, base.GNU(), stride.GNU()), 2, 0x4b, tmm, base, stride)
}

// LdTileCfg is LDTILECFG [base]: load the 64-byte tile configuration.
func LdTileCfg(base Reg) (Inst, error) {
	if err := checkRegs("ldtilecfg", base); err != nil {
		return Inst{}, err
	}
	if base&7 == 4 || base&7 == 5 {
		return Inst{}, fmt.Errorf("tileasm: ldtilecfg base %s needs a SIB or displacement; use another register", base.GNU())
	}
	b := vex(false, false, base >= 8, 0, 0)
	b = append(b, 0x49, byte(int(base)&7))
	return Inst{Name: "LDTILECFG_" + base.Go(), GNU: fmt.Sprintf("ldtilecfg (%%%s)", base.GNU()), Bytes: b}, nil
}

// TileRelease is TILERELEASE: return the tile state to its initial (unconfigured) state.
func TileRelease() Inst {
	return Inst{Name: "TILERELEASE", GNU: "tilerelease", Bytes: append(vex(false, false, false, 0, 0), 0x49, 0xc0)}
}

// TileZero is TILEZERO tmm.
func TileZero(tmm int) (Inst, error) {
	if err := checkTiles("tilezero", tmm); err != nil {
		return Inst{}, err
	}
	b := append(vex(false, false, false, 0, 3), 0x49, byte(0xc0|(tmm&7)<<3))
	return Inst{Name: fmt.Sprintf("TILEZERO_T%d", tmm), GNU: fmt.Sprintf("tilezero %%tmm%d", tmm), Bytes: b}, nil
}

// The dot-product instructions: pp and opcode from the SDM.
var dots = map[string][2]int{
	"tdpbssd":   {3, 0x5e}, // signed A bytes x signed B bytes
	"tdpbsud":   {2, 0x5e},
	"tdpbusd":   {1, 0x5e}, // unsigned A bytes x signed B bytes
	"tdpbuud":   {0, 0x5e},
	"tdpbf16ps": {2, 0x5c},
}

// Dot encodes a tile dot product "op dst, a, b" (dst += a·b) for op in tdpbssd, tdpbsud, tdpbusd, tdpbuud,
// tdpbf16ps. ModRM.reg is dst, ModRM.rm is a, VEX.vvvv is b.
func Dot(op string, dst, a, b int) (Inst, error) {
	d, ok := dots[op]
	if !ok {
		return Inst{}, fmt.Errorf("tileasm: unknown tile dot product %q", op)
	}
	if err := checkTiles(op, dst, a, b); err != nil {
		return Inst{}, err
	}
	if dst == a || dst == b || a == b {
		return Inst{}, fmt.Errorf("tileasm: %s needs three distinct tiles, got %d %d %d", op, dst, a, b)
	}
	by := append(vex(false, false, false, b, d[0]), byte(d[1]), byte(0xc0|(dst&7)<<3|(a&7)))
	return Inst{Name: fmt.Sprintf("%s_T%d_T%d_T%d", strings.ToUpper(op), dst, a, b),
		GNU: fmt.Sprintf("%s %%tmm%d, %%tmm%d, %%tmm%d", op, b, a, dst), Bytes: by}, nil
}
