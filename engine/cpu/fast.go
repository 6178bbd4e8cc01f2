package cpu

import (
	"sync"

	"tilelab/engine/cpu/simd"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// The quantized kernels the fast path calls, as variables so tests can swap them.
var (
	fastSupports = simd.Supports
	fastVariant  = simd.Variant
	quantizeQ8   = simd.QuantizeQ8_0
	simdMatMul   = simd.MatMul
)

// firstErr keeps the first error the workers of one op report; the kernels check sizes before the pool runs, so
// an error here means a bug, but it is still returned rather than lost.
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

// quantizeRows quantizes m rows of k floats to Q8_0 into dst (grown as needed) on the pool.
func (b *Backend) quantizeRows(dst []byte, x []float32, k, m int) ([]byte, error) {
	rb := tensor.Q8_0.RowBytes(k)
	dst = resize(dst, rb*m)
	chunks, per := b.chunksFor(m, 1)
	var fe firstErr
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(m, (c+1)*per); i++ {
			fe.set(quantizeQ8(dst[i*rb:(i+1)*rb], x[i*k:(i+1)*k]))
		}
	})
	return dst, fe.err
}

// mulMatFast quantizes the activations once, then splits the weight's rows over the workers.
func (b *Backend) mulMatFast(op *graph.Op, w *graph.Tensor, x, dst []float32, k, n, m int) (string, error) {
	rr, err := newRowReader(w, op) // validates the weight's size
	if err != nil {
		return "", err
	}
	if b.q8, err = b.quantizeRows(b.q8, x, k, m); err != nil {
		return "", err
	}
	a := b.q8
	chunks, per := b.chunksFor(n, 16)
	var fe firstErr
	b.pool.Run(chunks, func(c, _ int) {
		fe.set(simdMatMul(w.Type, rr.t.Data, k, a, m, dst, n, c*per, min(n, (c+1)*per)))
	})
	return fastVariant(), fe.err
}

// mulMatIDFast quantizes every input row once, gathers each expert's rows together, runs one matmul per expert
// and output block, then scatters the results to their (token, slot) rows.
func (b *Backend) mulMatIDFast(op *graph.Op, s *idShapes) (string, error) {
	if _, err := newRowReader(s.w, op); err != nil {
		return "", err
	}
	per := 32
	g := &b.groups
	g.group(s.ids, s.e, s.n, per)
	rb := tensor.Q8_0.RowBytes(s.k)
	var err error
	if b.q8, err = b.quantizeRows(b.q8, s.x, s.k, s.xu*s.m); err != nil {
		return "", err
	}
	entries := len(s.ids)
	b.q8g = resize(b.q8g, rb*entries)
	for i, en := range g.order {
		r := int(en)
		if s.xu == 1 {
			r /= s.u
		}
		copy(b.q8g[i*rb:(i+1)*rb], b.q8[r*rb:(r+1)*rb])
	}
	b.tmp = resize(b.tmp, entries*s.n)
	wb := s.w.Type.RowBytes(s.k) * s.n // bytes of one expert
	var fe firstErr
	b.pool.Run(len(g.chunkE), func(c, _ int) {
		e, n0 := int(g.chunkE[c]), int(g.chunkN0[c])
		first, cnt := int(g.start[e]), int(g.count[e])
		fe.set(simdMatMul(s.w.Type, s.w.Data[e*wb:(e+1)*wb], s.k, b.q8g[first*rb:(first+cnt)*rb], cnt,
			b.tmp[first*s.n:(first+cnt)*s.n], s.n, n0, min(s.n, n0+per)))
	})
	if fe.err != nil {
		return "", fe.err
	}
	for i, en := range g.order {
		copy(s.dst[int(en)*s.n:(int(en)+1)*s.n], b.tmp[i*s.n:(i+1)*s.n])
	}
	return fastVariant(), nil
}
