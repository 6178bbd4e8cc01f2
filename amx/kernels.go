package amx

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"tilelab/amx/internal/sched"
	"tilelab/engine/pool"
	"tilelab/engine/tensor"
)

// workspace is one worker's private state: its argument blocks, the int32 tile spill, the output block and an
// emulated tile unit.
type workspace struct {
	targs   tileArgs
	vargs   vecArgs
	scratch [8 * 1024]byte // the int8 sums leaving the tiles: two halves of 4 KiB for the pipelined kernels
	cbuf    []float32      // the output rectangle of the current task
	row     []byte         // prepare's one row in tile order
	busy    time.Duration  // with engine.timing: time in GEMM tasks (device figures: how evenly the work spreads)
	emu     tileUnit
}

// out returns the worker's output buffer with room for n floats.
func (w *workspace) out(n int) []float32 {
	if cap(w.cbuf) < n {
		w.cbuf = make([]float32, n)
	}
	return w.cbuf[:n]
}

func floatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// engine runs GEMMs over packed weights on a pool of workers. It is not safe for concurrent use: Compute is
// called by one scheduler at a time.
type engine struct {
	pool    *pool.Pool
	ws      []workspace
	emulate bool                  // tile kernels run in the emulator
	vecAsm  bool                  // the AVX-512 small-batch kernels run in assembly
	cfg     TileConfig            // int8 kernels
	cfg16   TileConfig            // bf16 kernels
	plans   map[[2]int]sched.Plan // by arrangement, made once
	spread  int                   // rectangles shrink until there are this many tasks per worker (where the work allows)
	// taskBytes bounds a task's activation and weight rows together, so that they stay in the core's L2; 0
	// chooses by the number of activation rows (see gemm).
	taskBytes int
	// timing, when set, makes gemm add the time of its two parallel sections to prepTime and tileTime (device
	// figures: where a GEMM's time goes).
	timing             bool
	prepTime, tileTime time.Duration
	// busyMost and busyMean add up, per call, the longest and the mean time a worker spent in the tile section's
	// tasks: against tileTime they show how much of the section is waiting for the last task.
	busyMost, busyMean time.Duration
	// overlapBelow: a call with fewer activation rows than this runs their quantization and the tiles in one
	// parallel section (see gemm); with more, the quantization is a section of its own. With the earlier int8
	// kernel (plainInt8) and the ring of buffers, the separate section had been faster at 512x2048x4096 in 13 of
	// 15 device runs (by 3 to 10%). With the pipelined kernel, overlapped was faster at 512x2048x4096 in all
	// four runs that timed both (int8 1x2 g512, three hosts: 0.684 against 0.705 ms, 0.679 against 0.808, 0.707
	// against 0.728, 0.638 against 0.678) and mixed at 4096³ (9.72 against 9.69, 7.55 against 7.98, 9.78
	// against 8.86): hence 1024 rows. An order that put each group of rows' quantization just before its tiles
	// was slower in three runs and was removed.
	overlapBelow int
	// plainInt8 runs the earlier int8 kernels (see tileKey), so the device figures can compare.
	plainInt8 bool
	// splitTail halves the last task of each worker's share (see splitTail).
	splitTail bool
	// rowsFirst orders tile tasks row block by row block (every band of weights for the first rows, then the next
	// rows), as before, rather than column band by column band (device figures: to compare).
	rowsFirst bool
	// rect, when set, is every tile task's rectangle in blocks (down, across) instead of the one the task budget
	// gives (device figures: task shapes).
	rect [2]int
	// repeat runs every tile task that many times (device figures: after the first, its operands come from the
	// core's caches, which shows what the kernel does without the memory hierarchy).
	repeat int

	// The activations of the current call, quantized or converted: one of a ring of buffers, taking turns call
	// by call. The tile tasks of a wide GEMM leave every line of the buffer shared by many cores' caches, and
	// writing it again at once costs an invalidation of each copy: on the accelerator, quantizing 512x4096
	// activations took 0.24 ms after 16 workers had read the buffer, 0.06 ms after none had. By a buffer's next
	// turn other tile work has moved through the caches. At 512x2048x4096 (int8 1x2 and 2x1 g512, quantization
	// in a section of its own) quantizing took 0.053–0.099 ms with the ring against 0.204–0.262 ms with one
	// buffer, and the whole GEMM 0.61–0.72 ms against 0.80–0.92 (bf16 2x1 c256: 1.09–1.19 against 1.52–1.68;
	// four runs on one host, and earlier runs on five other hosts agree); one more host showed no difference
	// (0.97 against 0.95 ms). Non-temporal stores were tried on top and came out even or slower in most runs.
	// The ring costs up to actRing activation buffers of the largest call. buffers (1 to actRing) is a field
	// so the device figures can compare.
	act8    *actInt8
	act16   *actBF16
	acts8   [actRing]actInt8
	acts16  [actRing]actBF16
	turn    int
	buffers int

	// The parallel sections of gemm and prepare, and their work lists, kept so a call allocates no closure and
	// reuses the lists' storage.
	tasks    []task
	tail     []task
	spans    []span
	spanDone []atomic.Uint32
	gjob     gemmJob
	pjob     prepJob

	errMu sync.Mutex
	err   error
}

// actRing is how many activation buffers the engine takes in turn (see engine.act8).
const actRing = 4

func newEngine(p *pool.Pool, cfg, cfg16 TileConfig, emulate, vecAsm bool) *engine {
	g := &engine{pool: p, ws: make([]workspace, p.Threads()), emulate: emulate, vecAsm: vecAsm, cfg: cfg, cfg16: cfg16,
		plans: map[[2]int]sched.Plan{}, spread: 2, buffers: actRing, overlapBelow: 1024, splitTail: true}
	g.act8, g.act16 = &g.acts8[0], &g.acts16[0]
	return g
}

// nextActs picks the activation buffers of the next call (see engine.act8).
func (g *engine) nextActs() {
	g.turn = (g.turn + 1) % max(1, min(g.buffers, actRing))
	g.act8, g.act16 = &g.acts8[g.turn], &g.acts16[g.turn]
}

func (g *engine) plan(c TileConfig) (sched.Plan, error) {
	key := [2]int{c.MT, c.NT}
	if p, ok := g.plans[key]; ok {
		return p, nil
	}
	p, err := sched.For(c.MT, c.NT)
	if err != nil {
		return p, err
	}
	g.plans[key] = p
	return p, nil
}

func (g *engine) fail(err error) {
	g.errMu.Lock()
	if g.err == nil {
		g.err = err
	}
	g.errMu.Unlock()
}

func (g *engine) takeErr() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	err := g.err
	g.err = nil
	return err
}

// tileJob is one output block's operands for a tile kernel, as byte offsets into Go slices; the assembly gets
// the same values as addresses, the emulator indexes the slices.
type tileJob struct {
	a            []byte
	aOff, lda    int // bytes
	aTile        int // bytes between the A tiles of the arrangement
	b            []byte
	bOff, bPanel int // bytes
	ws           []float32
	wsOff        int // elements
	wsPanel      int // elements between panels
	xs           []float32
	xsOff        int // elements
	xsGroup      int // elements between groups
	c            []float32
	cOff, ldc    int // elements
	groups       int
	steps        int
	kstep        int // bytes of K per step (each A tile row; B advances 16 x kstep)
	aStep        int // bytes the A pointer advances per step: kstep for row-major A, rows x kstep for tile order
	rows         int

	// The rectangle of output blocks one call computes, n blocks outer, m blocks inner, and the distances
	// between blocks: aBlock, bBlock in bytes, the others in elements.
	mBlocks, nBlocks   int
	aBlock, bBlock     int
	wsBlock, xsBlock   int
	cRowBlock, cColBlk int
}

// block returns the job of block (mb, nb) of the rectangle as a one-block job.
func (j *tileJob) block(mb, nb int) tileJob {
	b := *j
	b.mBlocks, b.nBlocks = 1, 1
	b.aOff += mb * j.aBlock
	b.xsOff += mb * j.xsBlock
	b.bOff += nb * j.bBlock
	b.wsOff += nb * j.wsBlock
	b.cOff += mb*j.cRowBlock + nb*j.cColBlk
	return b
}

// check verifies that every byte the kernel will touch lies inside its operand, so an addressing mistake is an
// error, never a stray write. Strides between blocks are positive, so the first and last blocks bound the rest.
func (j *tileJob) check(p sched.Plan, int8 bool) error {
	if j.mBlocks < 1 || j.nBlocks < 1 || j.groups < 1 || j.steps < 1 || j.rows < 1 {
		return fmt.Errorf("amx kernel loop counts must be positive: %d x %d blocks, %d groups of %d steps, %d rows",
			j.mBlocks, j.nBlocks, j.groups, j.steps, j.rows)
	}
	if j.aBlock < 0 || j.bBlock < 0 || j.wsBlock < 0 || j.xsBlock < 0 || j.cRowBlock < 0 || j.cColBlk < 0 {
		return fmt.Errorf("amx kernel rectangle %dx%d blocks with negative strides", j.mBlocks, j.nBlocks)
	}
	first, last := j.block(0, 0), j.block(j.mBlocks-1, j.nBlocks-1)
	if err := first.checkOne(p, int8); err != nil {
		return err
	}
	return last.checkOne(p, int8)
}

func (j *tileJob) checkOne(p sched.Plan, int8 bool) error {
	lastA := j.aOff + (p.MT-1)*j.aTile + (j.groups*j.steps-1)*j.aStep + (j.rows-1)*j.lda + j.kstep
	if j.aOff < 0 || lastA > len(j.a) {
		return fmt.Errorf("amx kernel would read activations to byte %d of %d", lastA, len(j.a))
	}
	lastB := j.bOff + (p.NT-1)*j.bPanel + j.groups*j.steps*j.kstep*16
	if lastB > len(j.b) {
		return fmt.Errorf("amx kernel would read weights to byte %d of %d", lastB, len(j.b))
	}
	lastC := j.cOff + (p.MT*j.rows-1)*j.ldc + p.NT*16
	if lastC > len(j.c) {
		return fmt.Errorf("amx kernel would write output element %d of %d", lastC, len(j.c))
	}
	if int8 {
		if last := j.wsOff + (p.NT-1)*j.wsPanel + j.groups*16; last > len(j.ws) {
			return fmt.Errorf("amx kernel would read weight scales to %d of %d", last, len(j.ws))
		}
		if last := j.xsOff + (j.groups-1)*j.xsGroup + p.MT*j.rows; last > len(j.xs) {
			return fmt.Errorf("amx kernel would read activation scales to %d of %d", last, len(j.xs))
		}
	}
	return nil
}

// emuTile runs the kernel's schedule on the emulated tile unit: the same loops (column blocks, groups, row
// blocks), loads, dot products, spills and scaling as the generated assembly. The default int8 kernel scales a
// block's sums during the next block's K steps rather than before them, which changes when, not how: every
// output element gets the same operations in the same order, so the bits are the same.
func emuTile(u *tileUnit, pal *[64]byte, p sched.Plan, j *tileJob, int8 bool, scratch []byte) error {
	if err := u.ldtilecfg(pal); err != nil {
		return err
	}
	defer u.release()
	acc := p.MT * p.NT
	c := floatBytes(j.c)
	for nb := 0; nb < j.nBlocks; nb++ {
		for g := 0; g < j.groups; g++ {
			for mb := 0; mb < j.mBlocks; mb++ {
				aPos := j.aOff + mb*j.aBlock + g*j.steps*j.aStep
				bPos := j.bOff + nb*j.bBlock + g*j.steps*16*j.kstep
				cOff := j.cOff + mb*j.cRowBlock + nb*j.cColBlk
				wsPos := j.wsOff + nb*j.wsBlock + g*16
				xsPos := j.xsOff + mb*j.xsBlock + g*j.xsGroup
				for mi := 0; mi < p.MT; mi++ {
					for ni := 0; ni < p.NT; ni++ {
						var err error
						if int8 {
							err = u.tilezero(p.AccTile(mi, ni))
						} else {
							err = u.tileloadd(p.AccTile(mi, ni), c, 4*(cOff+mi*j.rows*j.ldc+ni*16), 4*j.ldc)
						}
						if err != nil {
							return err
						}
					}
				}
				for s := 0; s < j.steps; s++ {
					for _, op := range p.Step {
						var err error
						switch op.Kind {
						case sched.LoadA:
							err = u.tileloadd(op.Tile, j.a, aPos+op.Index*j.aTile, j.lda)
						case sched.LoadB:
							err = u.tileloadd(op.Tile, j.b, bPos+op.Index*j.bPanel, 64)
						case sched.Dot:
							if int8 {
								err = u.tdpbssd(op.Tile, op.A, op.B)
							} else {
								err = u.tdpbf16ps(op.Tile, op.A, op.B)
							}
						}
						if err != nil {
							return err
						}
					}
					aPos += j.aStep
					bPos += j.kstep * 16
				}
				if !int8 {
					for mi := 0; mi < p.MT; mi++ {
						for ni := 0; ni < p.NT; ni++ {
							off := 4 * (cOff + mi*j.rows*j.ldc + ni*16)
							if err := u.tilestored(p.AccTile(mi, ni), c, off, 4*j.ldc); err != nil {
								return err
							}
						}
					}
					continue
				}
				for t := 0; t < acc; t++ {
					if err := u.tilestored(t, scratch, t*1024, 64); err != nil {
						return err
					}
				}
				for mi := 0; mi < p.MT; mi++ {
					for r := 0; r < j.rows; r++ {
						xs := j.xs[xsPos+mi*j.rows+r]
						row := cOff + (mi*j.rows+r)*j.ldc
						for ni := 0; ni < p.NT; ni++ {
							ws := j.ws[wsPos+ni*j.wsPanel:]
							sp := scratch[(mi*p.NT+ni)*1024+r*64:]
							for l := 0; l < 16; l++ {
								i := int32(uint32(sp[4*l]) | uint32(sp[4*l+1])<<8 | uint32(sp[4*l+2])<<16 | uint32(sp[4*l+3])<<24)
								s := ws[l] * xs
								j.c[row+ni*16+l] += float32(float32(i) * s)
							}
						}
					}
				}
			}
		}
	}
	return nil
}

// runTile runs one tile kernel call, on the hardware or in the emulator.
func (g *engine) runTile(w *workspace, pal *[64]byte, p sched.Plan, j *tileJob, int8 bool) error {
	if err := j.check(p, int8); err != nil {
		return err
	}
	if g.emulate {
		return emuTile(&w.emu, pal, p, j, int8, w.scratch[:])
	}
	return asmTileCall(w, pal, p, j, int8, g.plainInt8)
}

// vecJob is up to four activation rows against two weight panels for the AVX-512 kernels.
type vecJob struct {
	rows         int
	x            []byte // int8 path: uint8 activations; bf16 path: float32 rows as bytes
	xOff, lda    int    // bytes
	b            []byte
	bOff, bPanel int // bytes
	ws           []float32
	wsum         []int32
	sOff         int // elements, for ws and wsum
	sPanel       int // elements between panels
	xs           []float32
	xsOff        int // elements
	xsGroup      int // elements
	c            []float32
	cOff, ldc    int // elements
	groups       int
	quads        int // int8: K quads per group; bf16: K pairs
}

// vecInt8Go is the small-batch int8 kernel in plain Go, computing exactly what the VNNI assembly computes.
func vecInt8Go(j *vecJob) {
	for i := 0; i < j.rows; i++ {
		for h := 0; h < 2; h++ {
			for l := 0; l < 16; l++ {
				var out float32
				for g := 0; g < j.groups; g++ {
					var acc int32
					xq := j.x[j.xOff+i*j.lda+g*j.quads*4:]
					wq := j.b[j.bOff+h*j.bPanel+g*j.quads*64:]
					for q := 0; q < j.quads; q++ {
						for t := 0; t < 4; t++ {
							acc += int32(xq[4*q+t]) * int32(int8(wq[64*q+4*l+t]))
						}
					}
					s := j.sOff + h*j.sPanel + g*16 + l
					d := acc - 128*j.wsum[s]
					sc := j.ws[s] * j.xs[j.xsOff+g*j.xsGroup+i]
					out += float32(float32(d) * sc)
				}
				j.c[j.cOff+i*j.ldc+h*16+l] = out
			}
		}
	}
}

// vecBF16Go is the small-batch bf16 kernel in plain Go.
func vecBF16Go(j *vecJob, x []float32) {
	for i := 0; i < j.rows; i++ {
		for h := 0; h < 2; h++ {
			for l := 0; l < 16; l++ {
				var acc float32
				xr := x[(j.xOff+i*j.lda)/4:]
				for q := 0; q < j.quads; q++ {
					o := j.bOff + h*j.bPanel + q*64 + 4*l
					w0 := tensor.BF16ToF32(uint16(j.b[o]) | uint16(j.b[o+1])<<8)
					w1 := tensor.BF16ToF32(uint16(j.b[o+2]) | uint16(j.b[o+3])<<8)
					acc += xr[2*q]*w0 + xr[2*q+1]*w1
				}
				j.c[j.cOff+i*j.ldc+h*16+l] = acc
			}
		}
	}
}

func (j *vecJob) check(int8 bool) error {
	perQuad := 4
	if !int8 {
		perQuad = 8
	}
	if last := j.xOff + (j.rows-1)*j.lda + j.groups*j.quads*perQuad; last > len(j.x) {
		return fmt.Errorf("avx-512 kernel would read activations to byte %d of %d", last, len(j.x))
	}
	if last := j.bOff + j.bPanel + j.groups*j.quads*64; last > len(j.b) {
		return fmt.Errorf("avx-512 kernel would read weights to byte %d of %d", last, len(j.b))
	}
	if last := j.cOff + (j.rows-1)*j.ldc + 32; last > len(j.c) {
		return fmt.Errorf("avx-512 kernel would write output element %d of %d", last, len(j.c))
	}
	if int8 {
		if last := j.sOff + j.sPanel + j.groups*16; last > len(j.ws) || last > len(j.wsum) {
			return fmt.Errorf("avx-512 kernel would read scales to %d of %d", last, len(j.ws))
		}
		if last := j.xsOff + (j.groups-1)*j.xsGroup + j.rows; last > len(j.xs) {
			return fmt.Errorf("avx-512 kernel would read activation scales to %d of %d", last, len(j.xs))
		}
	}
	return nil
}

func (g *engine) runVec(w *workspace, j *vecJob, int8 bool, xf []float32) error {
	if err := j.check(int8); err != nil {
		return err
	}
	if g.vecAsm {
		asmVecCall(w, j, int8)
		return nil
	}
	if int8 {
		vecInt8Go(j)
	} else {
		vecBF16Go(j, xf)
	}
	return nil
}
