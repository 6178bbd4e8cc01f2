package cpu

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"

	"tilelab/engine/cpu/simd"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// cacheData is a KV cache's storage: float32 values, or F16 ones as little-endian bytes.
type cacheData struct {
	typ tensor.DType // F32 or F16
	f32 []float32
	raw []byte
}

// bytes returns elements [from, to) as bytes, the form simd's float kernels read.
func (c cacheData) bytes(from, to int) []byte {
	if c.typ == tensor.F32 {
		return floatBytes(c.f32[from:to])
	}
	return c.raw[2*from : 2*to]
}

// row returns elements [from, from+n) as float32: in place for F32, decoded into buf for F16.
func (c cacheData) row(from, n int, buf []float32) []float32 {
	if c.typ == tensor.F32 {
		return c.f32[from : from+n]
	}
	for i := range buf[:n] {
		buf[i] = tensor.F16ToF32(binary.LittleEndian.Uint16(c.raw[2*(from+i):]))
	}
	return buf[:n]
}

// kvCache checks that a cache window's source is an F32 or F16 cache of the expected layout and returns its
// storage and its length in positions. transposed is the V layout [Ctx,D,Hkv]; otherwise K's [D,Ctx,Hkv].
func kvCache(op *graph.Op, w *graph.Tensor, d, hkv int, transposed bool) (cacheData, int, error) {
	c := w.Source()
	ctx, cd := c.Ne[1], c.Ne[0]
	if transposed {
		ctx, cd = c.Ne[0], c.Ne[1]
	}
	if cd != d || c.Ne[2] != hkv || max(c.Ne[3], 1) != 1 {
		return cacheData{}, 0, fmt.Errorf("op %s %s: cache %s is %s; want %d dimensions and %d heads", op.Kind, op.Name, c.Name, c.Shape(), d, hkv)
	}
	switch c.Type {
	case tensor.F32:
		f, err := f32s(op, c, d*ctx*hkv)
		return cacheData{typ: tensor.F32, f32: f}, ctx, err
	case tensor.F16:
		if err := checkLayout(c, op); err != nil {
			return cacheData{}, 0, err
		}
		if len(c.Data) < 2*d*ctx*hkv {
			return cacheData{}, 0, fmt.Errorf("op %s %s: cache %s holds %d bytes, its shape %s needs %d", op.Kind, op.Name, c.Name, len(c.Data), c.Shape(), 2*d*ctx*hkv)
		}
		return cacheData{typ: tensor.F16, raw: c.Data}, ctx, nil
	}
	return cacheData{}, 0, fmt.Errorf("op %s %s: cache %s is %s; the CPU backend keeps f32 and f16 caches", op.Kind, op.Name, c.Name, c.Type)
}

// storeKV writes keys or values [D,Hkv,M] into their cache at positions NPast..NPast+M.
func (b *Backend) storeKV(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	d, hkv, m := xt.Ne[0], xt.Ne[1], xt.Ne[2]*max(xt.Ne[3], 1)
	x, err := f32s(op, xt, d*hkv*m)
	if err != nil {
		return err
	}
	tr, past := op.Params.Transposed, op.Params.NPast
	cache, ctx, err := kvCache(op, op.Dst, d, hkv, tr)
	if err != nil {
		return err
	}
	if past < 0 || past+m > ctx {
		return fmt.Errorf("op %s %s: positions [%d,%d) do not fit cache %s of %d", op.Kind, op.Name, past, past+m, op.Dst.Source().Name, ctx)
	}
	heads := hkv
	if d*hkv*m < elemChunk {
		heads = 1 // a decode step's few hundred values: waking the workers would cost more than the copy
	}
	j := &b.jobs.storeKV
	*j = storeKVJob{x: x, cache: cache, heads: heads, d: d, hkv: hkv, m: m, ctx: ctx, past: past, tr: tr}
	runJob(b, heads, j)
	return nil
}

// storeKVJob's chunks are KV heads (every heads-th one each).
type storeKVJob struct {
	x                           []float32
	cache                       cacheData
	heads, d, hkv, m, ctx, past int
	tr                          bool
}

func (j *storeKVJob) Chunk(c, _ int) {
	for g := c; g < j.hkv; g += j.heads {
		storeHead(j.x, j.cache, g, j.d, j.hkv, j.m, j.ctx, j.past, j.tr)
	}
}

// storeHead is storeKV's copy of one KV head's rows (rounded to F16 for an F16 cache).
func storeHead(x []float32, cache cacheData, g, d, hkv, m, ctx, past int, tr bool) {
	put := func(at int, v float32) {
		if cache.typ == tensor.F32 {
			cache.f32[at] = v
			return
		}
		binary.LittleEndian.PutUint16(cache.raw[2*at:], tensor.F32ToF16(v))
	}
	for t := 0; t < m; t++ {
		row := x[(t*hkv+g)*d : (t*hkv+g+1)*d]
		switch {
		case !tr && cache.typ == tensor.F32:
			copy(cache.f32[(g*ctx+past+t)*d:], row)
		case !tr:
			for i, v := range row {
				put((g*ctx+past+t)*d+i, v)
			}
		case cache.typ == tensor.F32: // the common case, without a call per value
			for i, v := range row {
				cache.f32[(g*d+i)*ctx+past+t] = v
			}
		default:
			for i, v := range row {
				put((g*d+i)*ctx+past+t, v)
			}
		}
	}
}

// attnShapes is ATTENTION's operands, checked.
type attnShapes struct {
	q, dst                  []float32
	kc, vc                  cacheData
	d, hq, hkv, m, past, nv int // nv: visible positions, past+m
	ctxK, ctxV              int
	scale                   float32
	causal                  bool
}

func attentionShapes(op *graph.Op) (s attnShapes, err error) {
	qt, err := src(op, 0)
	if err != nil {
		return s, err
	}
	kt, err := src(op, 1)
	if err != nil {
		return s, err
	}
	vt, err := src(op, 2)
	if err != nil {
		return s, err
	}
	p := op.Params
	s.d, s.hq, s.m = qt.Ne[0], qt.Ne[1], qt.Ne[2]*max(qt.Ne[3], 1)
	s.hkv, s.past, s.causal = p.HeadsKV, p.NPast, p.Causal
	s.nv = s.past + s.m
	switch {
	case p.HeadDim != 0 && p.HeadDim != s.d:
		return s, fmt.Errorf("op %s %s: query heads of %d, params say %d", op.Kind, op.Name, s.d, p.HeadDim)
	case s.hkv <= 0 || s.hq%s.hkv != 0:
		return s, fmt.Errorf("op %s %s: %d query heads cannot share %d KV heads", op.Kind, op.Name, s.hq, s.hkv)
	case s.past < 0:
		return s, fmt.Errorf("op %s %s: negative past length %d", op.Kind, op.Name, s.past)
	}
	if s.kc, s.ctxK, err = kvCache(op, kt, s.d, s.hkv, false); err != nil {
		return s, err
	}
	if s.vc, s.ctxV, err = kvCache(op, vt, s.d, s.hkv, true); err != nil {
		return s, err
	}
	if s.nv > s.ctxK || s.nv > s.ctxV {
		return s, fmt.Errorf("op %s %s: %d positions are visible but the caches hold %d and %d", op.Kind, op.Name, s.nv, s.ctxK, s.ctxV)
	}
	if s.q, err = f32s(op, qt, s.d*s.hq*s.m); err != nil {
		return s, err
	}
	if s.dst, err = f32s(op, op.Dst, s.d*s.hq*s.m); err != nil {
		return s, err
	}
	s.scale = p.Scale
	if s.scale == 0 {
		s.scale = float32(1 / math.Sqrt(float64(s.d)))
	}
	return s, nil
}

// visible is how many positions query t sees.
func (s *attnShapes) visible(t int) int {
	if s.causal {
		return s.past + t + 1
	}
	return s.nv
}

// attention is causal grouped-query attention over the KV cache: softmax(scale·q·Kᵀ) over the visible positions,
// then the weighted sum of V. Query head h shares KV head h/(Hq/Hkv), as llama.cpp groups them.
func (b *Backend) attention(op *graph.Op) (string, error) {
	s, err := attentionShapes(op)
	if err != nil {
		return "", err
	}
	if !b.opt.Reference {
		return b.attentionFast(&s)
	}
	// Sized for the whole cache, not the visible positions, so that decoding does not grow it token by token: the
	// scores, and a row decoded from an F16 cache.
	b.reserve(2 * max(s.ctxK, s.ctxV, s.d))
	j := &b.jobs.attnRef
	*j = attnRefJob{b: b, s: s}
	runJob(b, s.hq*s.m, j)
	return KernelReference, nil
}

// attnRefJob's chunks are (token, query head) pairs.
type attnRefJob struct {
	b *Backend
	s attnShapes
}

func (jb *attnRefJob) Chunk(c, wk int) {
	s := &jb.s
	t, h := c/s.hq, c%s.hq
	g := h / (s.hq / s.hkv)
	n := s.visible(t)
	qv := s.q[(t*s.hq+h)*s.d : (t*s.hq+h+1)*s.d]
	buf := jb.b.workerBuf(wk, n+max(n, s.d))
	scores, row := buf[:n], buf[n:]
	for j := 0; j < n; j++ {
		scores[j] = dot(qv, s.kc.row((g*s.ctxK+j)*s.d, s.d, row)) * s.scale
	}
	softmaxRow(scores, scores)
	out := s.dst[(t*s.hq+h)*s.d : (t*s.hq+h+1)*s.d]
	for i := range out {
		out[i] = dot(scores, s.vc.row((g*s.d+i)*s.ctxV, n, row))
	}
}

// attentionFast runs each KV head's attention for a block of tokens as two matrix products on simd's float
// kernels: the block's query rows (every query head of the group, pre-scaled) against the head's keys, a masked
// softmax, then the probabilities against the head's values, read in place (the V cache's rows are positions of
// one dimension; the product takes the visible part of each, a row stride apart).
func (b *Backend) attentionFast(s *attnShapes) (string, error) {
	// Enough blocks to keep every worker busy, but blocks of several tokens so each product has rows to share.
	per := max(1, min(64, (s.m*s.hkv+4*b.pool.Threads()-1)/(4*b.pool.Threads())))
	blocks := (s.m + per - 1) / per
	b.reserve(attnScratch(s, per*(s.hq/s.hkv), s.nv))
	j := &b.jobs.attnFast
	*j = attnFastJob{b: b, fe: b.errs(), s: *s, per: per, blocks: blocks}
	runJob(b, blocks*s.hkv, j)
	return fastVariant(), b.fe.first()
}

// attnScratch is the floats a worker of attentionFast needs for blocks of up to rows query rows seeing up to n
// positions: queries, outputs and scores. A decode step (one token) asks for the whole cache's worth, so that the
// scratch does not grow token by token as the context fills; the last position of the context needs that much
// anyway.
func attnScratch(s *attnShapes, rows, n int) int {
	if s.m == 1 {
		n = s.ctxK
	}
	return 2*rows*s.d + rows*n
}

// attnFastJob's chunks are a KV head and a block of tokens.
type attnFastJob struct {
	b           *Backend
	fe          *firstErr
	s           attnShapes
	per, blocks int
}

func (jb *attnFastJob) Chunk(c, wk int) {
	s, per := &jb.s, jb.per
	group := s.hq / s.hkv
	// Causal blocks cost more the later their tokens (they see more positions): the last blocks go first, so
	// the cheap early ones fill in at the end rather than one costly block finishing alone.
	g, t0 := c%s.hkv, (jb.blocks-1-c/s.hkv)*per
	t1 := min(s.m, t0+per)
	rows, n := (t1-t0)*group, s.visible(t1-1)
	buf := jb.b.workerBuf(wk, 2*rows*s.d+rows*n)
	q, out := buf[:rows*s.d], buf[rows*s.d:2*rows*s.d]
	scores := buf[2*rows*s.d : 2*rows*s.d+rows*n]
	for i := 0; i < rows; i++ {
		t, h := t0+i/group, g*group+i%group
		src := s.q[(t*s.hq+h)*s.d : (t*s.hq+h+1)*s.d]
		for k, v := range src {
			q[i*s.d+k] = v * s.scale
		}
	}
	keys := s.kc.bytes(g*s.ctxK*s.d, (g*s.ctxK+n)*s.d)
	if err := simdMatMulF(s.kc.typ, keys, s.d, q, rows, scores, n, 0, n); err != nil {
		jb.fe.set(err)
		return
	}
	for i := 0; i < rows; i++ {
		row, vis := scores[i*n:(i+1)*n], s.visible(t0+i/group)
		jb.fe.set(simd.Softmax(row[:vis], row[:vis]))
		clear(row[vis:])
	}
	values := s.vc.bytes(g*s.d*s.ctxV, ((g+1)*s.d-1)*s.ctxV+n)
	if err := simdMatMulFStrided(s.vc.typ, values, n, s.vc.typ.RowBytes(s.ctxV), scores, rows, out, s.d, 0, s.d); err != nil {
		jb.fe.set(err)
		return
	}
	for i := 0; i < rows; i++ {
		t, h := t0+i/group, g*group+i%group
		copy(s.dst[(t*s.hq+h)*s.d:(t*s.hq+h+1)*s.d], out[i*s.d:(i+1)*s.d])
	}
}

// floatBytes views float32s as their little-endian bytes (the machine's order on every platform TileLab runs).
func floatBytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}
