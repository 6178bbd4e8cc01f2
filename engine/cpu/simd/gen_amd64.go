//go:build ignore

// Command gen_amd64 writes kernels_amd64.s and kernels_amd64.go: the AVX-512 tile kernels, one function per tile
// shape, which would be tedious and error-prone to write by hand. Run `go run gen_amd64.go` in this directory
// after changing it; the generated files are committed.
//
// Quantized tiles (VNNI): RM activation rows × RN weight rows, full k, two blocks per 512-bit register. VPDPBUSD
// multiplies unsigned by signed bytes, so weights are made unsigned — Q4_0 nibbles are already 0..15 (their
// offset of 8 is subtracted as 8·Σa), Q8_0 values get +128 by flipping the sign bit (subtracted as 128·Σa) — and
// activations stay signed. The per-block sums Σa come from one more VPDPBUSD per activation row, shared by the RN
// weight rows. Float tiles: RM×RN over 16 elements a step, F16 widened with VCVTPH2PS, BF16 by a 16-bit shift.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
)

// prefetch is how far ahead of each weight row the many-row quantized tiles prefetch, in bytes (0: no prefetch);
// the first argument overrides it. Single-row tiles prefetch the next tile instead (see aheadPrefetch).
var prefetch = 1024

// aheadPrefetch sets up the single-row tiles' prefetch: each weight row's bytes are prefetched from the same
// offset of the row four rows on, which the next tile reads. Decoding streams a matrix tile by tile, and prefetching
// within each row let every tile start on four cold rows: on this repository's AMD EPYC development machine one
// thread streamed Q4_0 at 7.8 GB/s with in-row prefetch and 13.6 GB/s with this (k=4096), against 20 GB/s of plain
// reads. R10 (the activation stride, unused with one activation row) holds the pointer; edge is the tile's rows.
func (g *gen) aheadPrefetch(edge int) { g.p("LEAQ (SI)(R8*%d), R10", edge) }

// prefetchRow prefetches for weight row j of a single-row tile: from the next tile with ahead, else within the row.
func (g *gen) prefetchRow(j int, ahead bool) {
	switch {
	case ahead:
		g.p("PREFETCHT0 %s", addr("R10", "R8", "R9", j, 0))
	case prefetch > 0:
		g.p("PREFETCHT0 %s", wrow(j, prefetch))
	}
}

type gen struct{ s, g bytes.Buffer }

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.s, "\t"+format+"\n", args...) }
func (g *gen) label(l string)               { fmt.Fprintf(&g.s, "%s:\n", l) }

// wrow, arow and drow address row j of the weights, row i of the activations and row i of dst; the generated
// prologue keeps base pointers and strides in registers so rows 0..3 need no arithmetic.
func wrow(j, off int) string { return addr("SI", "R8", "R9", j, off) }
func arow(i, off int) string { return addr("DI", "R10", "R11", i, off) }
func drow(i, off int) string { return addr("DX", "BX", "R12", i, off) }

func addr(base, stride, stride3 string, r, off int) string {
	switch r {
	case 0:
		return fmt.Sprintf("%d(%s)", off, base)
	case 1:
		return fmt.Sprintf("%d(%s)(%s*1)", off, base, stride)
	case 2:
		return fmt.Sprintf("%d(%s)(%s*2)", off, base, stride)
	}
	return fmt.Sprintf("%d(%s)(%s*1)", off, base, stride3)
}

func z(n int) string { return fmt.Sprintf("Z%d", n) }
func y(n int) string { return fmt.Sprintf("Y%d", n) }
func x(n int) string { return fmt.Sprintf("X%d", n) }

// Register plan for the quantized tiles.
const (
	rQ    = 16 // q_j, unpacked weights, 16..19
	rSW   = 20 // weight scales, 20..23
	rA    = 24 // activations of row i
	rSA   = 25 // activation scales of row i
	rNS   = 26 // -offset·Σa of row i
	rT    = 27 // scratch
	rU    = 28 // scratch
	rMask = 29 // 0x0F bytes (Q4_0) or 0x80 bytes (Q8_0)
	rOff  = 30 // the weight offset as unsigned bytes: 8 (Q4_0) or 0x80 (Q8_0)
	rZero = 31
)

func (g *gen) prologue(name string, rm int) {
	fmt.Fprintf(&g.s, "\n// func %s(w *byte, ws int, a *byte, as int, nb int, dst *float32, ds int)\n", name)
	fmt.Fprintf(&g.s, "TEXT ·%s(SB), NOSPLIT, $0-56\n", name)
	g.p("MOVQ w+0(FP), SI")
	g.p("MOVQ ws+8(FP), R8")
	g.p("MOVQ a+16(FP), DI")
	g.p("MOVQ as+24(FP), R10")
	g.p("MOVQ nb+32(FP), CX")
	g.p("MOVQ dst+40(FP), DX")
	g.p("MOVQ ds+48(FP), BX")
	g.p("SHLQ $2, BX")
	g.p("LEAQ (R8)(R8*2), R9")
	g.p("LEAQ (R10)(R10*2), R11")
	g.p("LEAQ (BX)(BX*2), R12")
	_ = rm
}

// reduce sums the 16 lanes of accumulator r and stores the float at addr.
func (g *gen) reduce(r int, dst string) {
	g.p("VEXTRACTF64X4 $1, %s, %s", z(r), y(rT))
	g.p("VADDPS %s, %s, %s", y(rT), y(r), y(rT))
	g.p("VEXTRACTF32X4 $1, %s, %s", y(rT), x(rU))
	g.p("VADDPS %s, %s, %s", x(rU), x(rT), x(rT))
	g.reduce4(rT, rU, dst)
}

// reduce4 sums the 4 lanes of XMM register t (u is scratch) and stores the float at dst: the tail both reductions
// share.
func (g *gen) reduce4(t, u int, dst string) {
	g.p("VPERMILPD $1, %s, %s", x(t), x(u))
	g.p("VADDPS %s, %s, %s", x(u), x(t), x(t))
	g.p("VMOVSHDUP %s, %s", x(t), x(u))
	g.p("VADDSS %s, %s, %s", x(u), x(t), x(t))
	g.p("VMOVSS %s, %s", x(t), dst)
}

// quantTile writes one VNNI tile kernel for weights "q4" or "q8".
//
// Port 5 (shuffles) is the bottleneck of these loops on Intel cores, so the pair loop avoids shuffles where it can:
// fp16 scales become floats through a 64 Ki-entry table (halfTable) with broadcast loads, which use load ports
// only, the second block's scale merged into its lanes under a mask; and Q4_0 nibbles stay in the order the loads
// give ([lo nibbles of block 0 | of block 1 | hi nibbles of block 0 | of block 1]), the activations being loaded
// in that same order by 128-bit inserts, shared by all RN weight rows.
//
// Single-row tiles prefetch the next tile's rows unless rowPrefetch asks for the older prefetch within each row.
func (g *gen) quantTile(wt string, rm, rn int, rowPrefetch bool) string {
	name := fmt.Sprintf("%sVNNI%dx%d", wt, rm, rn)
	if rowPrefetch {
		name = fmt.Sprintf("%sVNNIR%dx%d", wt, rm, rn)
	}
	// One activation row streams weights: there the first layout (blocks in natural order, scales converted with
	// shuffles) measured faster on the device; several rows reuse each weight and are bound by port 5.
	gemv := rm == 1
	ahead := gemv && !rowPrefetch
	wb := 18 // bytes per weight block
	mask, off, lanes := "$0x0f0f0f0f", "$0x08080808", "$0xf0f0"
	if wt == "q8" {
		wb = 34
		mask, off, lanes = "$0x80808080", "$0x80808080", "$0xff00"
	}
	g.prologue(name, rm)
	g.p("LEAQ ·halfTable(SB), R13")
	g.p("MOVL %s, AX", lanes)
	g.p("KMOVW AX, K1")
	g.p("MOVL %s, AX", mask)
	g.p("VPBROADCASTD AX, %s", z(rMask))
	g.p("MOVL %s, AX", off)
	g.p("VPBROADCASTD AX, %s", z(rOff))
	g.p("VPXORD %s, %s, %s", z(rZero), z(rZero), z(rZero))
	for r := 0; r < rm*rn; r++ {
		g.p("VPXORD %s, %s, %s", z(r), z(r), z(r))
	}
	if ahead {
		g.aheadPrefetch(4)
	}
	g.p("MOVQ CX, AX")
	g.p("SHRQ $1, AX")
	g.p("JZ %s_tail", name)
	g.label(name + "_pair")
	for j := 0; j < rn; j++ {
		q, sw := rQ+j, rSW+j
		g.prefetchRow(j, ahead)
		if wt == "q4" {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), x(q))
			g.p("VINSERTI32X4 $1, %s, %s, %s", wrow(j, wb+2), y(q), y(q))
			g.p("VPSRLW $4, %s, %s", y(q), y(rT))
			g.p("VINSERTI64X4 $1, %s, %s, %s", y(rT), z(q), z(q))
			if gemv {
				g.p("VSHUFI64X2 $0xd8, %s, %s, %s", z(q), z(q), z(q))
			}
			g.p("VPANDD %s, %s, %s", z(rMask), z(q), z(q))
		} else {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), y(q))
			g.p("VINSERTI64X4 $1, %s, %s, %s", wrow(j, wb+2), z(q), z(q))
			g.p("VPXORD %s, %s, %s", z(rMask), z(q), z(q))
		}
		if gemv {
			g.scalePairShuffled(wrow(j, 0), wrow(j, wb), sw)
		} else {
			g.scalePair(wrow(j, 0), wrow(j, wb), sw)
		}
	}
	for i := 0; i < rm; i++ {
		if wt == "q4" && !gemv {
			g.p("VMOVDQU64 %s, %s", arow(i, 2), x(rA))
			g.p("VINSERTI32X4 $1, %s, %s, %s", arow(i, 36), z(rA), z(rA))
			g.p("VINSERTI32X4 $2, %s, %s, %s", arow(i, 18), z(rA), z(rA))
			g.p("VINSERTI32X4 $3, %s, %s, %s", arow(i, 52), z(rA), z(rA))
		} else {
			g.p("VMOVDQU64 %s, %s", arow(i, 2), y(rA))
			g.p("VINSERTI64X4 $1, %s, %s, %s", arow(i, 36), z(rA), z(rA))
		}
		if gemv {
			g.scalePairShuffled(arow(i, 0), arow(i, 34), rSA)
		} else {
			g.scalePair(arow(i, 0), arow(i, 34), rSA)
		}
		g.dotRow(i, rn)
	}
	g.p("ADDQ $%d, SI", 2*wb)
	if ahead {
		g.p("ADDQ $%d, R10", 2*wb)
	}
	g.p("ADDQ $68, DI")
	g.p("DECQ AX")
	g.p("JNZ %s_pair", name)
	g.label(name + "_tail")
	g.p("TESTQ $1, CX")
	g.p("JZ %s_reduce", name)
	// The odd last block runs the same dot code with the upper halves of every input register zero, so the upper
	// lanes add nothing; its elements are in natural order on both sides.
	g.tailWeights(wt, rn, gemv)
	for i := 0; i < rm; i++ {
		g.p("VMOVDQU64 %s, %s", arow(i, 2), y(rA))
		g.scaleOne(arow(i, 0), rSA, gemv)
		g.dotRow(i, rn)
	}
	g.label(name + "_reduce")
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.reduce(i*rn+j, drow(i, 4*j))
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// scalePair fills register r with the float of the fp16 scale at a0 in every lane, then that of a1 in the lanes
// of K1 (the second block's), through halfTable (base in R13).
func (g *gen) scalePair(a0, a1 string, r int) {
	g.p("MOVWLZX %s, R14", a0)
	g.p("VBROADCASTSS (R13)(R14*4), %s", z(r))
	g.p("MOVWLZX %s, R14", a1)
	g.p("VBROADCASTSS (R13)(R14*4), K1, %s", z(r))
}

// scalePairShuffled is scalePair without the table: two word broadcasts, an insert and VCVTPH2PS. It costs
// shuffles but no table loads, which is what a single-row (streaming) loop can afford: the table's cache misses
// compete with the weight stream for fill buffers, and measured 25% slower there.
func (g *gen) scalePairShuffled(a0, a1 string, r int) {
	g.p("VPBROADCASTW %s, %s", a0, x(r))
	g.p("VPBROADCASTW %s, %s", a1, x(rT))
	g.p("VINSERTI32X4 $1, %s, %s, %s", x(rT), y(r), y(r))
	g.p("VCVTPH2PS %s, %s", y(r), z(r))
}

// tailWeights loads the odd last block of each of the rn weight rows into the low halves of their registers
// (q4: low nibbles then high, made unsigned; q8: offset by 0x80) with its scale, for the tail of a quantized tile.
func (g *gen) tailWeights(wt string, rn int, gemv bool) {
	for j := 0; j < rn; j++ {
		q, sw := rQ+j, rSW+j
		if wt == "q4" {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), x(q))
			g.p("VPSRLW $4, %s, %s", x(q), x(rT))
			g.p("VINSERTI32X4 $1, %s, %s, %s", x(rT), y(q), y(q))
			g.p("VPANDD %s, %s, %s", y(rMask), y(q), y(q))
		} else {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), y(q))
			g.p("VPXORD %s, %s, %s", y(rMask), y(q), y(q))
		}
		g.scaleOne(wrow(j, 0), sw, gemv)
	}
}

// scaleOne fills register r with the float of the fp16 scale at a0.
func (g *gen) scaleOne(a0 string, r int, gemv bool) {
	if gemv {
		g.p("VPBROADCASTW %s, %s", a0, y(r))
		g.p("VCVTPH2PS %s, %s", y(r), z(r))
		return
	}
	g.p("MOVWLZX %s, R14", a0)
	g.p("VBROADCASTSS (R13)(R14*4), %s", z(r))
}

// gemvQ4Y writes a single-row Q4_0 tile in 256-bit registers: on Intel cores 512-bit instructions issue on two
// ports and 256-bit ones on three, and a streaming loop with little reuse gains more from the third port than it
// loses in width. Per pair of blocks, the low nibbles of both blocks ([block 0 | block 1], 16 bytes each) meet the
// activations' first halves and the high nibbles their second halves, in two VPDPBUSD into the same lanes (0..3
// for block 0, 4..7 for block 1), whose scales come through halfTable.
//
// With cvt the weights' fp16 scales are widened with VCVTPH2PS instead of read from halfTable: a few more
// instructions, but no loads from a 256 KiB table that the streamed weights keep evicting from L1 and L2.
//
// With ahead (the default) the tile prefetches the next tile's rows, else 1 KiB ahead in its own rows (kept for
// comparison on other machines).
func (g *gen) gemvQ4Y(rn int, cvt, ahead bool) string {
	name := fmt.Sprintf("q4VNNIY1x%d", rn)
	switch {
	case cvt:
		name = fmt.Sprintf("q4VNNIYC1x%d", rn)
	case !ahead:
		name = fmt.Sprintf("q4VNNIYR1x%d", rn)
	}
	const rAL, rAH = rA, 8 // activations: first and second halves of both blocks
	g.prologue(name, 1)
	g.p("LEAQ ·halfTable(SB), R13")
	g.p("MOVL $0xf0, AX")
	g.p("KMOVW AX, K1")
	g.p("MOVL $0x0f0f0f0f, AX")
	g.p("VPBROADCASTD AX, %s", y(rMask))
	g.p("MOVL $0x08080808, AX")
	g.p("VPBROADCASTD AX, %s", y(rOff))
	g.p("VPXORD %s, %s, %s", y(rZero), y(rZero), y(rZero))
	for r := 0; r < rn; r++ {
		g.p("VPXORD %s, %s, %s", y(r), y(r), y(r))
	}
	if ahead {
		g.aheadPrefetch(4)
	}
	g.p("MOVQ CX, AX")
	g.p("SHRQ $1, AX")
	g.p("JZ %s_tail", name)
	g.label(name + "_pair")
	g.p("VMOVDQU64 2(DI), %s", x(rAL))
	g.p("VINSERTI32X4 $1, 36(DI), %s, %s", y(rAL), y(rAL))
	g.p("VMOVDQU64 18(DI), %s", x(rAH))
	g.p("VINSERTI32X4 $1, 52(DI), %s, %s", y(rAH), y(rAH))
	g.p("MOVWLZX 0(DI), R14")
	g.p("VBROADCASTSS (R13)(R14*4), %s", y(rSA))
	g.p("MOVWLZX 34(DI), R14")
	g.p("VBROADCASTSS (R13)(R14*4), K1, %s", y(rSA))
	g.p("VPXORD %s, %s, %s", y(rNS), y(rNS), y(rNS))
	g.p("VPDPBUSD %s, %s, %s", y(rAL), y(rOff), y(rNS))
	g.p("VPDPBUSD %s, %s, %s", y(rAH), y(rOff), y(rNS))
	g.p("VPSUBD %s, %s, %s", y(rNS), y(rZero), y(rNS))
	for j := 0; j < rn; j++ {
		lo, hi, hn := rQ+j, rSW+j, 4+j // scales in hi; the high nibbles in hn, free above the accumulators
		g.prefetchRow(j, ahead)
		g.p("VMOVDQU64 %s, %s", wrow(j, 2), x(lo))
		g.p("VINSERTI32X4 $1, %s, %s, %s", wrow(j, 20), y(lo), y(lo))
		g.p("VPSRLW $4, %s, %s", y(lo), y(hn))
		g.p("VPANDD %s, %s, %s", y(rMask), y(hn), y(hn))
		g.p("VPANDD %s, %s, %s", y(rMask), y(lo), y(lo))
		if cvt {
			// [d0 ×4 | d1 ×4] as fp16 words, widened to floats.
			g.p("VPBROADCASTW %s, %s", wrow(j, 0), x(hi))
			g.p("VPBROADCASTW %s, %s", wrow(j, 18), x(rU))
			g.p("VPUNPCKLQDQ %s, %s, %s", x(rU), x(hi), x(hi))
			g.p("VCVTPH2PS %s, %s", x(hi), y(hi))
		} else {
			g.p("MOVWLZX %s, R14", wrow(j, 0))
			g.p("VBROADCASTSS (R13)(R14*4), %s", y(hi))
			g.p("MOVWLZX %s, R14", wrow(j, 18))
			g.p("VBROADCASTSS (R13)(R14*4), K1, %s", y(hi))
		}
		g.p("VMOVDQA32 %s, %s", y(rNS), y(rT))
		g.p("VPDPBUSD %s, %s, %s", y(rAL), y(lo), y(rT))
		g.p("VPDPBUSD %s, %s, %s", y(rAH), y(hn), y(rT))
		g.p("VCVTDQ2PS %s, %s", y(rT), y(rT))
		g.p("VMULPS %s, %s, %s", y(rSA), y(hi), y(rU))
		g.p("VFMADD231PS %s, %s, %s", y(rU), y(rT), y(j))
	}
	g.p("ADDQ $36, SI")
	if ahead {
		g.p("ADDQ $36, R10")
	}
	g.p("ADDQ $68, DI")
	g.p("DECQ AX")
	g.p("JNZ %s_pair", name)
	g.label(name + "_tail")
	g.p("TESTQ $1, CX")
	g.p("JZ %s_reduce", name)
	// The odd last block: 128-bit halves, upper lanes zero.
	g.p("VMOVDQU64 2(DI), %s", x(rAL))
	g.p("VMOVDQU64 18(DI), %s", x(rAH))
	g.p("MOVWLZX 0(DI), R14")
	g.p("VBROADCASTSS (R13)(R14*4), %s", y(rSA))
	g.p("VPXORD %s, %s, %s", y(rNS), y(rNS), y(rNS))
	g.p("VPDPBUSD %s, %s, %s", y(rAL), y(rOff), y(rNS))
	g.p("VPDPBUSD %s, %s, %s", y(rAH), y(rOff), y(rNS))
	g.p("VPSUBD %s, %s, %s", y(rNS), y(rZero), y(rNS))
	for j := 0; j < rn; j++ {
		lo, hi, hn := rQ+j, rSW+j, 4+j
		g.p("VMOVDQU64 %s, %s", wrow(j, 2), x(lo))
		g.p("VPSRLW $4, %s, %s", x(lo), x(hn))
		g.p("VPANDD %s, %s, %s", x(rMask), x(hn), x(hn))
		g.p("VPANDD %s, %s, %s", x(rMask), x(lo), x(lo))
		if cvt {
			g.p("VPBROADCASTW %s, %s", wrow(j, 0), x(hi))
			g.p("VCVTPH2PS %s, %s", x(hi), y(hi))
		} else {
			g.p("MOVWLZX %s, R14", wrow(j, 0))
			g.p("VBROADCASTSS (R13)(R14*4), %s", y(hi))
		}
		g.p("VMOVDQA32 %s, %s", y(rNS), y(rT))
		g.p("VPDPBUSD %s, %s, %s", y(rAL), y(lo), y(rT))
		g.p("VPDPBUSD %s, %s, %s", y(rAH), y(hn), y(rT))
		g.p("VCVTDQ2PS %s, %s", y(rT), y(rT))
		g.p("VMULPS %s, %s, %s", y(rSA), y(hi), y(rU))
		g.p("VFMADD231PS %s, %s, %s", y(rU), y(rT), y(j))
	}
	g.label(name + "_reduce")
	for j := 0; j < rn; j++ {
		g.p("VEXTRACTF32X4 $1, %s, %s", y(j), x(rT))
		g.p("VADDPS %s, %s, %s", x(rT), x(j), x(rT))
		g.p("VPERMILPD $1, %s, %s", x(rT), x(rU))
		g.p("VADDPS %s, %s, %s", x(rU), x(rT), x(rT))
		g.p("VMOVSHDUP %s, %s", x(rT), x(rU))
		g.p("VADDSS %s, %s, %s", x(rU), x(rT), x(rT))
		g.p("VMOVSS %s, %s", x(rT), drow(0, 4*j))
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// dotRow accumulates activation row i (in rA, scales in rSA) against the RN unpacked weight rows.
func (g *gen) dotRow(i, rn int) {
	g.p("VPXORD %s, %s, %s", z(rNS), z(rNS), z(rNS))
	g.p("VPDPBUSD %s, %s, %s", z(rA), z(rOff), z(rNS))
	g.p("VPSUBD %s, %s, %s", z(rNS), z(rZero), z(rNS))
	for j := 0; j < rn; j++ {
		g.p("VMOVDQA32 %s, %s", z(rNS), z(rT))
		g.p("VPDPBUSD %s, %s, %s", z(rA), z(rQ+j), z(rT))
		g.p("VCVTDQ2PS %s, %s", z(rT), z(rT))
		g.p("VMULPS %s, %s, %s", z(rSA), z(rSW+j), z(rU))
		g.p("VFMADD231PS %s, %s, %s", z(rU), z(rT), z(i*rn+j))
	}
}

// prepBytes is the size of one prepared activation pair: the 64 activation bytes in the order the weight tiles
// use, 16 float scales, and 16 int32 lanes of -offset·Σa.
const prepBytes = 192

// prepTile writes the routine that prepares activations for the prepTile kernels: for each of rows rows (stride
// as) and each pair of blocks (the odd last block as a pair with an empty second half), it stores at out (row
// stride os) the activation bytes, their scales and the offset correction — the work quantTile repeats for every
// weight tile, done once per activation row.
func (g *gen) prepRoutine(wt string) string {
	name := fmt.Sprintf("%sPrep", wt)
	off, lanes := "$0x08080808", "$0xf0f0"
	if wt == "q8" {
		off, lanes = "$0x80808080", "$0xff00"
	}
	fmt.Fprintf(&g.s, "\n// func %s(a *byte, as int, rows int, nb int, out *byte, os int)\n", name)
	fmt.Fprintf(&g.s, "TEXT ·%s(SB), NOSPLIT, $0-48\n", name)
	g.p("MOVQ a+0(FP), DI")
	g.p("MOVQ as+8(FP), R10")
	g.p("MOVQ rows+16(FP), R11")
	g.p("MOVQ nb+24(FP), CX")
	g.p("MOVQ out+32(FP), DX")
	g.p("MOVQ os+40(FP), BX")
	g.p("LEAQ ·halfTable(SB), R13")
	g.p("MOVL %s, AX", lanes)
	g.p("KMOVW AX, K1")
	g.p("MOVL %s, AX", off)
	g.p("VPBROADCASTD AX, %s", z(rOff))
	g.p("VPXORD %s, %s, %s", z(rZero), z(rZero), z(rZero))
	g.label(name + "_row")
	g.p("MOVQ DI, SI")
	g.p("MOVQ DX, R9")
	g.p("MOVQ CX, AX")
	g.p("SHRQ $1, AX")
	g.p("JZ %s_tail", name)
	g.label(name + "_pair")
	if wt == "q4" {
		g.p("VMOVDQU64 2(SI), %s", x(rA))
		g.p("VINSERTI32X4 $1, 36(SI), %s, %s", z(rA), z(rA))
		g.p("VINSERTI32X4 $2, 18(SI), %s, %s", z(rA), z(rA))
		g.p("VINSERTI32X4 $3, 52(SI), %s, %s", z(rA), z(rA))
	} else {
		g.p("VMOVDQU64 2(SI), %s", y(rA))
		g.p("VINSERTI64X4 $1, 36(SI), %s, %s", z(rA), z(rA))
	}
	g.scalePair("0(SI)", "34(SI)", rSA)
	g.prepStore()
	g.p("ADDQ $68, SI")
	g.p("ADDQ $%d, R9", prepBytes)
	g.p("DECQ AX")
	g.p("JNZ %s_pair", name)
	g.label(name + "_tail")
	g.p("TESTQ $1, CX")
	g.p("JZ %s_next", name)
	g.p("VMOVDQU64 2(SI), %s", y(rA))
	g.p("MOVWLZX 0(SI), R14")
	g.p("VBROADCASTSS (R13)(R14*4), %s", z(rSA))
	g.prepStore()
	g.label(name + "_next")
	g.p("ADDQ R10, DI")
	g.p("ADDQ BX, DX")
	g.p("DECQ R11")
	g.p("JNZ %s_row", name)
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// prepStore writes the prepared pair in rA and rSA, with its offset correction, at R9.
func (g *gen) prepStore() {
	g.p("VPXORD %s, %s, %s", z(rNS), z(rNS), z(rNS))
	g.p("VPDPBUSD %s, %s, %s", z(rA), z(rOff), z(rNS))
	g.p("VPSUBD %s, %s, %s", z(rNS), z(rZero), z(rNS))
	g.p("VMOVDQU64 %s, 0(R9)", z(rA))
	g.p("VMOVUPS %s, 64(R9)", z(rSA))
	g.p("VMOVDQU64 %s, 128(R9)", z(rNS))
}

// prepTile writes a tile kernel that reads prepared activations (a points at prepared rows, as is their stride)
// as memory operands: per activation row and weight row only the dot, convert, scale and accumulate remain.
func (g *gen) prepTile(wt string, rm, rn int) string {
	name := fmt.Sprintf("%sVNNIP%dx%d", wt, rm, rn)
	wb := 18
	mask, lanes := "$0x0f0f0f0f", "$0xf0f0"
	if wt == "q8" {
		wb = 34
		mask, lanes = "$0x80808080", "$0xff00"
	}
	g.prologue(name, rm)
	g.p("LEAQ ·halfTable(SB), R13")
	g.p("MOVL %s, AX", lanes)
	g.p("KMOVW AX, K1")
	g.p("MOVL %s, AX", mask)
	g.p("VPBROADCASTD AX, %s", z(rMask))
	for r := 0; r < rm*rn; r++ {
		g.p("VPXORD %s, %s, %s", z(r), z(r), z(r))
	}
	g.p("MOVQ CX, AX")
	g.p("SHRQ $1, AX")
	g.p("JZ %s_tail", name)
	g.label(name + "_pair")
	for j := 0; j < rn; j++ {
		q, sw := rQ+j, rSW+j
		if wt == "q4" {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), x(q))
			g.p("VINSERTI32X4 $1, %s, %s, %s", wrow(j, wb+2), y(q), y(q))
			g.p("VPSRLW $4, %s, %s", y(q), y(rT))
			g.p("VINSERTI64X4 $1, %s, %s, %s", y(rT), z(q), z(q))
			g.p("VPANDD %s, %s, %s", z(rMask), z(q), z(q))
		} else {
			g.p("VMOVDQU64 %s, %s", wrow(j, 2), y(q))
			g.p("VINSERTI64X4 $1, %s, %s, %s", wrow(j, wb+2), z(q), z(q))
			g.p("VPXORD %s, %s, %s", z(rMask), z(q), z(q))
		}
		g.scalePair(wrow(j, 0), wrow(j, wb), sw)
	}
	g.prepDot(rm, rn)
	g.p("ADDQ $%d, SI", 2*wb)
	g.p("ADDQ $%d, DI", prepBytes)
	g.p("DECQ AX")
	g.p("JNZ %s_pair", name)
	g.label(name + "_tail")
	g.p("TESTQ $1, CX")
	g.p("JZ %s_reduce", name)
	g.tailWeights(wt, rn, false)
	g.prepDot(rm, rn)
	g.label(name + "_reduce")
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.reduce(i*rn+j, drow(i, 4*j))
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// prepDot accumulates the prepared pair at DI (rows by R10) against the RN weight registers.
func (g *gen) prepDot(rm, rn int) {
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.p("VMOVDQU64 %s, %s", arow(i, 128), z(rT))
			g.p("VPDPBUSD %s, %s, %s", arow(i, 0), z(rQ+j), z(rT))
			g.p("VCVTDQ2PS %s, %s", z(rT), z(rT))
			g.p("VMULPS %s, %s, %s", arow(i, 64), z(rSW+j), z(rU))
			g.p("VFMADD231PS %s, %s, %s", z(rU), z(rT), z(i*rn+j))
		}
	}
}

// floatTile writes one AVX-512 tile for float weights ("f32", "f16", "bf16") against float32 activations, over
// nb steps of 16 elements.
func (g *gen) floatTile(wt string, rm, rn int) string {
	name := fmt.Sprintf("%sF%dx%d", wt, rm, rn)
	g.prologue(name, rm)
	for r := 0; r < rm*rn; r++ {
		g.p("VPXORD %s, %s, %s", z(r), z(r), z(r))
	}
	step := 32
	if wt == "f32" {
		step = 64
	}
	g.p("TESTQ CX, CX")
	g.p("JZ %s_reduce", name)
	g.label(name + "_loop")
	for j := 0; j < rn; j++ {
		switch wt {
		case "f16":
			g.p("VCVTPH2PS %s, %s", wrow(j, 0), z(16+j))
		case "bf16":
			g.p("VPMOVZXWD %s, %s", wrow(j, 0), z(16+j))
			g.p("VPSLLD $16, %s, %s", z(16+j), z(16+j))
		default:
			g.p("VMOVUPS %s, %s", wrow(j, 0), z(16+j))
		}
	}
	for i := 0; i < rm; i++ {
		g.p("VMOVUPS %s, %s", arow(i, 0), z(20+i))
		for j := 0; j < rn; j++ {
			g.p("VFMADD231PS %s, %s, %s", z(20+i), z(16+j), z(i*rn+j))
		}
	}
	g.p("ADDQ $%d, SI", step)
	g.p("ADDQ $64, DI")
	g.p("DECQ CX")
	g.p("JNZ %s_loop", name)
	g.label(name + "_reduce")
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.reduce(i*rn+j, drow(i, 4*j))
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// AVX2 register plan: 16 YMM registers, tiles up to 2×2, one block (quantized) or 8 elements (float) a step.
const (
	vQ    = 4  // weights of row j (Q4_0: unpacked nibbles; Q8_0: signed values), 4..5
	vSW   = 6  // weight scales, 6..7
	vA    = 8  // activations of row i
	vSA   = 9  // activation scales of row i
	vNS   = 10 // Q4_0: 8·Σ pairs of a as int16; Q8_0: |w| of row 0
	vT    = 11
	vU    = 12
	vMask = 13 // Q4_0: 0x0F bytes; Q8_0: |w| of row 1
	vOnes = 14 // int16 ones, for VPMADDWD
	vOff  = 15 // Q4_0: 8 as bytes
)

// quantTileAVX2 writes one AVX2 tile: VPMADDUBSW (unsigned × signed bytes into int16 pairs), then VPMADDWD by
// ones into int32. Q4_0 nibbles are unsigned, and their offset of 8 is removed in the int16 domain (|(q-8)·a|·2
// fits easily). Q8_0 uses the sign trick: |w| times a·sign(w), exact while no value is -128, which ggml's
// quantizer never writes.
func (g *gen) quantTileAVX2(wt string, rm, rn int) string {
	name := fmt.Sprintf("%sAVX2%dx%d", wt, rm, rn)
	wb := 18
	if wt == "q8" {
		wb = 34
	}
	g.prologue(name, rm)
	g.p("MOVL $0x00010001, AX")
	g.p("MOVD AX, %s", x(vOnes))
	g.p("VPBROADCASTD %s, %s", x(vOnes), y(vOnes))
	if wt == "q4" {
		g.p("MOVL $0x0f0f0f0f, AX")
		g.p("MOVD AX, %s", x(vMask))
		g.p("VPBROADCASTD %s, %s", x(vMask), y(vMask))
		g.p("MOVL $0x08080808, AX")
		g.p("MOVD AX, %s", x(vOff))
		g.p("VPBROADCASTD %s, %s", x(vOff), y(vOff))
	}
	for r := 0; r < rm*rn; r++ {
		g.p("VPXOR %s, %s, %s", y(r), y(r), y(r))
	}
	ahead := rm == 1 // single-row tiles prefetch the next tile's rows, as the AVX-512 ones do
	if ahead {
		g.aheadPrefetch(2)
	}
	g.p("TESTQ CX, CX")
	g.p("JZ %s_reduce", name)
	g.label(name + "_loop")
	abs := []int{vNS, vMask}
	for j := 0; j < rn; j++ {
		q, sw := vQ+j, vSW+j
		if ahead {
			g.prefetchRow(j, true)
		}
		if wt == "q4" {
			g.p("VMOVDQU %s, %s", wrow(j, 2), x(q))
			g.p("VPSRLW $4, %s, %s", x(q), x(vT))
			g.p("VINSERTI128 $1, %s, %s, %s", x(vT), y(q), y(q))
			g.p("VPAND %s, %s, %s", y(vMask), y(q), y(q))
		} else {
			g.p("VMOVDQU %s, %s", wrow(j, 2), y(q))
			g.p("VPABSB %s, %s", y(q), y(abs[j]))
		}
		g.p("VPBROADCASTW %s, %s", wrow(j, 0), x(sw))
		g.p("VCVTPH2PS %s, %s", x(sw), y(sw))
	}
	for i := 0; i < rm; i++ {
		g.p("VMOVDQU %s, %s", arow(i, 2), y(vA))
		g.p("VPBROADCASTW %s, %s", arow(i, 0), x(vSA))
		g.p("VCVTPH2PS %s, %s", x(vSA), y(vSA))
		if wt == "q4" {
			g.p("VPMADDUBSW %s, %s, %s", y(vA), y(vOff), y(vNS))
		}
		for j := 0; j < rn; j++ {
			if wt == "q4" {
				g.p("VPMADDUBSW %s, %s, %s", y(vA), y(vQ+j), y(vT))
				g.p("VPSUBW %s, %s, %s", y(vNS), y(vT), y(vT))
			} else {
				g.p("VPSIGNB %s, %s, %s", y(vQ+j), y(vA), y(vT))
				g.p("VPMADDUBSW %s, %s, %s", y(vT), y(abs[j]), y(vT))
			}
			g.p("VPMADDWD %s, %s, %s", y(vOnes), y(vT), y(vT))
			g.p("VCVTDQ2PS %s, %s", y(vT), y(vT))
			g.p("VMULPS %s, %s, %s", y(vSA), y(vSW+j), y(vU))
			g.p("VFMADD231PS %s, %s, %s", y(vU), y(vT), y(i*rn+j))
		}
	}
	g.p("ADDQ $%d, SI", wb)
	if ahead {
		g.p("ADDQ $%d, R10", wb)
	}
	g.p("ADDQ $34, DI")
	g.p("DECQ CX")
	g.p("JNZ %s_loop", name)
	g.label(name + "_reduce")
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.reduceY(i*rn+j, drow(i, 4*j))
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

// reduceY sums the 8 lanes of YMM accumulator r and stores the float at dst.
func (g *gen) reduceY(r int, dst string) {
	g.p("VEXTRACTF128 $1, %s, %s", y(r), x(vT))
	g.p("VADDPS %s, %s, %s", x(vT), x(r), x(vT))
	g.reduce4(vT, vU, dst)
}

// floatTileAVX2 is floatTile for AVX2 and F16C: 8 elements a step, tiles up to 2×2.
func (g *gen) floatTileAVX2(wt string, rm, rn int) string {
	name := fmt.Sprintf("%sFAVX2%dx%d", wt, rm, rn)
	g.prologue(name, rm)
	for r := 0; r < rm*rn; r++ {
		g.p("VPXOR %s, %s, %s", y(r), y(r), y(r))
	}
	step := 16
	if wt == "f32" {
		step = 32
	}
	g.p("TESTQ CX, CX")
	g.p("JZ %s_reduce", name)
	g.label(name + "_loop")
	for j := 0; j < rn; j++ {
		switch wt {
		case "f16":
			g.p("VCVTPH2PS %s, %s", wrow(j, 0), y(vQ+j))
		case "bf16":
			g.p("VPMOVZXWD %s, %s", wrow(j, 0), y(vQ+j))
			g.p("VPSLLD $16, %s, %s", y(vQ+j), y(vQ+j))
		default:
			g.p("VMOVUPS %s, %s", wrow(j, 0), y(vQ+j))
		}
	}
	for i := 0; i < rm; i++ {
		g.p("VMOVUPS %s, %s", arow(i, 0), y(vA+i))
		for j := 0; j < rn; j++ {
			g.p("VFMADD231PS %s, %s, %s", y(vA+i), y(vQ+j), y(i*rn+j))
		}
	}
	g.p("ADDQ $%d, SI", step)
	g.p("ADDQ $32, DI")
	g.p("DECQ CX")
	g.p("JNZ %s_loop", name)
	g.label(name + "_reduce")
	for i := 0; i < rm; i++ {
		for j := 0; j < rn; j++ {
			g.reduceY(i*rn+j, drow(i, 4*j))
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
	return name
}

func main() {
	if len(os.Args) > 1 {
		fmt.Sscan(os.Args[1], &prefetch)
	}
	var g gen
	fmt.Fprintf(&g.s, "// Code generated by gen_amd64.go; DO NOT EDIT.\n\n#include \"textflag.h\"\n")
	fmt.Fprintf(&g.g, "// Code generated by gen_amd64.go; DO NOT EDIT.\n\npackage simd\n\n")
	const maxR = 4
	table := func(kind string, names [maxR][maxR]string, sig string) {
		for _, row := range names {
			for _, n := range row {
				if n != "nil" {
					fmt.Fprintf(&g.g, "//go:noescape\nfunc %s%s\n\n", n, sig)
				}
			}
		}
		fmt.Fprintf(&g.g, "// %s holds the tiles by [activation rows-1][weight rows-1].\nvar %s = [%d][%d]tileFunc{\n", kind, kind, maxR, maxR)
		for _, row := range names {
			fmt.Fprintf(&g.g, "\t{")
			for j, n := range row {
				if j > 0 {
					fmt.Fprintf(&g.g, ", ")
				}
				fmt.Fprintf(&g.g, "%s", n)
			}
			fmt.Fprintf(&g.g, "},\n")
		}
		fmt.Fprintf(&g.g, "}\n\n")
	}
	const qsig = "(w *byte, ws int, a *byte, as int, nb int, dst *float32, ds int)"
	for _, wt := range []string{"q4", "q8"} {
		var names [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				names[i][j] = g.quantTile(wt, i+1, j+1, false)
			}
		}
		table(wt+"VNNITiles", names, qsig)
		var rowPF [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				rowPF[i][j] = "nil"
			}
		}
		for j := range maxR {
			rowPF[0][j] = g.quantTile(wt, 1, j+1, true)
		}
		table(wt+"VNNIRTiles", rowPF, qsig)
		for i := range maxR {
			for j := range maxR {
				names[i][j] = g.prepTile(wt, i+1, j+1)
			}
		}
		for _, row := range names {
			for _, n := range row {
				fmt.Fprintf(&g.g, "//go:noescape\nfunc %s%s\n\n", n, qsig)
			}
		}
		// A switch of direct calls rather than the table: the prepared rows live on the caller's stack, and a call
		// through a func value would make the compiler move them to the heap.
		fmt.Fprintf(&g.g, "// %sPrepTile calls the prepared tile of rm×rn directly, so that a stays on the caller's stack.\n", wt)
		fmt.Fprintf(&g.g, "func %sPrepTile(rm, rn int, w *byte, ws int, a *byte, as int, nb int, dst *float32, ds int) {\n\tswitch rm*8 + rn {\n", wt)
		for i := range maxR {
			for j := range maxR {
				fmt.Fprintf(&g.g, "\tcase %d:\n\t\t%s(w, ws, a, as, nb, dst, ds)\n", (i+1)*8+j+1, names[i][j])
			}
		}
		fmt.Fprintf(&g.g, "\t}\n}\n\n")
		n := g.prepRoutine(wt)
		fmt.Fprintf(&g.g, "//go:noescape\nfunc %s(a *byte, as int, rows int, nb int, out *byte, os int)\n\n", n)
	}
	{
		var names [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				names[i][j] = "nil"
				if i == 0 {
					names[i][j] = g.gemvQ4Y(j+1, false, true)
				}
			}
		}
		table("q4VNNIYTiles", names, qsig)
		for j := range maxR {
			names[0][j] = g.gemvQ4Y(j+1, true, true)
		}
		table("q4VNNIYCTiles", names, qsig)
		for j := range maxR {
			names[0][j] = g.gemvQ4Y(j+1, false, false)
		}
		table("q4VNNIYRTiles", names, qsig)
	}
	fmt.Fprintf(&g.g, "// prepBytes is the size of one prepared activation pair.\nconst prepBytes = %d\n\n", prepBytes)
	for _, wt := range []string{"f32", "f16", "bf16"} {
		var names [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				names[i][j] = g.floatTile(wt, i+1, j+1)
			}
		}
		table(wt+"Tiles", names, qsig)
	}
	const maxAVX2 = 2
	for _, wt := range []string{"q4", "q8"} {
		var names [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				names[i][j] = "nil"
				if i < maxAVX2 && j < maxAVX2 {
					names[i][j] = g.quantTileAVX2(wt, i+1, j+1)
				}
			}
		}
		table(wt+"AVX2Tiles", names, qsig)
	}
	for _, wt := range []string{"f32", "f16", "bf16"} {
		var names [maxR][maxR]string
		for i := range maxR {
			for j := range maxR {
				names[i][j] = "nil"
				if i < maxAVX2 && j < maxAVX2 {
					names[i][j] = g.floatTileAVX2(wt, i+1, j+1)
				}
			}
		}
		table(wt+"AVX2Tiles", names, qsig)
	}
	dir := os.Getenv("SIMD_GEN_DIR") // where to write (tests compare a fresh run with the committed files)
	if dir == "" {
		dir = "."
	}
	if err := os.WriteFile(filepath.Join(dir, "kernels_amd64.s"), g.s.Bytes(), 0o644); err != nil {
		panic(err)
	}
	src, err := format.Source(g.g.Bytes())
	if err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kernels_amd64.go"), src, 0o644); err != nil {
		panic(err)
	}
}
