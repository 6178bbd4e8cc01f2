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
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(m, (c+1)*per); i++ {
			out := dst[i*k : (i+1)*k]
			if table.Type == tensor.F32 {
				copy(out, rr.row(int(ids[i]), nil))
			} else {
				rr.row(int(ids[i]), out)
			}
		}
	})
	return nil
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
	eps := float64(op.Params.Eps)
	chunks, per := b.chunksFor(r, rowsPer(k))
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(r, (c+1)*per); i++ {
			row, out := x[i*k:(i+1)*k], dst[i*k:(i+1)*k]
			var ss float64
			for _, v := range row {
				ss += float64(v) * float64(v)
			}
			scale := float32(1 / math.Sqrt(ss/float64(k)+eps))
			if w == nil {
				for j, v := range row {
					out[j] = v * scale
				}
				continue
			}
			for j, v := range row {
				out[j] = v * scale * w[j]
			}
		}
	})
	return nil
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
	base, neox, half := float64(op.Params.RopeTheta), op.Params.RopeNeoX, dims/2
	b.pool.Run(m, func(t, wk int) {
		cs := b.workerBuf(wk, dims)
		for i := 0; i < half; i++ {
			theta := float64(pos[t]) * math.Pow(base, -2*float64(i)/float64(dims))
			s, c := math.Sincos(theta)
			cs[2*i], cs[2*i+1] = float32(c), float32(s)
		}
		for hh := 0; hh < h; hh++ {
			off := (t*h + hh) * d
			in, out := x[off:off+d], dst[off:off+d]
			for i := 0; i < half; i++ {
				i0, i1 := 2*i, 2*i+1
				if neox {
					i0, i1 = i, i+half
				}
				c, s := cs[2*i], cs[2*i+1]
				x0, x1 := in[i0], in[i1]
				out[i0] = x0*c - x1*s
				out[i1] = x0*s + x1*c
			}
			copy(out[dims:], in[dims:])
		}
	})
	return nil
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
	if !b.opt.Reference {
		fe := b.errs()
		b.pool.Run(chunks, func(c, _ int) {
			for i := c * per; i < min(r, (c+1)*per); i++ {
				fe.set(simd.Softmax(dst[i*k:(i+1)*k], x[i*k:(i+1)*k]))
			}
		})
		return fastVariant(), fe.first()
	}
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(r, (c+1)*per); i++ {
			softmaxRow(dst[i*k:(i+1)*k], x[i*k:(i+1)*k])
		}
	})
	return KernelReference, nil
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
	mul := op.Kind == graph.Mul
	chunks := (n + elemChunk - 1) / elemChunk
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * elemChunk; i < min(n, (c+1)*elemChunk); i++ {
			if mul {
				dst[i] = a[i] * y[i%nb]
			} else {
				dst[i] = a[i] + y[i%nb]
			}
		}
	})
	return nil
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
	kind, scale, reference := op.Kind, op.Params.Scale, b.opt.Reference
	chunks := (n + elemChunk - 1) / elemChunk
	b.pool.Run(chunks, func(c, _ int) {
		lo, hi := c*elemChunk, min(n, (c+1)*elemChunk)
		switch kind {
		case graph.Copy:
			copy(dst[lo:hi], x[lo:hi])
		case graph.Scale:
			for i := lo; i < hi; i++ {
				dst[i] = x[i] * scale
			}
		case graph.SiLU:
			if !reference {
				simd.SiLU(dst[lo:hi], x[lo:hi]) // lengths match by construction
				return
			}
			for i := lo; i < hi; i++ {
				dst[i] = silu(x[i])
			}
		}
	})
	return nil
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
	chunks := (n + elemChunk - 1) / elemChunk
	if !b.opt.Reference {
		fe := b.errs()
		b.pool.Run(chunks, func(c, _ int) {
			lo, hi := c*elemChunk, min(n, (c+1)*elemChunk)
			fe.set(simd.SwiGLU(dst[lo:hi], g[lo:hi], u[lo:hi]))
		})
		return fastVariant(), fe.first()
	}
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * elemChunk; i < min(n, (c+1)*elemChunk); i++ {
			dst[i] = silu(g[i]) * u[i]
		}
	})
	return KernelReference, nil
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
	b.pool.Run(chunks, func(c, _ int) {
		for i := c * per; i < min(r, (c+1)*per); i++ {
			topKRow(dst[i*k:(i+1)*k], x[i*n:(i+1)*n])
		}
	})
	return nil
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
	b.pool.Run(chunks, func(c, _ int) {
		for t := c * per; t < min(m, (c+1)*per); t++ {
			out := dst[t*n : (t+1)*n]
			clear(out)
			for s := 0; s < u; s++ {
				ws := w[t*u+s]
				for i, v := range x[(t*u+s)*n : (t*u+s+1)*n] {
					out[i] += ws * v
				}
			}
		}
	})
	return nil
}
