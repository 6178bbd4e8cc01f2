package cpu

import (
	"fmt"
	"math"

	"tilelab/engine/cpu/simd"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// elemChunk is the smallest slice of an elementwise op worth handing to another worker.
const elemChunk = 1 << 14

// rowsPer is how many rows of k elements make a chunk of elementwise work.
func rowsPer(k int) int { return max(1, elemChunk/max(k, 1)) }

// getRows copies (decoding as needed) table rows ids[m] into Dst[m].
func (b *Backend) getRows(op *graph.Op) error {
	table, err := src(op, 0)
	if err != nil {
		return err
	}
	it, err := src(op, 1)
	if err != nil {
		return err
	}
	k, rows, m := table.Ne[0], table.Rows(), it.Elems()
	ids, err := i32s(op, it, m)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, k*m)
	if err != nil {
		return err
	}
	if op.Dst.Ne[0] != k {
		return fmt.Errorf("op %s %s: destination rows of %d, table rows of %d", op.Kind, op.Name, op.Dst.Ne[0], k)
	}
	for i, id := range ids {
		if id < 0 || int(id) >= rows {
			return fmt.Errorf("op %s %s: id %d (position %d) is outside table %s of %d rows", op.Kind, op.Name, id, i, table.Name, rows)
		}
	}
	rr, err := newRowReader(table, op)
	if err != nil {
		return err
	}
	chunks, per := b.chunksFor(m, rowsPer(k))
	j := &b.jobs.getRows
	*j = getRowsJob{rr: rr, ids: ids, dst: dst, k: k, m: m, per: per}
	runJob(b, chunks, j)
	return nil
}

type getRowsJob struct {
	rr        rowReader
	ids       []int32
	dst       []float32
	k, m, per int
}

func (j *getRowsJob) Chunk(c, _ int) {
	k := j.k
	for i := c * j.per; i < min(j.m, (c+1)*j.per); i++ {
		out := j.dst[i*k : (i+1)*k]
		if j.rr.t.Type == tensor.F32 {
			copy(out, j.rr.row(int(j.ids[i]), nil))
		} else {
			j.rr.row(int(j.ids[i]), out)
		}
	}
}

// rmsNorm scales each row by 1/sqrt(mean(x²)+eps), then by the weight when one is given. The sum of squares is
// kept in float64, as ggml does.
func (b *Backend) rmsNorm(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	k, r := xt.Ne[0], xt.Rows()
	x, err := f32s(op, xt, k*r)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, k*r)
	if err != nil {
		return err
	}
	var w []float32
	if len(op.Src) > 1 && op.Src[1] != nil {
		if op.Src[1].Elems() != k {
			return fmt.Errorf("op %s %s: weight %s has %d elements, rows have %d", op.Kind, op.Name, op.Src[1].Name, op.Src[1].Elems(), k)
		}
		if w, err = f32s(op, op.Src[1], k); err != nil {
			return err
		}
	}
	chunks, per := b.chunksFor(r, rowsPer(k))
	j := &b.jobs.rmsNorm
	*j = rmsNormJob{x: x, dst: dst, w: w, eps: float64(op.Params.Eps), k: k, r: r, per: per}
	runJob(b, chunks, j)
	return nil
}

type rmsNormJob struct {
	x, dst, w []float32
	eps       float64
	k, r, per int
}

func (j *rmsNormJob) Chunk(c, _ int) {
	k, w := j.k, j.w
	for i := c * j.per; i < min(j.r, (c+1)*j.per); i++ {
		row, out := j.x[i*k:(i+1)*k], j.dst[i*k:(i+1)*k]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		scale := float32(1 / math.Sqrt(ss/float64(k)+j.eps))
		if w == nil {
			for jj, v := range row {
				out[jj] = v * scale
			}
			continue
		}
		for jj, v := range row {
			out[jj] = v * scale * w[jj]
		}
	}
}

// rope rotates pairs of each head's first RopeDims elements by angle pos·theta^(-2i/dims): pairs (i, i+dims/2) in
// NeoX mode (Qwen), (2i, 2i+1) otherwise (LLaMA). Each token's angles are computed once for all its heads.
func (b *Backend) rope(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	pt, err := src(op, 1)
	if err != nil {
		return err
	}
	d, h, m := xt.Ne[0], xt.Ne[1], xt.Ne[2]*max(xt.Ne[3], 1)
	dims := op.Params.RopeDims
	if dims <= 0 || dims > d || dims%2 != 0 {
		return fmt.Errorf("op %s %s: rope dimensions %d must be even and within the head size %d", op.Kind, op.Name, dims, d)
	}
	if op.Params.RopeTheta <= 0 {
		return fmt.Errorf("op %s %s: rope base %g must be positive", op.Kind, op.Name, op.Params.RopeTheta)
	}
	pos, err := i32s(op, pt, m)
	if err != nil {
		return err
	}
	x, err := f32s(op, xt, d*h*m)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, d*h*m)
	if err != nil {
		return err
	}
	b.reserve(dims)
	j := &b.jobs.rope
	*j = ropeJob{b: b, pos: pos, x: x, dst: dst, base: float64(op.Params.RopeTheta), neox: op.Params.RopeNeoX, d: d, h: h, dims: dims}
	runJob(b, m, j)
	return nil
}

// ropeJob's chunks are tokens.
type ropeJob struct {
	b          *Backend
	pos        []int32
	x, dst     []float32
	base       float64
	neox       bool
	d, h, dims int
}

func (j *ropeJob) Chunk(t, wk int) {
	d, dims, half := j.d, j.dims, j.dims/2
	cs := j.b.workerBuf(wk, dims)
	for i := 0; i < half; i++ {
		theta := float64(j.pos[t]) * math.Pow(j.base, -2*float64(i)/float64(dims))
		s, c := math.Sincos(theta)
		cs[2*i], cs[2*i+1] = float32(c), float32(s)
	}
	for hh := 0; hh < j.h; hh++ {
		off := (t*j.h + hh) * d
		in, out := j.x[off:off+d], j.dst[off:off+d]
		for i := 0; i < half; i++ {
			i0, i1 := 2*i, 2*i+1
			if j.neox {
				i0, i1 = i, i+half
			}
			c, s := cs[2*i], cs[2*i+1]
			x0, x1 := in[i0], in[i1]
			out[i0] = x0*c - x1*s
			out[i1] = x0*s + x1*c
		}
		copy(out[dims:], in[dims:])
	}
}

// softMax is a numerically stable row-wise softmax; outside reference mode on simd's vectorised exp.
func (b *Backend) softMax(op *graph.Op) (string, error) {
	xt, err := src(op, 0)
	if err != nil {
		return "", err
	}
	k, r := xt.Ne[0], xt.Rows()
	x, err := f32s(op, xt, k*r)
	if err != nil {
		return "", err
	}
	dst, err := f32s(op, op.Dst, k*r)
	if err != nil {
		return "", err
	}
	chunks, per := b.chunksFor(r, rowsPer(k))
	j := &b.jobs.softMax
	*j = softMaxJob{fe: b.errs(), x: x, dst: dst, k: k, r: r, per: per, reference: b.opt.Reference}
	runJob(b, chunks, j)
	if !b.opt.Reference {
		return fastVariant(), b.fe.first()
	}
	return KernelReference, nil
}

type softMaxJob struct {
	fe        *firstErr
	x, dst    []float32
	k, r, per int
	reference bool
}

func (j *softMaxJob) Chunk(c, _ int) {
	k := j.k
	for i := c * j.per; i < min(j.r, (c+1)*j.per); i++ {
		if j.reference {
			softmaxRow(j.dst[i*k:(i+1)*k], j.x[i*k:(i+1)*k])
		} else {
			j.fe.set(simd.Softmax(j.dst[i*k:(i+1)*k], j.x[i*k:(i+1)*k]))
		}
	}
}

func softmaxRow(out, in []float32) {
	mx := float32(math.Inf(-1))
	for _, v := range in {
		mx = max(mx, v)
	}
	var sum float64
	for j, v := range in {
		e := float32(math.Exp(float64(v - mx)))
		out[j] = e
		sum += float64(e)
	}
	inv := float32(1 / sum)
	for j := range out {
		out[j] *= inv
	}
}

// binary is ADD and MUL, with the second operand repeated when it is smaller (a bias or a per-channel weight).
func (b *Backend) binary(op *graph.Op) error {
	at, err := src(op, 0)
	if err != nil {
		return err
	}
	bt, err := src(op, 1)
	if err != nil {
		return err
	}
	n, nb := at.Elems(), bt.Elems()
	if nb == 0 || n%nb != 0 || bt.Ne[0] != at.Ne[0] && nb != n {
		return fmt.Errorf("op %s %s: cannot broadcast %s %s over %s %s", op.Kind, op.Name, bt.Name, bt.Shape(), at.Name, at.Shape())
	}
	a, err := f32s(op, at, n)
	if err != nil {
		return err
	}
	y, err := f32s(op, bt, nb)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, n)
	if err != nil {
		return err
	}
	j := &b.jobs.binary
	*j = binaryJob{a: a, y: y, dst: dst, n: n, nb: nb, mul: op.Kind == graph.Mul}
	runJob(b, (n+elemChunk-1)/elemChunk, j)
	return nil
}

type binaryJob struct {
	a, y, dst []float32
	n, nb     int
	mul       bool
}

func (j *binaryJob) Chunk(c, _ int) {
	a, y, dst, nb := j.a, j.y, j.dst, j.nb
	for i := c * elemChunk; i < min(j.n, (c+1)*elemChunk); i++ {
		if j.mul {
			dst[i] = a[i] * y[i%nb]
		} else {
			dst[i] = a[i] + y[i%nb]
		}
	}
}

// unary is SILU, SCALE and COPY.
func (b *Backend) unary(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	n := xt.Elems()
	if op.Dst.Elems() != n {
		return fmt.Errorf("op %s %s: %s has %d elements, destination %s %d", op.Kind, op.Name, xt.Name, n, op.Dst.Name, op.Dst.Elems())
	}
	x, err := f32s(op, xt, n)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, n)
	if err != nil {
		return err
	}
	j := &b.jobs.unary
	*j = unaryJob{x: x, dst: dst, n: n, kind: op.Kind, scale: op.Params.Scale, reference: b.opt.Reference}
	runJob(b, (n+elemChunk-1)/elemChunk, j)
	return nil
}

type unaryJob struct {
	x, dst    []float32
	n         int
	kind      graph.Kind
	scale     float32
	reference bool
}

func (j *unaryJob) Chunk(c, _ int) {
	x, dst := j.x, j.dst
	lo, hi := c*elemChunk, min(j.n, (c+1)*elemChunk)
	switch j.kind {
	case graph.Copy:
		copy(dst[lo:hi], x[lo:hi])
	case graph.Scale:
		for i := lo; i < hi; i++ {
			dst[i] = x[i] * j.scale
		}
	case graph.SiLU:
		if !j.reference {
			simd.SiLU(dst[lo:hi], x[lo:hi]) // lengths match by construction
			return
		}
		for i := lo; i < hi; i++ {
			dst[i] = silu(x[i])
		}
	}
}

func silu(v float32) float32 { return v / (1 + float32(math.Exp(float64(-v)))) }

// swiGLU is silu(gate)·up, elementwise; outside reference mode on simd's kernel (a vectorised exp).
func (b *Backend) swiGLU(op *graph.Op) (string, error) {
	gt, err := src(op, 0)
	if err != nil {
		return "", err
	}
	ut, err := src(op, 1)
	if err != nil {
		return "", err
	}
	n := gt.Elems()
	if ut.Elems() != n || op.Dst.Elems() != n {
		return "", fmt.Errorf("op %s %s: gate %s, up %s and destination %s differ in size", op.Kind, op.Name, gt.Shape(), ut.Shape(), op.Dst.Shape())
	}
	g, err := f32s(op, gt, n)
	if err != nil {
		return "", err
	}
	u, err := f32s(op, ut, n)
	if err != nil {
		return "", err
	}
	dst, err := f32s(op, op.Dst, n)
	if err != nil {
		return "", err
	}
	j := &b.jobs.swiGLU
	*j = swiGLUJob{fe: b.errs(), g: g, u: u, dst: dst, n: n, reference: b.opt.Reference}
	runJob(b, (n+elemChunk-1)/elemChunk, j)
	if !b.opt.Reference {
		return fastVariant(), b.fe.first()
	}
	return KernelReference, nil
}

type swiGLUJob struct {
	fe        *firstErr
	g, u, dst []float32
	n         int
	reference bool
}

func (j *swiGLUJob) Chunk(c, _ int) {
	lo, hi := c*elemChunk, min(j.n, (c+1)*elemChunk)
	if !j.reference {
		j.fe.set(simd.SwiGLU(j.dst[lo:hi], j.g[lo:hi], j.u[lo:hi]))
		return
	}
	for i := lo; i < hi; i++ {
		j.dst[i] = silu(j.g[i]) * j.u[i]
	}
}

// topK writes, for each row, the indices of its K largest elements, largest first (ties: lower index first).
func (b *Backend) topK(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	n, r, k := xt.Ne[0], xt.Rows(), op.Params.K
	if k <= 0 || k > n {
		return fmt.Errorf("op %s %s: top %d of rows of %d", op.Kind, op.Name, k, n)
	}
	x, err := f32s(op, xt, n*r)
	if err != nil {
		return err
	}
	dst, err := i32s(op, op.Dst, k*r)
	if err != nil {
		return err
	}
	chunks, per := b.chunksFor(r, rowsPer(n*k))
	j := &b.jobs.topK
	*j = topKJob{x: x, dst: dst, n: n, k: k, r: r, per: per}
	runJob(b, chunks, j)
	return nil
}

type topKJob struct {
	x            []float32
	dst          []int32
	n, k, r, per int
}

func (j *topKJob) Chunk(c, _ int) {
	n, k := j.n, j.k
	for i := c * j.per; i < min(j.r, (c+1)*j.per); i++ {
		topKRow(j.dst[i*k:(i+1)*k], j.x[i*n:(i+1)*n])
	}
}

// topKRow keeps out sorted, best first, by insertion: k is small (experts per token) and rows are short.
func topKRow(out []int32, row []float32) {
	k := 0
	for j, v := range row {
		if k == len(out) {
			if !(v > row[out[k-1]]) {
				continue
			}
			k-- // the last one drops out
		}
		pos := k
		for pos > 0 && v > row[out[pos-1]] {
			out[pos] = out[pos-1]
			pos--
		}
		out[pos] = int32(j)
		k++
	}
}

// moeWeights gathers each token's chosen expert probabilities and, for qwen3moe, renormalises them to sum to one.
func (b *Backend) moeWeights(op *graph.Op) error {
	pt, err := src(op, 0)
	if err != nil {
		return err
	}
	it, err := src(op, 1)
	if err != nil {
		return err
	}
	e, u, m := pt.Ne[0], it.Ne[0], it.Rows()
	if pt.Rows() != m {
		return fmt.Errorf("op %s %s: probabilities for %d tokens, ids for %d", op.Kind, op.Name, pt.Rows(), m)
	}
	probs, err := f32s(op, pt, e*m)
	if err != nil {
		return err
	}
	ids, err := i32s(op, it, u*m)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, u*m)
	if err != nil {
		return err
	}
	for t := 0; t < m; t++ {
		var sum float32
		for s := 0; s < u; s++ {
			id := ids[t*u+s]
			if id < 0 || int(id) >= e {
				return fmt.Errorf("op %s %s: token %d slot %d names expert %d of %d", op.Kind, op.Name, t, s, id, e)
			}
			dst[t*u+s] = probs[t*e+int(id)]
			sum += dst[t*u+s]
		}
		if op.Params.Normalize && sum != 0 {
			for s := 0; s < u; s++ {
				dst[t*u+s] /= sum
			}
		}
	}
	return nil
}

// moeSum adds each token's expert outputs, weighted.
func (b *Backend) moeSum(op *graph.Op) error {
	xt, err := src(op, 0)
	if err != nil {
		return err
	}
	wt, err := src(op, 1)
	if err != nil {
		return err
	}
	n, u, m := xt.Ne[0], xt.Ne[1], xt.Ne[2]*max(xt.Ne[3], 1)
	if wt.Ne[0] != u || wt.Rows() != m {
		return fmt.Errorf("op %s %s: weights %s do not match expert outputs %s", op.Kind, op.Name, wt.Shape(), xt.Shape())
	}
	x, err := f32s(op, xt, n*u*m)
	if err != nil {
		return err
	}
	w, err := f32s(op, wt, u*m)
	if err != nil {
		return err
	}
	dst, err := f32s(op, op.Dst, n*m)
	if err != nil {
		return err
	}
	chunks, per := b.chunksFor(m, rowsPer(n*u))
	j := &b.jobs.moeSum
	*j = moeSumJob{x: x, w: w, dst: dst, n: n, u: u, m: m, per: per}
	runJob(b, chunks, j)
	return nil
}

type moeSumJob struct {
	x, w, dst    []float32
	n, u, m, per int
}

func (j *moeSumJob) Chunk(c, _ int) {
	n, u := j.n, j.u
	for t := c * j.per; t < min(j.m, (c+1)*j.per); t++ {
		out := j.dst[t*n : (t+1)*n]
		clear(out)
		for s := 0; s < u; s++ {
			ws := j.w[t*u+s]
			for i, v := range j.x[(t*u+s)*n : (t*u+s+1)*n] {
				out[i] += ws * v
			}
		}
	}
}
