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
// use, so the workers' closures share it without a new allocation per op.
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
	fe := b.errs()
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(m, (c+1)*per); i++ {
			fe.set(quantizeQ8(dst[i*rb:(i+1)*rb], x[i*k:(i+1)*k]))
		}
	})
	return dst, fe.first()
}

// mulMatFast quantizes the activations once (for quantized weights), then splits the weight's rows over the
// workers.
// When epi is not nil it runs on each chunk's columns [n0,n1) of every row once they are computed, on the same
// worker, while they are still in cache (a fused op's elementwise tail).
func (b *Backend) mulMatFast(op *graph.Op, p path, w *graph.Tensor, x, dst []float32, k, n, m int, epi func(n0, n1 int)) (string, error) {
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
	chunks := (n + per - 1) / per
	fe := b.errs()
	b.pool.Run(chunks, func(c, _ int) {
		n0, n1 := c*per, min(n, (c+1)*per)
		if p == pathQuant {
			fe.set(simdMatMul(w.Type, w.Data, k, a, m, dst, n, n0, n1))
		} else {
			fe.set(simdMatMulF(w.Type, w.Data, k, x, m, dst, n, n0, n1))
		}
		if epi != nil {
			epi(n0, n1)
		}
	})
	return fastVariant(), fe.first()
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
	b.rowsParallel(entries, rowBytes, func(i int) {
		r := int(g.order[i])
		if s.xu == 1 {
			r /= s.u
		}
		if p == pathQuant {
			copy(b.q8g[i*rb:(i+1)*rb], b.q8[r*rb:(r+1)*rb])
		} else {
			copy(b.xg[i*s.k:(i+1)*s.k], s.x[r*s.k:(r+1)*s.k])
		}
	})
	b.tmp = resize(b.tmp, entries*s.n)
	var tmpUp []float32
	if up != nil {
		b.fused.f = resize(b.fused.f, entries*s.n)
		tmpUp = b.fused.f
	}
	wb := s.w.Type.RowBytes(s.k) * s.n // bytes of one expert
	fe := b.errs()
	b.pool.Run(len(g.chunkE), func(c, _ int) {
		e, n0 := int(g.chunkE[c]), int(g.chunkN0[c])
		first, cnt := int(g.start[e]), int(g.count[e])
		out, n1 := b.tmp[first*s.n:(first+cnt)*s.n], min(s.n, n0+per)
		mm := func(wt *graph.Tensor, out []float32) {
			w := wt.Data[e*wb : (e+1)*wb]
			if p == pathQuant {
				fe.set(simdMatMul(wt.Type, w, s.k, b.q8g[first*rb:(first+cnt)*rb], cnt, out, s.n, n0, n1))
			} else {
				fe.set(simdMatMulF(wt.Type, w, s.k, b.xg[first*s.k:(first+cnt)*s.k], cnt, out, s.n, n0, n1))
			}
		}
		mm(s.w, out)
		if up != nil {
			outUp := tmpUp[first*s.n : (first+cnt)*s.n]
			mm(up, outUp)
			for i := 0; i < cnt; i++ {
				seg := out[i*s.n+n0 : i*s.n+n1]
				fe.set(simd.SwiGLU(seg, seg, outUp[i*s.n+n0:i*s.n+n1]))
			}
		}
		for i := 0; i < cnt; i++ {
			en := int(g.order[first+i])
			copy(s.dst[en*s.n+n0:en*s.n+n1], out[i*s.n+n0:i*s.n+n1])
		}
	})
	return fastVariant(), fe.first()
}

// rowsParallel calls f for rows [0, n) of rowBytes each, on the pool when there are enough bytes to be worth
// waking it (a prompt's expert rows), on the caller otherwise (a decode step's few).
func (b *Backend) rowsParallel(n, rowBytes int, f func(i int)) {
	per := max(1, (256<<10)/max(rowBytes, 1)) // about 256 KiB a chunk
	chunks := (n + per - 1) / per
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(n, (c+1)*per); i++ {
			f(i)
		}
	})
}
