package cpu

import (
	"fmt"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// The fused ops (graph.MulMats and the others after StoreKV) compute what a chain of ops computes in one parallel
// section: the activations are quantized once for every weight that reads them, and the elementwise tail (SiLU·up,
// the residual add, the experts' weighted sum) runs on each chunk's outputs while they are still in cache, instead
// of in another pass behind another barrier. Outside the quantized fast path they run the chain's own kernels one
// after another, so reference mode computes exactly what the unfused graph computes.

// fusedScratch is the fused ops' bookkeeping, kept across ops so a decode step allocates nothing.
type fusedScratch struct {
	op    graph.Op
	src   [3]*graph.Tensor
	t     [3]graph.Tensor
	f     []float32 // an intermediate product: up, or the experts' outputs before their sum
	parts []matPart
}

// matPart is one weight of MUL_MATS: its rows and where its product starts in the destination.
type matPart struct {
	w   *graph.Tensor
	n   int
	off int
}

// sub returns the backend's scratch op, of kind k, writing dst and reading srcs: a fused op's step run by the
// unfused kernels.
func (b *Backend) sub(k graph.Kind, parent *graph.Op, dst *graph.Tensor, srcs ...*graph.Tensor) *graph.Op {
	s := &b.fused
	s.op = graph.Op{Kind: k, Name: parent.Name, Layer: parent.Layer, Dst: dst, Params: parent.Params}
	n := copy(s.src[:], srcs)
	s.op.Src = s.src[:n]
	return &s.op
}

// f32View makes scratch tensor i an F32 tensor of shape ne over f.
func (b *Backend) f32View(i int, name string, f []float32, ne ...int) *graph.Tensor {
	t := &b.fused.t[i]
	*t = graph.Tensor{Name: name, Type: tensor.F32, Layout: tensor.Plain, Ne: [4]int{1, 1, 1, 1}, F32: f}
	copy(t.Ne[:], ne)
	return t
}

// quantPath reports whether every weight runs on the quantized fast path with rows of k.
func (b *Backend) quantPath(k int, ws ...*graph.Tensor) bool {
	for _, w := range ws {
		if b.pathFor(w, k) != pathQuant {
			return false
		}
	}
	return true
}

// chunkRows is the output rows of one chunk of a product with n output rows: at most matRows, and few enough that
// each worker gets about four chunks (at least 8 rows each), so the atomic counter evens out a worker that runs
// late. A decode step's chunks stream their weights once; a prompt's take milliseconds each, and with one or two a
// worker (2048 rows on 16 workers made 32 chunks of 64) a late worker left the others idle for a whole chunk. Each
// chunk streams the activations once, which at 8 rows and more costs little beside its products.
func (b *Backend) chunkRows(n int) int {
	t := b.pool.Threads()
	return min(matRows, max(8, (n+4*t-1)/(4*t)))
}

// mulMats runs MUL_MATS: several weights against the same activations.
func (b *Backend) mulMats(op *graph.Op) (string, error) {
	if len(op.Src) < 2 {
		return "", fmt.Errorf("op %s %s: needs at least one weight and the activations", op.Kind, op.Name)
	}
	xt, err := src(op, len(op.Src)-1)
	if err != nil {
		return "", err
	}
	k, m := xt.Ne[0], xt.Rows()
	s := &b.fused
	s.parts = s.parts[:0]
	off := 0
	for j := 0; j < len(op.Src)-1; j++ {
		w, err := src(op, j)
		if err != nil {
			return "", err
		}
		if w.Ne[0] != k || max(w.Ne[2], 1)*max(w.Ne[3], 1) != 1 {
			return "", fmt.Errorf("op %s %s: weight %s is %s; want a 2-D weight with rows of %d (input %s)", op.Kind, op.Name, w.Name, w.Shape(), k, xt.Name)
		}
		if _, err := newRowReader(w, op); err != nil {
			return "", err
		}
		s.parts = append(s.parts, matPart{w: w, n: w.Ne[1], off: off})
		off += w.Ne[1] * m
	}
	x, err := f32s(op, xt, k*m)
	if err != nil {
		return "", err
	}
	dst, err := f32s(op, op.Dst, off)
	if err != nil {
		return "", err
	}
	for _, p := range s.parts {
		if !b.quantPath(k, p.w) {
			return b.mulMatsSeq(op, x, dst, k, m)
		}
	}
	if b.q8, err = b.quantizeRows(b.q8, x, k, m); err != nil {
		return "", err
	}
	a := b.q8
	// Chunks run over the weights' rows one after another, none crossing from one weight to the next.
	total := off / max(m, 1)
	per := b.chunkRows(total)
	chunks := 0
	for _, p := range s.parts {
		chunks += (p.n + per - 1) / per
	}
	j := &b.jobs.mats
	*j = matsJob{fe: b.errs(), parts: s.parts, a: a, dst: dst, k: k, m: m, per: per}
	runJob(b, chunks, j)
	return fastVariant(), b.fe.first()
}

// matsJob is MUL_MATS's section: chunks run over the weights' output rows one weight after another.
type matsJob struct {
	fe        *firstErr
	parts     []matPart
	a         []byte
	dst       []float32
	k, m, per int
}

func (j *matsJob) Chunk(c, _ int) {
	per, m := j.per, j.m
	for _, p := range j.parts {
		nc := (p.n + per - 1) / per
		if c >= nc {
			c -= nc
			continue
		}
		n0 := c * per
		j.fe.set(simdMatMul(p.w.Type, p.w.Data, j.k, j.a, m, j.dst[p.off:p.off+p.n*m], p.n, n0, min(p.n, n0+per)))
		return
	}
}

// mulMatsSeq runs MUL_MATS as one MUL_MAT per weight (reference mode, float weights).
func (b *Backend) mulMatsSeq(op *graph.Op, x, dst []float32, k, m int) (string, error) {
	kernel := KernelReference
	start := 0
	xt := op.Src[len(op.Src)-1]
	for j := 0; j < len(op.Src)-1; j++ {
		w := op.Src[j]
		d := b.f32View(0, op.Name, dst[start:start+w.Ne[1]*m], w.Ne[1], m)
		xv := b.f32View(1, xt.Name, x, k, m)
		var err error
		if kernel, err = b.mulMat(b.sub(graph.MulMat, op, d, w, xv)); err != nil {
			return "", err
		}
		start += w.Ne[1] * m
	}
	return kernel, nil
}

// mulMatAdd runs MUL_MAT_ADD: the product, with the residual added to each chunk's outputs as they are made.
func (b *Backend) mulMatAdd(op *graph.Op) (string, error) {
	w, x, dst, k, n, m, err := matShapes(op)
	if err != nil {
		return "", err
	}
	rt, err := src(op, 2)
	if err != nil {
		return "", err
	}
	if rt.Ne[0] != n || rt.Rows() != m {
		return "", fmt.Errorf("op %s %s: residual %s is %s, want [%d %d]", op.Kind, op.Name, rt.Name, rt.Shape(), n, m)
	}
	r, err := f32s(op, rt, n*m)
	if err != nil {
		return "", err
	}
	if p := b.pathFor(w, k); p != pathReference {
		return b.mulMatFast(op, p, w, x, dst, k, n, m, epilogue{kind: epiAdd, r: r})
	}
	kernel, err := b.mulMat(op) // reads Src[0], Src[1] and Dst only
	if err != nil {
		return "", err
	}
	return kernel, b.binary(b.sub(graph.Add, op, op.Dst, rt, op.Dst))
}

// mulMatSwiGLU runs MUL_MAT_SWIGLU: gate and up from one quantization of the activations, each chunk finishing
// silu(gate)·up on its own outputs.
func (b *Backend) mulMatSwiGLU(op *graph.Op) (string, error) {
	gate, err := src(op, 0)
	if err != nil {
		return "", err
	}
	up, err := src(op, 1)
	if err != nil {
		return "", err
	}
	xt, err := src(op, 2)
	if err != nil {
		return "", err
	}
	if up.Ne != gate.Ne || up.Type != gate.Type {
		return "", fmt.Errorf("op %s %s: gate %s %s and up %s %s differ", op.Kind, op.Name, gate.Name, gate.Shape(), up.Name, up.Shape())
	}
	gop := b.sub(graph.MulMat, op, op.Dst, gate, xt)
	_, x, dst, k, n, m, err := matShapes(gop)
	if err != nil {
		return "", err
	}
	b.fused.f = resize(b.fused.f, n*m)
	upOut := b.fused.f
	if p := b.pathFor(gate, k); p != pathReference {
		if _, err := newRowReader(up, op); err != nil {
			return "", err
		}
		// mulMatFast quantizes the activations once, for gate and up alike.
		return b.mulMatFast(op, p, gate, x, dst, k, n, m, epilogue{kind: epiSwiGLU, up: up, upOut: upOut})
	}
	if _, err := b.mulMat(gop); err != nil {
		return "", err
	}
	upT := b.f32View(2, up.Name, upOut, n, m)
	if _, err := b.mulMat(b.sub(graph.MulMat, op, upT, up, xt)); err != nil {
		return "", err
	}
	return b.swiGLU(b.sub(graph.SwiGLU, op, op.Dst, op.Dst, upT))
}

// mulMatIDSwiGLU runs MUL_MAT_ID_SWIGLU: the gate and up experts from one grouping and quantization of the
// activations, each chunk finishing silu(gate)·up on its own outputs.
func (b *Backend) mulMatIDSwiGLU(op *graph.Op) (string, error) {
	gate, err := src(op, 0)
	if err != nil {
		return "", err
	}
	up, err := src(op, 1)
	if err != nil {
		return "", err
	}
	if _, err := src(op, 3); err != nil {
		return "", err
	}
	if up.Ne != gate.Ne || up.Type != gate.Type {
		return "", fmt.Errorf("op %s %s: gate %s %s and up %s %s differ", op.Kind, op.Name, gate.Name, gate.Shape(), up.Name, up.Shape())
	}
	gop := b.sub(graph.MulMatID, op, op.Dst, gate, op.Src[2], op.Src[3])
	s, err := mulMatIDShapes(gop)
	if err != nil {
		return "", err
	}
	if p := b.pathFor(gate, s.k); p != pathReference {
		return b.mulMatIDFast(op, p, &s, up)
	}
	if _, err := b.mulMatID(gop); err != nil {
		return "", err
	}
	b.fused.f = resize(b.fused.f, len(s.dst))
	upT := b.f32View(2, up.Name, b.fused.f, s.n, s.u, s.m)
	if _, err := b.mulMatID(b.sub(graph.MulMatID, op, upT, up, op.Src[2], op.Src[3])); err != nil {
		return "", err
	}
	return b.swiGLU(b.sub(graph.SwiGLU, op, op.Dst, op.Dst, upT))
}

// mulMatIDSum runs MUL_MAT_ID_SUM. For one token each chunk is a block of output rows over all the token's experts,
// summed as they are made (so the experts' outputs never leave the worker's cache and the sum needs no pass of its
// own); for a prompt the experts run grouped, as MUL_MAT_ID does, and a second pass sums each token's rows.
func (b *Backend) mulMatIDSum(op *graph.Op) (string, error) {
	for i := 0; i < 4; i++ {
		if _, err := src(op, i); err != nil {
			return "", err
		}
	}
	w, xt, it, wt := op.Src[0], op.Src[1], op.Src[2], op.Src[3]
	n, u, m := w.Ne[1], it.Ne[0], it.Rows()
	if op.Dst.Ne[0] != n || op.Dst.Rows() != m {
		return "", fmt.Errorf("op %s %s: destination %s is %s, want [%d %d]", op.Kind, op.Name, op.Dst.Name, op.Dst.Shape(), n, m)
	}
	dst, err := f32s(op, op.Dst, n*m)
	if err != nil {
		return "", err
	}
	if wt.Ne[0] != u || wt.Rows() != m {
		return "", fmt.Errorf("op %s %s: weights %s is %s, want [%d %d]", op.Kind, op.Name, wt.Name, wt.Shape(), u, m)
	}
	ws, err := f32s(op, wt, u*m)
	if err != nil {
		return "", err
	}
	var r []float32
	if len(op.Src) > 4 && op.Src[4] != nil {
		rt := op.Src[4]
		if rt.Ne[0] != n || rt.Rows() != m {
			return "", fmt.Errorf("op %s %s: residual %s is %s, want [%d %d]", op.Kind, op.Name, rt.Name, rt.Shape(), n, m)
		}
		if r, err = f32s(op, rt, n*m); err != nil {
			return "", err
		}
	}
	b.fused.f = resize(b.fused.f, n*u*m)
	experts := b.f32View(2, op.Name, b.fused.f, n, u, m)
	sop := b.sub(graph.MulMatID, op, experts, w, xt, it)
	s, err := mulMatIDShapes(sop)
	if err != nil {
		return "", err
	}
	if p := b.pathFor(w, s.k); p == pathQuant && m == 1 {
		return b.mulMatIDSumOne(op, &s, ws, r, dst)
	}
	kernel, err := b.mulMatID(sop)
	if err != nil {
		return "", err
	}
	chunks, per := b.chunksFor(m, rowsPer(n*u))
	j := &b.jobs.sum
	*j = sumJob{x: b.fused.f, dst: dst, ws: ws, r: r, n: n, u: u, m: m, per: per}
	runJob(b, chunks, j)
	return kernel, nil
}

// sumJob is MUL_MAT_ID_SUM's second pass for a prompt: chunks are blocks of tokens.
type sumJob struct {
	x, dst, ws, r []float32
	n, u, m, per  int
}

func (j *sumJob) Chunk(c, _ int) {
	n, u := j.n, j.u
	for t := c * j.per; t < min(j.m, (c+1)*j.per); t++ {
		sumExperts(j.dst[t*n:(t+1)*n], j.x[t*u*n:(t+1)*u*n], j.ws[t*u:(t+1)*u], j.r, t*n)
	}
}

// sumExperts writes out = r[off:] + Σu ws[u]·x[u] (r nil: no residual), adding in MOE_SUM's and then ADD's order
// so the fused op gives the unfused graph's floats.
func sumExperts(out, x, ws, r []float32, off int) {
	n := len(out)
	clear(out)
	for s, wv := range ws {
		for i, v := range x[s*n : (s+1)*n] {
			out[i] += wv * v
		}
	}
	if r != nil {
		for i, v := range r[off : off+n] {
			out[i] = v + out[i]
		}
	}
}

// mulMatIDSumOne is MUL_MAT_ID_SUM for one token on quantized weights: chunks are blocks of output rows, each over
// every expert the token chose.
func (b *Backend) mulMatIDSumOne(op *graph.Op, s *idShapes, ws, r, dst []float32) (string, error) {
	if _, err := newRowReader(s.w, op); err != nil {
		return "", err
	}
	var err error
	if b.q8, err = b.quantizeRows(b.q8, s.x, s.k, s.xu); err != nil {
		return "", err
	}
	n, per := s.n, b.chunkRows(s.n)
	b.reserve(n)
	j := &b.jobs.sumOne
	*j = sumOneJob{b: b, fe: b.errs(), s: *s, a: b.q8, ws: ws, r: r, dst: dst,
		rb: tensor.Q8_0.RowBytes(s.k), wb: s.w.Type.RowBytes(s.k) * s.n, per: per}
	runJob(b, (n+per-1)/per, j)
	return fastVariant(), b.fe.first()
}

// sumOneJob is MUL_MAT_ID_SUM's section for one token: chunks are blocks of output rows over every chosen expert.
type sumOneJob struct {
	b           *Backend
	fe          *firstErr
	s           idShapes
	a           []byte
	ws, r, dst  []float32
	rb, wb, per int
}

func (j *sumOneJob) Chunk(c, wk int) {
	s, rb, wb := &j.s, j.rb, j.wb
	n := s.n
	n0, n1 := c*j.per, min(n, (c+1)*j.per)
	buf := j.b.workerBuf(wk, n)
	out := j.dst[n0:n1]
	clear(out)
	for u, e := range s.ids[:s.u] {
		xr := u
		if s.xu == 1 {
			xr = 0
		}
		j.fe.set(simdMatMul(s.w.Type, s.w.Data[int(e)*wb:(int(e)+1)*wb], s.k, j.a[xr*rb:(xr+1)*rb], 1, buf, n, n0, n1))
		wv := j.ws[u]
		for i, v := range buf[n0:n1] {
			out[i] += wv * v
		}
	}
	if j.r != nil {
		for i, v := range j.r[n0:n1] {
			out[i] = v + out[i]
		}
	}
}
