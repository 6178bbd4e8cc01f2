package amx

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"tilelab/amx/internal/sched"
)

// rowSet is one GEMM of a MUL_MAT or MUL_MAT_ID: the activation rows that meet one expert's weights, and where
// each row's outputs go.
type rowSet struct {
	e      int
	x      [][]float32 // activation rows (length K)
	dst    []int       // offset of each row's N outputs in the destination
	tiles  bool        // tile kernels (true) or the AVX-512 path
	actRow int         // first row in the shared activation buffer
	span0  int         // index of the set's first span of prepare's work (spanRows rows each)
}

// task is a piece of work for one worker: rows [m0, m1) of a set against output columns [n0, n1).
type task struct {
	set, m0, m1, n0, n1 int
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// weights is what the AMX buffer type stores in a weight's t.Extra: its packing, int8 or bf16 (what the tile
// kernels read), and where Import kept them, its plain GGUF bytes (what CPU mode's kernel reads below the
// threshold). t.Data holds the packing's values and t.Layout names the packed layout, so the plain bytes are
// reachable only through the plain field, typed as plain ggml blocks.
type weights struct {
	i8    *packedInt8
	b16   *packedBF16
	plain *plainBlocks // nil unless Import kept them (PlainPolicy)
}

// bytes is the size of the packing (the plain bytes are a view of the file, not counted).
func (w weights) bytes() int64 {
	if w.i8 != nil {
		return int64(len(w.i8.Q)) + 4*int64(len(w.i8.WS)) + 4*int64(len(w.i8.WSum))
	}
	return int64(len(w.b16.B))
}

func (w weights) dims() (n, k, np, kp int) {
	if w.i8 != nil {
		return w.i8.N, w.i8.K, w.i8.Np, w.i8.Kp
	}
	return w.b16.N, w.b16.K, w.b16.Np, w.b16.Kp
}

// gemm computes every set into dst (float32, each row N wide at its offset). threshold is the smallest row
// count that goes to the tile kernels. It returns the kernel names used.
func (g *engine) gemm(w weights, sets []rowSet, dst []float32, threshold int) (string, error) {
	cfg := g.cfg
	if w.b16 != nil {
		cfg = g.cfg16
	}
	if w.i8 != nil {
		// The weights were packed with their own group; the tile kernels step at most one group at a time.
		cfg.Group = w.i8.Group
	}
	kstep := cfg.KStep
	if w.i8 != nil && w.i8.Group < kstep {
		kstep = w.i8.Group
	}
	p, err := g.plan(cfg)
	if err != nil {
		return "", err
	}
	pal := palette(p, cfg.Rows, kstep)
	n, _, _, kp := w.dims()
	bm, bn := cfg.BlockRows(), cfg.BlockCols()

	// Lay the sets out in one activation buffer, each padded to its kernel's row block.
	rows, nTile, nVec := 0, 0, 0
	for i := range sets {
		s := &sets[i]
		s.tiles = len(s.x) >= threshold
		s.actRow = rows
		if s.tiles {
			rows += roundUp(len(s.x), bm)
			nTile++
		} else {
			rows += roundUp(len(s.x), 4)
			nVec++
		}
	}
	var t0 time.Time
	if g.timing {
		t0 = time.Now()
	}
	overlap := rows < g.overlapBelow
	if overlap {
		g.planPrepare(w, sets, rows, kp, cfg.Rows, kstep, bm)
	} else {
		g.prepare(w, sets, rows, kp, cfg.Rows, kstep, bm)
		if g.timing {
			t1 := time.Now()
			g.prepTime += t1.Sub(t0)
			t0 = t1
		}
	}

	tasks := g.tasks[:0]
	nbTile := roundUp(n, bn) / bn // blocks past N would only compute padding
	// A task is a rectangle of blocks whose activation and weight rows fit in a budget together, so they stay in
	// the core's L2 while every block of the rectangle reads them over the full K: 1 MiB, or 2 MiB for a set of
	// 1024 activation rows or more (one expert's rows in a MUL_MAT_ID). On the accelerator (Sapphire Rapids,
	// 2 MiB of L2 a core), int8 4096³ with 2 tasks per worker ran faster with 2 MiB tasks in each of five runs
	// (9.9 against 11.4, 9.7 against 10.4, 10.0 against 11.9, 11.5 against 11.8, 10.1 against 11.2 ms; bf16
	// likewise). The rectangle is square in elements (int8 1x2, 1 MiB: 128 rows x 128 columns), and tasks go
	// column band by column band, so the workers running at one time share a few bands of weights and read each
	// from memory about once, spread over the call rather than all at its start. int8 1x2 at 512x2048x4096 with
	// the weights coming from memory (32 matrices in turn; six runs on two hosts): 0.731, 0.805, 0.843, 0.758,
	// 0.980, 0.911 ms against 0.814, 0.982, 1.077, 0.861, 1.109, 1.005 for 64x128 rectangles row block by row
	// block (the earlier rule); with the weights in cache as fast (0.738, 0.714, 0.741, 0.889, 0.787, 0.844
	// against 0.713, 0.741, 0.786, 0.917, 0.783, 0.839); at 4096³ 8.50, 8.69, 8.52 against 8.65, 8.86, 8.62.
	rowBytes := kp
	if w.b16 != nil {
		rowBytes = 2 * kp
	}
	for si, s := range sets {
		if s.tiles {
			budget := g.taskBytes
			if budget == 0 {
				budget = 1 << 20
				if len(s.x) >= 1024 {
					budget = 2 << 20
				}
			}
			side := budget / (2 * rowBytes) // rows and columns of a square task
			mBlocks := roundUp(len(s.x), bm) / bm
			mPer, nPer := min(max(1, side/bm), mBlocks), min(max(1, side/bn), nbTile)
			if g.rect != [2]int{} {
				mPer, nPer = min(g.rect[0], mBlocks), min(g.rect[1], nbTile)
			}
			// Keep at least two tasks per worker where the work allows.
			for mPer*nPer > 1 && ceilDiv(mBlocks, mPer)*ceilDiv(nbTile, nPer)*len(sets) < g.spread*g.pool.Threads() {
				if (mPer*bm >= nPer*bn && mPer > 1) || nPer == 1 { // the longer side in elements, while it can shrink
					mPer /= 2
				} else {
					nPer /= 2
				}
			}
			nM, nN := ceilDiv(mBlocks, mPer), ceilDiv(nbTile, nPer)
			for i := 0; i < nM*nN; i++ {
				mi, ni := i%nM, i/nM // column band by column band
				if g.rowsFirst {
					mi, ni = i/nN, i%nN
				}
				mb, nb := mi*mPer, ni*nPer
				tasks = append(tasks, task{set: si, m0: mb * bm, m1: min(mBlocks, mb+mPer) * bm, n0: nb * bn, n1: min(nbTile, nb+nPer) * bn})
			}
		} else {
			mGroups := roundUp(len(s.x), 4) / 4
			nb32 := roundUp(n, 32) / 32
			per := max(1, min(16, nb32*mGroups*len(sets)/(4*g.pool.Threads())))
			for mg := 0; mg < mGroups; mg++ {
				for nb := 0; nb < nb32; nb += per {
					tasks = append(tasks, task{set: si, m0: mg * 4, m1: mg*4 + 4, n0: nb * 32, n1: min(nb32, nb+per) * 32})
				}
			}
		}
	}
	if g.splitTail {
		tasks, g.tail = splitTail(tasks, g.tail, sets, bn, g.pool.Threads())
	}
	g.tasks = tasks
	g.gjob = gemmJob{g: g, tasks: tasks, sets: sets, pal: pal, p: p, cfg: cfg, kstep: kstep, w: w, dst: dst}
	if overlap {
		// One section for both: the quantization spans come first in claim order, so every span a task waits
		// for has been claimed by a worker that is running it, and the tiles of the first rows start while the
		// last rows are still being quantized (quantizing reads the float activations from memory; the tiles
		// mostly compute).
		g.gjob.prep, g.gjob.done = &g.pjob, g.spanDone[:len(g.spans)]
		for i := range g.gjob.done {
			g.gjob.done[i].Store(0)
		}
	}
	g.pool.RunJob(len(g.gjob.done)+len(tasks), &g.gjob)
	g.gjob = gemmJob{} // hold no op's slices between ops
	g.pjob = prepJob{}
	if g.timing {
		g.tileTime += time.Since(t0)
		var most, all time.Duration
		for i := range g.ws {
			most, all = max(most, g.ws[i].busy), all+g.ws[i].busy
			g.ws[i].busy = 0
		}
		g.busyMost += most
		g.busyMean += all / time.Duration(len(g.ws))
	}
	if err := g.takeErr(); err != nil {
		return "", err
	}
	var names []string
	if nTile > 0 {
		names = append(names, g.tileName(w, cfg))
	}
	if nVec > 0 {
		names = append(names, g.vecName(w, threshold))
	}
	return strings.Join(names, " + "), nil
}

// splitTail splits each of the last tile tasks in claim order (one per worker) in two by columns, where it has
// two column blocks or more and there are four to eight tasks a worker: workers claim tasks in order, so the
// halves go to the first workers to finish, and the section ends closer to the mean worker's time. With so few
// tasks a worker the last ones decide when a call ends: int8 512x2048x4096 (64 tasks) took 0.721 and 0.742 ms
// with the split against 0.783 and 0.801 without (quantization overlapped; separate: 0.761/0.891, 0.733/0.863;
// host GPU-c39a0e01), while with 16 tasks a worker (bf16 at 512 rows, int8 at 4096³) it changed nothing or
// cost up to 5%. tail is scratch for the tasks split, returned for reuse.
func splitTail(tasks, tail []task, sets []rowSet, bn, workers int) ([]task, []task) {
	if len(tasks) < 4*workers || len(tasks) > 8*workers {
		return tasks, tail
	}
	head := len(tasks) - workers
	tail = append(tail[:0], tasks[head:]...) // the halves are written over the tail as it is read
	tasks = tasks[:head]
	for _, t := range tail {
		nb := (t.n1 - t.n0) / bn
		if !sets[t.set].tiles || nb < 2 {
			tasks = append(tasks, t)
			continue
		}
		mid := t.n0 + nb/2*bn
		a, b := t, t
		a.n1, b.n0 = mid, mid
		tasks = append(tasks, a, b)
	}
	return tasks, tail
}

// gemmJob is gemm's parallel section: chunks are tasks.
type gemmJob struct {
	g     *engine
	tasks []task
	sets  []rowSet
	pal   [64]byte
	p     sched.Plan
	cfg   TileConfig
	kstep int
	w     weights
	dst   []float32
	// With the quantization in the same section (engine.overlapBelow): its job, and one flag per span, set when the
	// span is done; chunks [0, len(done)) are spans, the rest tasks.
	prep *prepJob
	done []atomic.Uint32
}

func (j *gemmJob) Chunk(c, worker int) {
	task := c - len(j.done)
	if task < 0 {
		j.prep.Chunk(c, worker)
		j.done[c].Store(1)
		return
	}
	t := j.tasks[task]
	s := &j.sets[t.set]
	if j.done != nil {
		for i := s.span0 + t.m0/spanRows; i <= s.span0+(t.m1-1)/spanRows; i++ {
			for j.done[i].Load() == 0 {
				runtime.Gosched()
			}
		}
	}
	ws := &j.g.ws[worker]
	if j.g.timing {
		defer func(t0 time.Time) { ws.busy += time.Since(t0) }(time.Now())
	}
	var err error
	if s.tiles {
		for r := 0; r < max(1, j.g.repeat) && err == nil; r++ {
			err = j.g.tileTask(ws, &j.pal, j.p, j.cfg, j.kstep, j.w, s, t, j.dst)
		}
	} else {
		err = j.g.vecTask(ws, j.w, s, t, j.dst)
	}
	if err != nil {
		j.g.fail(err)
	}
}

func (g *engine) tileName(w weights, cfg TileConfig) string {
	s := "amx-bf16 " + cfg.bf16String()
	if w.i8 != nil {
		s = "amx-int8 " + cfg.String()
	}
	if g.emulate {
		s += " (emulated)"
	}
	return s
}

func (g *engine) vecName(w weights, threshold int) string {
	switch {
	case w.i8 != nil && g.vecAsm:
		return fmt.Sprintf("avx512-vnni (m < %d, packed amx-int8)", threshold)
	case w.i8 != nil:
		return fmt.Sprintf("go-int8 (m < %d, packed amx-int8, no avx512-vnni)", threshold)
	case g.vecAsm:
		return fmt.Sprintf("avx512-bf16-widened (m < %d, packed amx-bf16)", threshold)
	}
	return fmt.Sprintf("go-bf16 (m < %d, packed amx-bf16, no avx512)", threshold)
}

// prepare quantizes or converts every set's rows (see planPrepare) in a parallel section of its own.
func (g *engine) prepare(w weights, sets []rowSet, rows, kp, tileRows, kstep, tileBlockRows int) {
	g.planPrepare(w, sets, rows, kp, tileRows, kstep, tileBlockRows)
	g.pool.RunJob(len(g.spans), &g.pjob)
	g.pjob = prepJob{}
}

// spanRows is how many rows one chunk of prepare's work quantizes.
const spanRows = 16

// planPrepare sets up prepare's parallel work, g.pjob over g.spans, without running it: quantizing (int8) or
// converting (bf16) every set's rows into the shared activation buffer, row-major for the AVX-512 path, tile
// order (bands of tileRows rows, kstep bytes at a time) for the tiles.
func (g *engine) planPrepare(w weights, sets []rowSet, rows, kp, tileRows, kstep, tileBlockRows int) {
	g.nextActs()
	if w.i8 != nil {
		g.act8.reset(rows, kp, w.i8.Group)
	} else {
		g.act16.reset(rows, kp, rowsUsed(sets, true), rowsUsed(sets, false))
	}
	spans := g.spans[:0]
	for si := range sets {
		s := &sets[si]
		n := roundUp(len(s.x), 4)
		if s.tiles {
			n = roundUp(len(s.x), tileBlockRows)
		}
		s.span0 = len(spans)
		for r := 0; r < n; r += spanRows {
			spans = append(spans, span{si, r, min(n, r+spanRows)})
		}
	}
	g.spans = spans
	if cap(g.spanDone) < len(spans) {
		g.spanDone = make([]atomic.Uint32, len(spans))
	}
	if rowsUsed(sets, true) {
		// Every worker's row buffer is sized here, before the section: growing it on first use would allocate on
		// whichever later call first hands that worker a tile span.
		for i := range g.ws {
			if cap(g.ws[i].row) < 2*kp {
				g.ws[i].row = make([]byte, 2*kp)
			}
		}
	}
	g.pjob = prepJob{g: g, spans: spans, sets: sets, w: w, kp: kp, tileRows: tileRows, kstep: kstep}
}

// span is rows [r0, r1) of one set, a chunk of prepare's work.
type span struct{ set, r0, r1 int }

// rowsUsed reports whether any set goes to the tile kernels (tiles) or to the AVX-512 path (!tiles).
func rowsUsed(sets []rowSet, tiles bool) bool {
	for i := range sets {
		if sets[i].tiles == tiles {
			return true
		}
	}
	return false
}

// prepJob is prepare's parallel section: chunks are spans.
type prepJob struct {
	g                   *engine
	spans               []span
	sets                []rowSet
	w                   weights
	kp, tileRows, kstep int
}

func (j *prepJob) Chunk(c, worker int) {
	g, w, sp := j.g, j.w, j.spans[c]
	s := &j.sets[sp.set]
	var tmp []byte
	if s.tiles {
		tmp = g.ws[worker].row[:2*j.kp]
	}
	for r := sp.r0; r < sp.r1; r++ {
		var x []float32
		if r < len(s.x) {
			x = s.x[r]
		}
		switch {
		case w.i8 != nil && s.tiles:
			g.act8.quantizeTileRow(s.actRow, r, j.tileRows, j.kstep, x, tmp)
		case w.i8 != nil:
			g.act8.quantizeRow(s.actRow+r, x, true)
		case s.tiles:
			g.act16.setTileRow(s.actRow, r, j.tileRows, j.kstep, x, tmp)
		default:
			g.act16.setRow(s.actRow+r, x, true)
		}
	}
}

// tileTask computes the task's rectangle of blocks in one kernel call (column blocks outer, row blocks inner)
// into the worker's output buffer, then copies the rows and columns that exist into dst.
// It runs on the pool's workers, so it gets the plan rather than looking it up in the engine's map.
func (g *engine) tileTask(ws *workspace, pal *[64]byte, p sched.Plan, cfg TileConfig, kstep int, w weights, s *rowSet, t task, dst []float32) error {
	bm, bn := cfg.BlockRows(), cfg.BlockCols()
	n, _, _, kp := w.dims()
	mB, nB := (t.m1-t.m0)/bm, (t.n1-t.n0)/bn
	ldc := nB * bn
	c := ws.out(mB * bm * ldc)
	j := tileJob{c: c, ldc: ldc, rows: cfg.Rows, kstep: kstep, aStep: cfg.Rows * kstep, lda: kstep,
		mBlocks: mB, nBlocks: nB, xsBlock: bm, cRowBlock: bm * ldc, cColBlk: bn}
	clear(c)
	if w.i8 != nil {
		q := w.i8
		j.a, j.aOff, j.aTile, j.aBlock = g.act8.Q, (s.actRow+t.m0)*kp, cfg.Rows*kp, bm*kp
		j.b, j.bOff, j.bPanel, j.bBlock = q.Q, q.qIndex(s.e, t.n0, 0), 16*kp, bn*kp
		j.ws, j.wsOff, j.wsPanel = q.WS, q.sIndex(s.e, t.n0, 0), q.Groups*16
		j.wsBlock = cfg.NT * j.wsPanel
		j.xs, j.xsOff, j.xsGroup = g.act8.XS, s.actRow+t.m0, g.act8.Rows
		j.groups, j.steps = q.Groups, q.Group/kstep
	} else {
		b := w.b16
		j.a, j.aOff, j.aTile, j.aBlock = g.act16.B, 2*(s.actRow+t.m0)*kp, 2*cfg.Rows*kp, 2*bm*kp
		j.b, j.bOff, j.bPanel, j.bBlock = b.B, b.bIndex(s.e, t.n0, 0), 2*16*kp, 2*bn*kp
		chunk := effectiveGroup(cfg.Chunk, kp)
		j.groups, j.steps = kp/chunk, 2*chunk/kstep
	}
	if err := g.runTile(ws, pal, p, &j, w.i8 != nil); err != nil {
		return err
	}
	mEnd := min(mB*bm, len(s.x)-t.m0)
	nEnd := min(ldc, n-t.n0)
	for r := 0; r < mEnd; r++ {
		copy(dst[s.dst[t.m0+r]+t.n0:][:nEnd], c[r*ldc:r*ldc+nEnd])
	}
	return nil
}

// vecTask computes up to four rows of a set with the AVX-512 kernels, 32 output columns at a time.
func (g *engine) vecTask(ws *workspace, w weights, s *rowSet, t task, dst []float32) error {
	n, _, _, kp := w.dims()
	rows := min(4, len(s.x)-t.m0)
	row0 := s.actRow + t.m0
	for n0 := t.n0; n0 < t.n1; n0 += 32 {
		c := ws.out(4 * 32)
		j := vecJob{rows: rows, c: c, ldc: 32}
		var xf []float32
		if w.i8 != nil {
			q := w.i8
			j.x, j.xOff, j.lda = g.act8.Q, row0*kp, kp
			j.b, j.bOff, j.bPanel = q.Q, q.qIndex(s.e, n0, 0), 16*kp
			j.ws, j.wsum, j.sOff, j.sPanel = q.WS, q.WSum, q.sIndex(s.e, n0, 0), q.Groups*16
			j.xs, j.xsOff, j.xsGroup = g.act8.XS, row0, g.act8.Rows
			j.groups, j.quads = q.Groups, q.Group/4
		} else {
			b := w.b16
			xf = g.act16.F
			j.x, j.xOff, j.lda = floatBytes(g.act16.F), 4*row0*kp, 4*kp
			j.b, j.bOff, j.bPanel = b.B, b.bIndex(s.e, n0, 0), 2*16*kp
			j.groups, j.quads = 1, kp/2
		}
		if err := g.runVec(ws, &j, w.i8 != nil, xf); err != nil {
			return err
		}
		nEnd := min(32, n-n0)
		for r := 0; r < rows; r++ {
			copy(dst[s.dst[t.m0+r]+n0:][:nEnd], c[r*32:r*32+nEnd])
		}
	}
	return nil
}
