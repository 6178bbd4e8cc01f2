package amx

import (
	"fmt"
	"runtime"
	"unsafe"

	"tilelab/amx/internal/sched"
)

func addr[T any](s []T, i int) uintptr { return uintptr(unsafe.Pointer(&s[i])) }

// asmTileCall fills the worker's argument block from the job and runs the assembly tile kernel.
func asmTileCall(w *workspace, pal *[64]byte, p sched.Plan, j *tileJob, int8, plain bool) error {
	k := asmTile[tileKey{p.MT, p.NT, int8, int8 && plain}]
	if k == nil {
		return fmt.Errorf("no assembly tile kernel for %dx%d", p.MT, p.NT)
	}
	a := &w.targs
	*a = tileArgs{
		cfg: uintptr(unsafe.Pointer(pal)), a: addr(j.a, j.aOff), lda: uintptr(j.lda), b: addr(j.b, j.bOff),
		c: addr(j.c, j.cOff), ldc: uintptr(4 * j.ldc), groups: uintptr(j.groups), steps: uintptr(j.steps),
		astep: uintptr(j.aStep), bstep: uintptr(16 * j.kstep), rows: uintptr(j.rows),
		scratch: uintptr(unsafe.Pointer(&w.scratch[0])),
		mBlocks: uintptr(j.mBlocks), nBlocks: uintptr(j.nBlocks), aBlock: uintptr(j.aBlock), bBlock: uintptr(j.bBlock),
		wsBlock: uintptr(4 * j.wsBlock), xsBlock: uintptr(4 * j.xsBlock), cRowBlock: uintptr(4 * j.cRowBlock),
		cColBlock: uintptr(4 * j.cColBlk),
		aGroup:    uintptr(j.steps * j.aStep), bGroup: uintptr(j.steps * 16 * j.kstep),
	}
	offs := [4]*uintptr{&a.aOff0, &a.aOff1, &a.aOff2, &a.aOff3}
	for i := 0; i < p.MT; i++ {
		*offs[i] = uintptr(i * j.aTile)
	}
	boffs := [4]*uintptr{&a.bOff0, &a.bOff1, &a.bOff2, &a.bOff3}
	wsoffs := [4]*uintptr{&a.wsOff0, &a.wsOff1, &a.wsOff2, &a.wsOff3}
	for i := 0; i < p.NT; i++ {
		*boffs[i] = uintptr(i * j.bPanel)
		*wsoffs[i] = uintptr(4 * i * j.wsPanel)
	}
	coffs := [4]*uintptr{&a.cOff0, &a.cOff1, &a.cOff2, &a.cOff3}
	for mi := 0; mi < p.MT; mi++ {
		for ni := 0; ni < p.NT; ni++ {
			*coffs[p.AccTile(mi, ni)] = uintptr(4 * (mi*j.rows*j.ldc + ni*16))
		}
	}
	if int8 {
		a.ws, a.xs, a.xsGroup = addr(j.ws, j.wsOff), addr(j.xs, j.xsOff), uintptr(4*j.xsGroup)
	}
	k(a)
	runtime.KeepAlive(j.a)
	runtime.KeepAlive(j.b)
	runtime.KeepAlive(j.c)
	runtime.KeepAlive(j.ws)
	runtime.KeepAlive(j.xs)
	runtime.KeepAlive(pal)
	return nil
}

// asmVecCall runs the AVX-512 kernel for the job's rows.
func asmVecCall(w *workspace, j *vecJob, int8 bool) {
	a := &w.vargs
	*a = vecArgs{
		x: addr(j.x, j.xOff), lda: uintptr(j.lda), b: addr(j.b, j.bOff), bPanel: uintptr(j.bPanel),
		c: addr(j.c, j.cOff), ldc: uintptr(4 * j.ldc), groups: uintptr(j.groups), quads: uintptr(j.quads),
	}
	if int8 {
		a.ws, a.wsum, a.wsPanel = addr(j.ws, j.sOff), addr(j.wsum, j.sOff), uintptr(4*j.sPanel)
		a.xs, a.xsGroup = addr(j.xs, j.xsOff), uintptr(4*j.xsGroup)
		asmVNNI[j.rows-1](a)
	} else {
		asmBF16[j.rows-1](a)
	}
	runtime.KeepAlive(j.x)
	runtime.KeepAlive(j.b)
	runtime.KeepAlive(j.c)
	runtime.KeepAlive(j.ws)
	runtime.KeepAlive(j.wsum)
	runtime.KeepAlive(j.xs)
}

// peakCall runs iters iterations of four tile dot products on operands that never leave the tiles.
func peakCall(w *workspace, int8 bool, iters int) {
	var p sched.Plan
	for t := range p.Roles {
		p.Roles[t] = sched.Acc // every tile 16 rows x 64 bytes
	}
	pal := palette(p, 16, 64)
	a := &w.targs
	*a = tileArgs{cfg: uintptr(unsafe.Pointer(&pal)), a: uintptr(unsafe.Pointer(&w.scratch[0])),
		b: uintptr(unsafe.Pointer(&w.scratch[1024])), steps: uintptr(iters), scratch: uintptr(unsafe.Pointer(&w.out(256)[0]))}
	if int8 {
		tilePeakInt8(a)
	} else {
		tilePeakBF16(a)
	}
	runtime.KeepAlive(&pal)
}
