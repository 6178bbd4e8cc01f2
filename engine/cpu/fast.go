package cpu

import (
	"sync"

	"tilelab/engine/cpu/simd"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// The simd entry points the fast paths call, named once here.
var (
	fastVariant = simd.Variant
	quantizeQ8  = simd.QuantizeQ8_0
	simdMatMul  = simd.MatMul
	simdMatMulF = simd.MatMulF
	// simdMatMulFStrided is MatMulF over rows a stride apart (attention's values, read in the cache).
	simdMatMulFStrided = simd.MatMulFStrided
)

// The output rows one chunk of a fast matrix product covers: small enough that every worker gets many chunks
// (so a slow one does not hold up the op), large enough that claiming a chunk costs nothing in comparison.
// Variables, so the benchmarks can sweep them.
var (
	matRows = 64
	idRows  = 32
)

// path is how a matrix op runs: on the reference kernels, on simd's quantized kernels (Q4_0/Q8_0 weights,
// activations quantized to Q8_0), or on simd's float kernels (F32/F16/BF16 weights, float32 activations).
type path int

const (
	pathReference path = iota
	pathQuant
	pathFloat
)

// pathFor picks the kernel family for weight w with rows of k.
func (b *Backend) pathFor(w *graph.Tensor, k int) path {
	switch {
	case b.opt.Reference:
		return pathReference
	case simd.Supports(w.Type) && k%simd.QK == 0:
		return pathQuant
	case simd.SupportsF(w.Type) && int64(len(w.Data)) >= w.Bytes():
		// F32 weights made in memory may carry only their floats; those stay on the reference kernel.
		return pathFloat
	}
	return pathReference
}

// firstErr keeps the first error the workers of one op report; the kernels check sizes before the pool runs, so
// an error here means a bug, but it is still returned rather than lost. The backend keeps one and resets it per
// use, so the jobs share it without a new allocation per op.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	if err == nil {
		return
	}
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstErr) first() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// errs returns the backend's error slot, emptied.
func (b *Backend) errs() *firstErr {
	b.fe.err = nil
	return &b.fe
}

// quantizeRows quantizes m rows of k floats to Q8_0 into dst (grown as needed) on the pool.
func (b *Backend) quantizeRows(dst []byte, x []float32, k, m int) ([]byte, error) {
	rb := tensor.Q8_0.RowBytes(k)
	dst = resize(dst, rb*m)
	chunks, per := b.chunksFor(m, 1)
	if m*k <= elemChunk {
		chunks, per = 1, m // a decode step's few rows: quantizing them costs less than waking the workers
	}
	j := &b.jobs.quantize
	*j = quantizeJob{fe: b.errs(), dst: dst, x: x, k: k, m: m, rb: rb, per: per}
	runJob(b, chunks, j)
	return dst, b.fe.first()
}

type quantizeJob struct {
	fe            *firstErr
	dst           []byte
	x             []float32
	k, m, rb, per int
}

func (j *quantizeJob) Chunk(c, _ int) {
	k, rb := j.k, j.rb
	for i := c * j.per; i < min(j.m, (c+1)*j.per); i++ {
		j.fe.set(quantizeQ8(j.dst[i*rb:(i+1)*rb], j.x[i*k:(i+1)*k]))
	}
}

// epilogue is a fused op's elementwise tail, run by mulMatFast on each chunk's output columns [n0,n1) of every row
// once they are computed, on the same worker, while they are still in cache.
type epilogue struct {
	kind  epiKind
	r     []float32     // epiAdd: the residual, shaped as the destination
	up    *graph.Tensor // epiSwiGLU: the up weight, whose product goes to upOut before silu(dst)·up
	upOut []float32
}

type epiKind int

const (
	epiNone   epiKind = iota
	epiAdd            // dst += r (MUL_MAT_ADD)
	epiSwiGLU         // dst = silu(dst)·(up·x) (MUL_MAT_SWIGLU)
)

// mulMatFast quantizes the activations once (for quantized weights), then splits the weight's rows over the
// workers, each chunk finishing with epi (a fused op's elementwise tail) on its own outputs.
func (b *Backend) mulMatFast(op *graph.Op, p path, w *graph.Tensor, x, dst []float32, k, n, m int, epi epilogue) (string, error) {
	if _, err := newRowReader(w, op); err != nil { // validates the weight's size
		return "", err
	}
	var a []byte
	if p == pathQuant {
		var err error
		if b.q8, err = b.quantizeRows(b.q8, x, k, m); err != nil {
			return "", err
		}
		a = b.q8
	}
	per := b.chunkRows(n)
	j := &b.jobs.mat
	*j = matJob{fe: b.errs(), p: p, w: w, a: a, x: x, dst: dst, k: k, n: n, m: m, per: per, epi: epi}
	runJob(b, (n+per-1)/per, j)
	return fastVariant(), b.fe.first()
}

// matJob is a fast MUL_MAT's section (and the fused ops built on it): chunks are blocks of output rows.
type matJob struct {
	fe           *firstErr
	p            path
	w            *graph.Tensor
	a            []byte // the activations quantized (pathQuant)
	x, dst       []float32
	k, n, m, per int
	epi          epilogue
}

// product writes w's output columns [n0,n1) of every row into out.
func (j *matJob) product(w *graph.Tensor, out []float32, n0, n1 int) error {
	if j.p == pathQuant {
		return simdMatMul(w.Type, w.Data, j.k, j.a, j.m, out, j.n, n0, n1)
	}
	return simdMatMulF(w.Type, w.Data, j.k, j.x, j.m, out, j.n, n0, n1)
}

func (j *matJob) Chunk(c, _ int) {
	n, m := j.n, j.m
	n0, n1 := c*j.per, min(n, (c+1)*j.per)
	j.fe.set(j.product(j.w, j.dst, n0, n1))
	switch j.epi.kind {
	case epiAdd:
		for i := 0; i < m; i++ {
			d, rr := j.dst[i*n+n0:i*n+n1], j.epi.r[i*n+n0:i*n+n1]
			for jj := range d {
				d[jj] = rr[jj] + d[jj]
			}
		}
	case epiSwiGLU:
		upOut := j.epi.upOut
		err := j.product(j.epi.up, upOut, n0, n1)
		for i := 0; i < m && err == nil; i++ {
			seg := j.dst[i*n+n0 : i*n+n1]
			err = simd.SwiGLU(seg, seg, upOut[i*n+n0:i*n+n1])
		}
		j.fe.set(err)
	}
}

// mulMatIDFast gathers each expert's input rows together (quantized once, for quantized weights), runs one
// matmul per expert and block of output rows, and copies each block to its (token, slot) rows while it is in cache.
// With up set (MUL_MAT_ID_SWIGLU) each chunk runs the up weight's block too and writes silu(gate)·up.
func (b *Backend) mulMatIDFast(op *graph.Op, p path, s *idShapes, up *graph.Tensor) (string, error) {
	if _, err := newRowReader(s.w, op); err != nil {
		return "", err
	}
	if up != nil {
		if _, err := newRowReader(up, op); err != nil {
			return "", err
		}
	}
	per := idRows
	g := &b.groups
	g.group(s.ids, s.e, s.n, per)
	entries := len(s.ids)
	rb := tensor.Q8_0.RowBytes(s.k)
	if p == pathQuant {
		var err error
		if b.q8, err = b.quantizeRows(b.q8, s.x, s.k, s.xu*s.m); err != nil {
			return "", err
		}
		b.q8g = resize(b.q8g, rb*entries)
	} else {
		b.xg = resize(b.xg, s.k*entries)
	}
	rowBytes := rb
	if p == pathFloat {
		rowBytes = 4 * s.k
	}
	// The rows are gathered on the pool when there are enough bytes to be worth waking it (a prompt's expert
	// rows), on the caller otherwise (a decode step's few): about 256 KiB a chunk.
	gper := max(1, (256<<10)/max(rowBytes, 1))
	gj := &b.jobs.gather
	*gj = gatherJob{b: b, s: *s, p: p, rb: rb, n: entries, per: gper}
	runJob(b, (entries+gper-1)/gper, gj)
	b.tmp = resize(b.tmp, entries*s.n)
	var tmpUp []float32
	if up != nil {
		b.fused.f = resize(b.fused.f, entries*s.n)
		tmpUp = b.fused.f
	}
	j := &b.jobs.id
	*j = idJob{b: b, fe: b.errs(), s: *s, p: p, up: up, tmpUp: tmpUp, rb: rb, wb: s.w.Type.RowBytes(s.k) * s.n, per: per}
	runJob(b, len(g.chunkE), j)
	return fastVariant(), b.fe.first()
}

// gatherJob copies each (token, slot) entry's input row, quantized or float, to its place in expert order.
type gatherJob struct {
	b          *Backend
	s          idShapes
	p          path
	rb, n, per int
}

func (j *gatherJob) Chunk(c, _ int) {
	b, s, rb, order := j.b, &j.s, j.rb, j.b.groups.order
	for i := c * j.per; i < min(j.n, (c+1)*j.per); i++ {
		r := int(order[i])
		if s.xu == 1 {
			r /= s.u
		}
		if j.p == pathQuant {
			copy(b.q8g[i*rb:(i+1)*rb], b.q8[r*rb:(r+1)*rb])
		} else {
			copy(b.xg[i*s.k:(i+1)*s.k], s.x[r*s.k:(r+1)*s.k])
		}
	}
}

// idJob is a fast MUL_MAT_ID's section (and MUL_MAT_ID_SWIGLU's, with up set): chunks are an expert and a block of
// its output rows.
type idJob struct {
	b           *Backend
	fe          *firstErr
	s           idShapes
	p           path
	up          *graph.Tensor
	tmpUp       []float32
	rb, wb, per int // bytes of a quantized input row, bytes of one expert, output rows per chunk
}

// product writes expert e of wt's output columns [n0,n1) for the expert's cnt gathered rows from first into out.
func (j *idJob) product(wt *graph.Tensor, out []float32, e, first, cnt, n0, n1 int) {
	s, rb := &j.s, j.rb
	w := wt.Data[e*j.wb : (e+1)*j.wb]
	if j.p == pathQuant {
		j.fe.set(simdMatMul(wt.Type, w, s.k, j.b.q8g[first*rb:(first+cnt)*rb], cnt, out, s.n, n0, n1))
	} else {
		j.fe.set(simdMatMulF(wt.Type, w, s.k, j.b.xg[first*s.k:(first+cnt)*s.k], cnt, out, s.n, n0, n1))
	}
}

func (j *idJob) Chunk(c, _ int) {
	g, s := &j.b.groups, &j.s
	e, n0 := int(g.chunkE[c]), int(g.chunkN0[c])
	first, cnt := int(g.start[e]), int(g.count[e])
	out, n1 := j.b.tmp[first*s.n:(first+cnt)*s.n], min(s.n, n0+j.per)
	j.product(s.w, out, e, first, cnt, n0, n1)
	if j.up != nil {
		outUp := j.tmpUp[first*s.n : (first+cnt)*s.n]
		j.product(j.up, outUp, e, first, cnt, n0, n1)
		for i := 0; i < cnt; i++ {
			seg := out[i*s.n+n0 : i*s.n+n1]
			j.fe.set(simd.SwiGLU(seg, seg, outUp[i*s.n+n0:i*s.n+n1]))
		}
	}
	for i := 0; i < cnt; i++ {
		en := int(g.order[first+i])
		copy(s.dst[en*s.n+n0:en*s.n+n1], out[i*s.n+n0:i*s.n+n1])
	}
}
