// Command gen writes the AMX package's generated files: the instruction macros (amx_encodings.h), the tile and
// AVX-512 kernels (kernels_amd64.s), their Go declarations (zkernels_amd64.go) and the argument blocks they read
// (zargs.go). Run it with `go generate ./amx` after changing the schedule or the kernels.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"tilelab/amx/internal/sched"
	T "tilelab/amx/internal/tileasm"
)

// Argument block fields, in order; every field is 8 bytes. The Go structs in zargs.go come from these lists, so
// the assembly offsets and the Go layout cannot drift apart.
var tileFields = []string{"cfg", "a", "lda", "b", "ws", "xs", "xsGroup", "c", "ldc", "groups", "steps", "astep",
	"bstep", "rows", "scratch", "aOff0", "aOff1", "aOff2", "aOff3", "bOff0", "bOff1", "bOff2", "bOff3", "wsOff0",
	"wsOff1", "wsOff2", "wsOff3", "cOff0", "cOff1", "cOff2", "cOff3",
	// The rectangle of blocks one call computes (n blocks outer, m blocks inner) and the strides between blocks.
	"mBlocks", "nBlocks", "aBlock", "bBlock", "wsBlock", "xsBlock", "cRowBlock", "cColBlock",
	"aGroup", "bGroup",
	// The kernel's own cursors.
	"nLeft", "gLeft", "mLeft", "bN", "wsN", "cN", "aG", "bG", "wsG", "xsG", "aCur", "xsCur", "cCur",
	// The pipelined int8 kernels' two halves of the scratch: the one the next block's sums go to, and the other.
	"sCur", "sAlt"}

var vecFields = []string{"x", "lda", "b", "bPanel", "wsum", "ws", "wsPanel", "xs", "xsGroup", "c", "ldc", "groups",
	"quads"}

func off(fields []string, name string) int {
	for i, f := range fields {
		if f == name {
			return 8 * i
		}
	}
	log.Fatalf("gen: no field %q", name)
	return 0
}

type gen struct {
	s      bytes.Buffer
	macros map[string]T.Inst
}

func (g *gen) p(format string, a ...any) { fmt.Fprintf(&g.s, "\t"+format+"\n", a...) }
func (g *gen) label(l string)            { fmt.Fprintf(&g.s, "%s:\n", l) }

// emit records the instruction's macro and writes its name.
func (g *gen) emit(in T.Inst, err error) {
	if err != nil {
		log.Fatal(err)
	}
	g.macros[in.Name] = in
	g.p("%s", in.Name)
}

// loadTile loads the index-th tile of an operand: straight from its base register for the first, else from base
// plus the offset the argument struct holds under offName+index, computed in the scratch register.
func (g *gen) loadTile(tile, index int, base, scratch, stride T.Reg, offName string) {
	if index == 0 {
		g.emit(T.TileLoadD(tile, base, stride))
		return
	}
	g.p("MOVQ %s, %s", base.Go(), scratch.Go())
	g.p("ADDQ %s, %s", g.k(fmt.Sprintf("%s%d", offName, index)), scratch.Go())
	g.emit(T.TileLoadD(tile, scratch, stride))
}

func (g *gen) k(name string) string { return fmt.Sprintf("%d(AX)", off(tileFields, name)) }
func (g *gen) v(name string) string { return fmt.Sprintf("%d(AX)", off(vecFields, name)) }

// movArg and addArg copy or add one argument-block field into another, through R10.
func (g *gen) movArg(dst, src string) {
	g.p("MOVQ %s, R10", g.k(src))
	g.p("MOVQ R10, %s", g.k(dst))
}

func (g *gen) addArg(dst, src string) {
	g.p("MOVQ %s, R10", g.k(src))
	g.p("ADDQ R10, %s", g.k(dst))
}

// tilePrologue starts a tile kernel: AX the argument block, the tile configuration loaded, R8 the A stride and
// R9 the B stride (64).
func (g *gen) tilePrologue(name string) {
	fmt.Fprintf(&g.s, "\n// func %s(p *tileArgs)\nTEXT ·%s(SB), NOSPLIT, $0-8\n", name, name)
	g.p("MOVQ p+0(FP), AX")
	g.p("MOVQ %s, R10", g.k("cfg"))
	g.emit(T.LdTileCfg(T.R10))
	g.p("MOVQ %s, R8", g.k("lda"))
	g.p("MOVQ $64, R9")
}

// openLoops opens the loops over column blocks, groups and row blocks (labels nblock, group, mblock), setting
// their cursors, and points SI and DI at the row block's first activation and weight tiles.
func (g *gen) openLoops() {
	g.movArg("bN", "b")
	g.movArg("wsN", "ws")
	g.movArg("cN", "c")
	g.movArg("nLeft", "nBlocks")
	g.label("nblock")
	g.movArg("aG", "a")
	g.movArg("bG", "bN")
	g.movArg("wsG", "wsN")
	g.movArg("xsG", "xs")
	g.movArg("gLeft", "groups")
	g.label("group")
	g.movArg("aCur", "aG")
	g.movArg("xsCur", "xsG")
	g.movArg("cCur", "cN")
	g.movArg("mLeft", "mBlocks")
	g.label("mblock")
	g.p("MOVQ %s, SI", g.k("aCur"))
	g.p("MOVQ %s, DI", g.k("bG"))
}

// closeLoops advances the cursors and closes the three loops openLoops opened.
func (g *gen) closeLoops() {
	g.addArg("aCur", "aBlock")
	g.addArg("xsCur", "xsBlock")
	g.addArg("cCur", "cRowBlock")
	g.p("DECQ %s", g.k("mLeft"))
	g.p("JNZ mblock")
	g.addArg("aG", "aGroup")
	g.addArg("bG", "bGroup")
	g.p("ADDQ $64, %s", g.k("wsG"))
	g.addArg("xsG", "xsGroup")
	g.p("DECQ %s", g.k("gLeft"))
	g.p("JNZ group")
	g.addArg("bN", "bBlock")
	g.addArg("wsN", "wsBlock")
	g.addArg("cN", "cColBlock")
	g.p("DECQ %s", g.k("nLeft"))
	g.p("JNZ nblock")
}

// tileKernel writes one tile kernel. A call computes a rectangle of output blocks: for each column block, for
// each K group, for each row block, the accumulators run over the group's K steps, then leave the tiles: int8
// sums are converted and scaled in AVX-512 and added into the float output (so the weights of one column block
// and group stay in L1 while the row blocks stream past); bf16 partial sums are stored to the output and loaded
// again for the next group (the whole K is one group unless the configuration says otherwise).
func (g *gen) tileKernel(name string, int8 bool, pl sched.Plan) {
	acc := pl.MT * pl.NT
	g.tilePrologue(name)
	g.openLoops()
	if int8 {
		for t := 0; t < acc; t++ {
			g.emit(T.TileZero(t))
		}
	} else {
		g.p("MOVQ %s, BX", g.k("cCur"))
		g.p("MOVQ %s, R13", g.k("ldc"))
		for t := 0; t < acc; t++ {
			g.p("MOVQ BX, R10")
			g.p("ADDQ %s, R10", g.k(fmt.Sprintf("cOff%d", t)))
			g.emit(T.TileLoadD(t, T.R10, T.R13))
		}
	}
	g.p("MOVQ %s, R12", g.k("steps"))
	g.label("step")
	dot := "tdpbssd"
	if !int8 {
		dot = "tdpbf16ps"
	}
	g.stepOps(pl, dot, false)
	g.p("ADDQ %s, SI", g.k("astep"))
	g.p("ADDQ %s, DI", g.k("bstep"))
	g.p("DECQ R12")
	g.p("JNZ step")
	if int8 {
		// The group's int32 sums leave the tiles, are converted, scaled by weight scale x activation scale and
		// added into the float output block, in the same order of operations as the emulator (so both agree
		// bit for bit).
		g.p("MOVQ %s, BX", g.k("scratch"))
		for t := 0; t < acc; t++ {
			g.p("LEAQ %d(BX), R10", t*1024)
			g.emit(T.TileStoreD(t, T.R10, T.R9))
		}
		g.weightScales(pl, 24)
		g.p("MOVQ %s, CX", g.k("xsCur"))
		g.p("MOVQ %s, DX", g.k("cCur"))
		g.p("MOVQ %s, R13", g.k("ldc"))
		for mi := 0; mi < pl.MT; mi++ {
			g.p("LEAQ %d(BX), R10", mi*pl.NT*1024)
			g.p("MOVQ %s, R11", g.k("rows"))
			l := fmt.Sprintf("rows%d", mi)
			g.label(l)
			g.scaleRow(pl, "R10", 1024, 24)
			g.p("ADDQ $64, R10")
			g.p("ADDQ $4, CX")
			g.p("ADDQ R13, DX")
			g.p("DECQ R11")
			g.p("JNZ %s", l)
		}
	} else {
		for t := 0; t < acc; t++ {
			g.p("MOVQ BX, R10")
			g.p("ADDQ %s, R10", g.k(fmt.Sprintf("cOff%d", t)))
			g.emit(T.TileStoreD(t, T.R10, T.R13))
		}
	}
	g.closeLoops()
	g.emit(T.TileRelease(), nil)
	g.p("VZEROUPPER")
	g.p("RET")
}

// pipedKernel writes an int8 tile kernel whose spill is software-pipelined: a block's sums leave the tiles into
// one half of the scratch, and the next block's K steps convert and scale them into the output a few rows per
// step (2 x MT rows, the rest after the steps), so the tile unit is fed while the AVX-512 code runs. The
// arithmetic per output element is the plain kernel's, in the same order, so results agree bit for bit. The
// activation tiles, each read once per column block, are loaded with the hint not to keep them near the core
// (TILELOADDT1), leaving L1 to the weights the row blocks share.
//
// Registers: SI, DI the A and B cursors, R8 and R9 their strides, R10 and R11 temporaries, R12 the step count
// (and the scratch stride when storing), R13 ldc; the pending spill: BX its sums, CX its activation scales, DX
// its output rows, R14 its rows left, Z26.. its weight scales.
func (g *gen) pipedKernel(name string, pl sched.Plan) {
	acc := pl.MT * pl.NT
	perStep := 2 * pl.MT
	rowBytes := pl.NT * 64
	shift := map[int]int{1: 6, 2: 7, 4: 8}[pl.NT]
	g.tilePrologue(name)
	g.p("MOVQ %s, R13", g.k("ldc"))
	g.p("XORQ R14, R14")
	spillRow := func() {
		g.scaleRow(pl, "BX", 64, 26)
		g.p("ADDQ $%d, BX", rowBytes)
		g.p("ADDQ $4, CX")
		g.p("ADDQ R13, DX")
	}
	drain := func(l string) {
		g.label(l)
		g.p("TESTQ R14, R14")
		g.p("JZ %s_done", l)
		spillRow()
		g.p("DECQ R14")
		g.p("JMP %s", l)
		g.label(l + "_done")
	}
	g.p("MOVQ %s, R10", g.k("scratch"))
	g.p("MOVQ R10, %s", g.k("sCur"))
	g.p("ADDQ $4096, R10")
	g.p("MOVQ R10, %s", g.k("sAlt"))
	g.openLoops()
	for t := 0; t < acc; t++ {
		g.emit(T.TileZero(t))
	}
	g.p("MOVQ %s, R12", g.k("steps"))
	g.label("step")
	g.stepOps(pl, "tdpbssd", true)
	// A few rows of the previous block's spill, while the dot products above run.
	g.p("CMPQ R14, $%d", perStep)
	g.p("JLT stepnext")
	for i := 0; i < perStep; i++ {
		spillRow()
	}
	g.p("SUBQ $%d, R14", perStep)
	g.label("stepnext")
	g.p("ADDQ %s, SI", g.k("astep"))
	g.p("ADDQ %s, DI", g.k("bstep"))
	g.p("DECQ R12")
	g.p("JNZ step")
	drain("rest")
	// This block's sums leave the tiles into the free half of the scratch, rows of all NT tiles side by side, and
	// become the pending spill.
	g.p("MOVQ %s, BX", g.k("sCur"))
	g.p("MOVQ %s, R10", g.k("sAlt"))
	g.p("MOVQ R10, %s", g.k("sCur"))
	g.p("MOVQ BX, %s", g.k("sAlt"))
	g.p("MOVQ $%d, R12", rowBytes)
	g.p("MOVQ %s, R14", g.k("rows"))
	g.p("SHLQ $%d, R14", shift)
	g.p("MOVQ BX, R10")
	for mi := 0; mi < pl.MT; mi++ {
		for ni := 0; ni < pl.NT; ni++ {
			g.p("LEAQ %d(R10), R11", ni*64)
			g.emit(T.TileStoreD(pl.AccTile(mi, ni), T.R11, T.R12))
		}
		if mi < pl.MT-1 {
			g.p("ADDQ R14, R10")
		}
	}
	g.weightScales(pl, 26)
	g.p("MOVQ %s, CX", g.k("xsCur"))
	g.p("MOVQ %s, DX", g.k("cCur"))
	g.p("MOVQ %s, R14", g.k("rows"))
	if pl.MT > 1 {
		g.p("IMULQ $%d, R14", pl.MT)
	}
	g.closeLoops()
	drain("last")
	g.emit(T.TileRelease(), nil)
	g.p("VZEROUPPER")
	g.p("RET")
}

// scaleRow converts one output row's int32 sums (NT runs of 16, tileBytes apart from src), multiplies them by the
// row's activation scale (at CX) times the weight scales (Z(firstScale)...) and adds them into the output row at DX,
// in the emulator's order of operations.
func (g *gen) scaleRow(pl sched.Plan, src string, tileBytes, firstScale int) {
	g.p("VBROADCASTSS (CX), Z31")
	for ni := 0; ni < pl.NT; ni++ {
		g.p("VCVTDQ2PS %d(%s), Z0", ni*tileBytes, src)
		g.p("VMULPS Z%d, Z31, Z1", firstScale+ni)
		g.p("VMULPS Z1, Z0, Z0")
		g.p("VADDPS %d(DX), Z0, Z0", ni*64)
		g.p("VMOVUPS Z0, %d(DX)", ni*64)
	}
}

// weightScales loads the group's weight scales of the NT panels (16 each) into Z(first)...
func (g *gen) weightScales(pl sched.Plan, first int) {
	g.p("MOVQ %s, R10", g.k("wsG"))
	for ni := 0; ni < pl.NT; ni++ {
		g.p("MOVQ R10, R11")
		g.p("ADDQ %s, R11", g.k(fmt.Sprintf("wsOff%d", ni)))
		g.p("VMOVUPS (R11), Z%d", first+ni)
	}
}

// stepOps writes one K step of the plan: its tile loads (activation tiles with TILELOADDT1 when streamA) and dot
// products.
func (g *gen) stepOps(pl sched.Plan, dot string, streamA bool) {
	for _, op := range pl.Step {
		switch op.Kind {
		case sched.LoadA:
			if !streamA {
				g.loadTile(op.Tile, op.Index, T.RSI, T.R10, T.R8, "aOff")
			} else if op.Index == 0 {
				g.emit(T.TileLoadDT1(op.Tile, T.RSI, T.R8))
			} else {
				g.p("MOVQ SI, R10")
				g.p("ADDQ %s, R10", g.k(fmt.Sprintf("aOff%d", op.Index)))
				g.emit(T.TileLoadDT1(op.Tile, T.R10, T.R8))
			}
		case sched.LoadB:
			g.loadTile(op.Tile, op.Index, T.RDI, T.R11, T.R9, "bOff")
		case sched.Dot:
			g.emit(T.Dot(dot, op.Tile, op.A, op.B))
		}
	}
}

// peakKernel writes a tight loop of 2x2 tile dot products on operands loaded once: the tile unit's peak rate,
// the yardstick the GEMM kernels are measured against.
func (g *gen) peakKernel(name string, int8 bool) {
	dot := "tdpbssd"
	if !int8 {
		dot = "tdpbf16ps"
	}
	fmt.Fprintf(&g.s, "\n// func %s(p *tileArgs)\nTEXT ·%s(SB), NOSPLIT, $0-8\n", name, name)
	g.p("MOVQ p+0(FP), AX")
	g.p("MOVQ %s, R10", g.k("cfg"))
	g.emit(T.LdTileCfg(T.R10))
	g.p("MOVQ %s, SI", g.k("a"))
	g.p("MOVQ %s, DI", g.k("b"))
	g.p("MOVQ $64, R9")
	for t := 0; t < 4; t++ {
		g.emit(T.TileZero(t))
	}
	g.emit(T.TileLoadD(4, T.RSI, T.R9))
	g.emit(T.TileLoadD(5, T.RSI, T.R9))
	g.emit(T.TileLoadD(6, T.RDI, T.R9))
	g.emit(T.TileLoadD(7, T.RDI, T.R9))
	g.p("MOVQ %s, R12", g.k("steps"))
	g.label("loop")
	g.emit(T.Dot(dot, 0, 4, 6))
	g.emit(T.Dot(dot, 1, 4, 7))
	g.emit(T.Dot(dot, 2, 5, 6))
	g.emit(T.Dot(dot, 3, 5, 7))
	g.p("DECQ R12")
	g.p("JNZ loop")
	g.p("MOVQ %s, BX", g.k("scratch"))
	g.emit(T.TileStoreD(0, T.RBX, T.R9))
	g.emit(T.TileRelease(), nil)
	g.p("RET")
}

// rowAddr is the address of activation row i (0..3) relative to SI, with R8 = lda and R9 = 3*lda.
func rowAddr(disp, i int) string {
	d := ""
	if disp != 0 {
		d = fmt.Sprint(disp)
	}
	switch i {
	case 0:
		return d + "(SI)"
	case 1:
		return d + "(SI)(R8*1)"
	case 2:
		return d + "(SI)(R8*2)"
	}
	return d + "(SI)(R9*1)"
}

// vecPrologue starts an AVX-512 small-batch kernel: SI the activation rows (R8 apart, R9 = 3 x R8), DI the
// weights and R11 the distance between the two weight panels.
func (g *gen) vecPrologue(name string) {
	fmt.Fprintf(&g.s, "\n// func %s(p *vecArgs)\nTEXT ·%s(SB), NOSPLIT, $0-8\n", name, name)
	g.p("MOVQ p+0(FP), AX")
	g.p("MOVQ %s, SI", g.v("x"))
	g.p("MOVQ %s, DI", g.v("b"))
	g.p("MOVQ %s, R8", g.v("lda"))
	g.p("LEAQ (R8)(R8*2), R9")
	g.p("MOVQ %s, R11", g.v("bPanel"))
}

// vnniKernel writes the AVX-512 VNNI kernel for rows activation rows (1..4) and two 16-wide weight panels over
// the int8 tile layout: activations are offset to unsigned (x+128) and the weight sums stored with the layout
// take the offset back out.
func (g *gen) vnniKernel(rows int) {
	g.vecPrologue(fmt.Sprintf("vnniInt8R%d", rows))
	g.p("MOVQ %s, R13", g.v("wsPanel"))
	g.p("MOVQ %s, BX", g.v("ws"))
	g.p("MOVQ %s, CX", g.v("wsum"))
	g.p("MOVQ %s, DX", g.v("xs"))
	for i := 0; i < 2*rows; i++ {
		g.p("VPXORD Z%d, Z%d, Z%d", 8+i, 8+i, 8+i)
	}
	g.label("group")
	for i := 0; i < 2*rows; i++ {
		g.p("VPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	g.p("MOVQ %s, R12", g.v("quads"))
	g.label("quad")
	g.p("VMOVDQU32 (DI), Z16")
	g.p("VMOVDQU32 (DI)(R11*1), Z17")
	for i := 0; i < rows; i++ {
		g.p("VPBROADCASTD %s, Z18", rowAddr(0, i))
		g.p("VPDPBUSD Z16, Z18, Z%d", 2*i)
		g.p("VPDPBUSD Z17, Z18, Z%d", 2*i+1)
	}
	g.p("ADDQ $4, SI")
	g.p("ADDQ $64, DI")
	g.p("DECQ R12")
	g.p("JNZ quad")
	g.p("VMOVDQU32 (CX), Z19")
	g.p("VPSLLD $7, Z19, Z19")
	g.p("VMOVDQU32 (CX)(R13*1), Z20")
	g.p("VPSLLD $7, Z20, Z20")
	g.p("VMOVUPS (BX), Z21")
	g.p("VMOVUPS (BX)(R13*1), Z22")
	for i := 0; i < rows; i++ {
		g.p("VBROADCASTSS %d(DX), Z23", 4*i)
		for j := 0; j < 2; j++ {
			g.p("VPSUBD Z%d, Z%d, Z24", 19+j, 2*i+j)
			g.p("VCVTDQ2PS Z24, Z24")
			g.p("VMULPS Z%d, Z23, Z25", 21+j)
			g.p("VMULPS Z25, Z24, Z24")
			g.p("VADDPS Z24, Z%d, Z%d", 8+2*i+j, 8+2*i+j)
		}
	}
	g.p("ADDQ $64, BX")
	g.p("ADDQ $64, CX")
	g.p("ADDQ %s, DX", g.v("xsGroup"))
	g.p("DECQ %s", g.v("groups"))
	g.p("JNZ group")
	g.p("MOVQ %s, R10", g.v("c"))
	g.p("MOVQ %s, R12", g.v("ldc"))
	for i := 0; i < rows; i++ {
		g.p("VMOVUPS Z%d, (R10)", 8+2*i)
		g.p("VMOVUPS Z%d, 64(R10)", 9+2*i)
		if i < rows-1 {
			g.p("ADDQ R12, R10")
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
}

// bf16Kernel writes the AVX-512 kernel for rows float32 activation rows over the BF16 pair layout: each 64-byte
// chunk holds 16 outputs x 2 K values, widened to float32 by shifting (even K) and masking (odd K).
func (g *gen) bf16Kernel(rows int) {
	g.vecPrologue(fmt.Sprintf("avxBF16R%d", rows))
	g.p("MOVL $0xffff0000, R10")
	g.p("VPBROADCASTD R10, Z30")
	for i := 0; i < 2*rows; i++ {
		g.p("VPXORD Z%d, Z%d, Z%d", i, i, i)
	}
	g.p("MOVQ %s, R12", g.v("quads"))
	g.label("pair")
	g.p("VMOVDQU32 (DI), Z16")
	g.p("VMOVDQU32 (DI)(R11*1), Z17")
	g.p("VPSLLD $16, Z16, Z18")
	g.p("VPANDD Z30, Z16, Z16")
	g.p("VPSLLD $16, Z17, Z19")
	g.p("VPANDD Z30, Z17, Z17")
	for i := 0; i < rows; i++ {
		g.p("VBROADCASTSS %s, Z20", rowAddr(0, i))
		g.p("VBROADCASTSS %s, Z21", rowAddr(4, i))
		g.p("VFMADD231PS Z18, Z20, Z%d", 2*i)
		g.p("VFMADD231PS Z19, Z20, Z%d", 2*i+1)
		g.p("VFMADD231PS Z16, Z21, Z%d", 2*i)
		g.p("VFMADD231PS Z17, Z21, Z%d", 2*i+1)
	}
	g.p("ADDQ $8, SI")
	g.p("ADDQ $64, DI")
	g.p("DECQ R12")
	g.p("JNZ pair")
	g.p("MOVQ %s, R10", g.v("c"))
	g.p("MOVQ %s, R12", g.v("ldc"))
	for i := 0; i < rows; i++ {
		g.p("VMOVUPS Z%d, (R10)", 2*i)
		g.p("VMOVUPS Z%d, 64(R10)", 2*i+1)
		if i < rows-1 {
			g.p("ADDQ R12, R10")
		}
	}
	g.p("VZEROUPPER")
	g.p("RET")
}

func structDef(name, doc string, fields []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "// %s\ntype %s struct {\n", doc, name)
	for _, f := range fields {
		fmt.Fprintf(&b, "\t%s uintptr\n", f)
	}
	b.WriteString("}\n\n")
	return b.String()
}

func write(path string, data []byte) {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		log.Fatal(err)
	}
}

func gofmt(src string) []byte {
	out, err := format.Source([]byte(src))
	if err != nil {
		log.Fatalf("gen: formatting generated Go: %v\n%s", err, src)
	}
	return out
}

func main() {
	dir := "."
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	const header = "// Code generated by amx/internal/gen; DO NOT EDIT.\n\n"
	g := &gen{macros: map[string]T.Inst{}}
	g.s.WriteString(header + "//go:build amd64\n\n#include \"textflag.h\"\n#include \"amx_encodings.h\"\n")

	var decls, table strings.Builder
	for _, a := range sched.Arrangements {
		pl, err := sched.For(a[0], a[1])
		if err != nil {
			log.Fatal(err)
		}
		for _, k := range []struct {
			name        string
			int8, plain bool
		}{{"tileInt8%dx%d", true, false}, {"tileInt8Plain%dx%d", true, true}, {"tileBF16%dx%d", false, false}} {
			name := fmt.Sprintf(k.name, a[0], a[1])
			if k.int8 && !k.plain {
				g.pipedKernel(name, pl)
			} else {
				g.tileKernel(name, k.int8, pl)
			}
			fmt.Fprintf(&decls, "//go:noescape\nfunc %s(p *tileArgs)\n\n", name)
			fmt.Fprintf(&table, "\t{%d, %d, %v, %v}: %s,\n", a[0], a[1], k.int8, k.plain, name)
		}
	}
	g.peakKernel("tilePeakInt8", true)
	g.peakKernel("tilePeakBF16", false)
	decls.WriteString("//go:noescape\nfunc tilePeakInt8(p *tileArgs)\n\n//go:noescape\nfunc tilePeakBF16(p *tileArgs)\n\n")
	var vnni, bf strings.Builder
	for r := 1; r <= 4; r++ {
		g.vnniKernel(r)
		g.bf16Kernel(r)
		fmt.Fprintf(&decls, "//go:noescape\nfunc vnniInt8R%d(p *vecArgs)\n\n//go:noescape\nfunc avxBF16R%d(p *vecArgs)\n\n", r, r)
		fmt.Fprintf(&vnni, "vnniInt8R%d, ", r)
		fmt.Fprintf(&bf, "avxBF16R%d, ", r)
	}
	write(filepath.Join(dir, "kernels_amd64.s"), g.s.Bytes())

	names := make([]string, 0, len(g.macros))
	for n := range g.macros {
		names = append(names, n)
	}
	sort.Strings(names)
	var h strings.Builder
	h.WriteString(header + "// AMX instructions as bytes, for the Go assembler, which has no AMX mnemonics. The comment above\n" +
		"// each macro is the AT&T form; encoding_test.go assembles those with GNU as and compares the bytes.\n\n")
	for _, n := range names {
		h.WriteString(g.macros[n].Macro() + "\n\n")
	}
	write(filepath.Join(dir, "amx_encodings.h"), []byte(h.String()))

	goSrc := header + "//go:build amd64\n\npackage amx\n\n" + decls.String() +
		"// asmTile maps (tiles down, tiles across, int8, plain) to the assembly tile kernel.\n" +
		"var asmTile = map[tileKey]func(*tileArgs){\n" + table.String() + "}\n\n" +
		"// asmVNNI and asmBF16 are the AVX-512 kernels for 1 to 4 activation rows.\n" +
		"var asmVNNI = [4]func(*vecArgs){" + vnni.String() + "}\n\n" +
		"var asmBF16 = [4]func(*vecArgs){" + bf.String() + "}\n"
	write(filepath.Join(dir, "zkernels_amd64.go"), gofmt(goSrc))

	argSrc := header + "package amx\n\n" +
		structDef("tileArgs", "tileArgs is a tile kernel's argument block: addresses and byte strides of a rectangle of output blocks' operands, which it only reads, then the cursors of its loops (nLeft onwards), which it writes.", tileFields) +
		structDef("vecArgs", "vecArgs is what an AVX-512 kernel reads: up to four activation rows against two 16-wide weight panels.", vecFields)
	write(filepath.Join(dir, "zargs.go"), gofmt(argSrc))
}
