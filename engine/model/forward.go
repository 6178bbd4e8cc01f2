package model

import (
	"math"
	"os"

	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// fuseOps makes the forward pass use the fused ops (graph.MulMats and the others) where their weights allow:
// $TILELAB_FUSE=0 turns them off, to measure what they save.
var fuseOps = os.Getenv("TILELAB_FUSE") != "0"

// fusable reports whether one fused op may read all of ws: every weight plain in host memory (the CPU backend
// computes the fused ops), or every weight in an AMX layout (the AMX backend computes them too, amx/fused.go). A
// mix, or weights anywhere else (a GPU), keeps the unfused ops, which each backend computes on its own weights.
func fusable(ws ...*graph.Tensor) bool {
	if !fuseOps || len(ws) == 0 || ws[0] == nil {
		return false
	}
	buf := ws[0].Buffer()
	for _, w := range ws {
		if w == nil || w.Buffer() != buf {
			return false
		}
		plain := w.StorageLayout() == tensor.Plain
		switch {
		case buf == "CPU" && plain:
		case buf == amxBuffer && !plain:
		default:
			return false
		}
	}
	return true
}

// amxBuffer is the AMX buffer type's name (amx.Name), spelt here so the model does not depend on the amx package.
const amxBuffer = "AMX"

// forward builds the graph of one batch for the model's architecture family and returns the logits tensor
// ([Vocab, rows]), or nil when the batch needs none.
func (m *Model) forward(b *graph.Builder, in *batch) *graph.Tensor {
	if m.Hyper.QKNorm {
		return m.forwardQwen3(b, in)
	}
	return m.forwardLlama(b, in)
}

// forwardLlama is LLaMA and Qwen2: pre-norm blocks, optional q/k/v biases (Qwen2 has them), RoPE on queries and
// keys (interleaved pairs for LLaMA, NeoX halves for Qwen2), grouped-query attention over the cache, then a SwiGLU
// FFN (or, for a Mixtral-style file, routed experts).
func (m *Model) forwardLlama(b *graph.Builder, in *batch) *graph.Tensor {
	h := m.Hyper
	x := b.GetRows("token_embd", m.tokEmbd, in.ids)
	for il := range m.layers {
		l := &m.layers[il]
		b.SetLayer(il)

		cur := b.RMSNorm(l.n.attnNorm, x, l.attnNorm, h.NormEps)
		q, k, v := m.qkv(b, il, cur)
		q = b.RoPE(l.n.qRope, heads(b, q, h.HeadDim, h.Heads), in.pos, h.RopeTheta, h.RopeDims, h.RopeNeoX)
		k = b.RoPE(l.n.kRope, heads(b, k, h.HeadDim, h.HeadsKV), in.pos, h.RopeTheta, h.RopeDims, h.RopeNeoX)
		cur = m.attend(b, il, q, k, v, in)
		x = m.attnOut(b, il, in, cur, x)

		cur = b.RMSNorm(l.n.ffnNorm, x, l.ffnNorm, h.NormEps)
		x = m.ffn(b, il, cur, x)
	}
	return m.head(b, x, in)
}

// forwardQwen3 is Qwen3 and Qwen3-MoE: as LLaMA, but each query and key head is RMS-normalised (QK-norm) before
// NeoX RoPE, and Qwen3-MoE routes its FFN through the top experts of a softmax router, their weights renormalised.
func (m *Model) forwardQwen3(b *graph.Builder, in *batch) *graph.Tensor {
	h := m.Hyper
	x := b.GetRows("token_embd", m.tokEmbd, in.ids)
	for il := range m.layers {
		l := &m.layers[il]
		b.SetLayer(il)

		cur := b.RMSNorm(l.n.attnNorm, x, l.attnNorm, h.NormEps)
		q, k, v := m.qkv(b, il, cur)
		q = b.RMSNorm(l.n.qNorm, heads(b, q, h.HeadDim, h.Heads), l.qNorm, h.NormEps)
		k = b.RMSNorm(l.n.kNorm, heads(b, k, h.HeadDim, h.HeadsKV), l.kNorm, h.NormEps)
		q = b.RoPE(l.n.qRope, q, in.pos, h.RopeTheta, h.RopeDims, true)
		k = b.RoPE(l.n.kRope, k, in.pos, h.RopeTheta, h.RopeDims, true)
		cur = m.attend(b, il, q, k, v, in)
		x = m.attnOut(b, il, in, cur, x)

		cur = b.RMSNorm(l.n.ffnNorm, x, l.ffnNorm, h.NormEps)
		x = m.ffn(b, il, cur, x)
	}
	return m.head(b, x, in)
}

// qkv is the query, key and value projections of cur (with their biases, when the file has them): one MUL_MATS
// op where the weights allow, so the activations are quantized once and the three share one parallel section.
func (m *Model) qkv(b *graph.Builder, il int, cur *graph.Tensor) (q, k, v *graph.Tensor) {
	l := &m.layers[il]
	if !fusable(l.wq, l.wk, l.wv) {
		return m.linear(b, l.n.q, l.n.qb, l.wq, l.bq, cur), m.linear(b, l.n.k, l.n.kb, l.wk, l.bk, cur),
			m.linear(b, l.n.v, l.n.vb, l.wv, l.bv, cur)
	}
	d := b.MulMats(l.n.qkv, cur, l.wq, l.wk, l.wv)
	q, k, v = b.MulMatsPart(d, 0), b.MulMatsPart(d, 1), b.MulMatsPart(d, 2)
	if l.bq != nil {
		q = b.Add(l.n.qb, q, l.bq)
	}
	if l.bk != nil {
		k = b.Add(l.n.kb, k, l.bk)
	}
	if l.bv != nil {
		v = b.Add(l.n.vb, v, l.bv)
	}
	return q, k, v
}

// attnOut is the attention output projection and the residual add, returning the new residual stream: one
// MUL_MAT_ADD op where the weight allows. After the last layer's attention only the rows whose logits are wanted go
// on (lastRows); the projection acts on each row alone, so cutting the rows before it gives the same rows.
func (m *Model) attnOut(b *graph.Builder, il int, in *batch, cur, x *graph.Tensor) *graph.Tensor {
	l := &m.layers[il]
	if l.bo == nil && fusable(l.wo) {
		cur, x = m.lastRows(b, il, in, cur, x)
		return b.MulMatAdd(l.n.attnOutRes, l.wo, cur, x)
	}
	cur = m.linear(b, l.n.o, l.n.ob, l.wo, l.bo, cur)
	cur, x = m.lastRows(b, il, in, cur, x)
	return b.Add(l.n.attnRes, x, cur)
}

// linear is w·x, plus the bias when there is one.
func (m *Model) linear(b *graph.Builder, name, biasName string, w, bias, x *graph.Tensor) *graph.Tensor {
	y := b.MulMat(name, w, x)
	if bias != nil {
		y = b.Add(biasName, y, bias)
	}
	return y
}

// heads views [headDim·n, M] as [headDim, n, M].
func heads(b *graph.Builder, t *graph.Tensor, headDim, n int) *graph.Tensor {
	return b.Arena.View(t, 0, headDim, n, t.Ne[1])
}

// attend stores the batch's keys and values in layer il's cache at positions nPast.. and attends over the cache.
func (m *Model) attend(b *graph.Builder, il int, q, k, v *graph.Tensor, in *batch) *graph.Tensor {
	h, l := m.Hyper, &m.layers[il]
	b.StoreKV(l.n.kStore, k, m.kc[il], in.nPast, false)
	b.StoreKV(l.n.vStore, heads(b, v, h.HeadDim, h.HeadsKV), m.vc[il], in.nPast, true)
	scale := float32(1 / math.Sqrt(float64(h.HeadDim)))
	return b.Attention(l.n.attn, q, m.kc[il], m.vc[il], in.nPast, scale)
}

// lastRows keeps, after the last layer's attention, only the rows whose logits are wanted (the last position,
// unless every position's are), as llama.cpp does with inp_out_ids: the rest of the pass then runs on one row.
func (m *Model) lastRows(b *graph.Builder, il int, in *batch, cur, x *graph.Tensor) (*graph.Tensor, *graph.Tensor) {
	if il != len(m.layers)-1 || in.allRows || in.M() == 1 {
		return cur, x
	}
	last := in.M() - 1
	return b.Arena.View(cur, last*cur.Ne[0], cur.Ne[0], 1), b.Arena.View(x, last*x.Ne[0], x.Ne[0], 1)
}

// ffn is the feed-forward block, SwiGLU or, for MoE models, the routed experts, and the residual add; it returns
// the new residual stream. Where the weights allow, gate, up and the activation are one op, and the down
// projection, the experts' weighted sum and the residual add another.
func (m *Model) ffn(b *graph.Builder, il int, cur, x *graph.Tensor) *graph.Tensor {
	l := &m.layers[il]
	if l.router != nil {
		return m.moe(b, il, cur, x)
	}
	if fusable(l.gate, l.up, l.down) {
		act := b.MulMatSwiGLU(l.n.ffnGateUp, l.gate, l.up, cur)
		return b.MulMatAdd(l.n.ffnDownRes, l.down, act, x)
	}
	gate := b.MulMat(l.n.gate, l.gate, cur)
	up := b.MulMat(l.n.up, l.up, cur)
	cur = b.MulMat(l.n.down, l.down, b.SwiGLU(l.n.act, gate, up))
	return b.Add(l.n.ffnRes, x, cur)
}

// moe is llama.cpp's build_moe_ffn with softmax gating: the router's probabilities, the top ExpertsUsed experts
// per token, their probabilities (renormalised to sum to one when ExpertNorm), each chosen expert's SwiGLU FFN,
// and the weighted sum of their outputs, added to the residual stream x.
func (m *Model) moe(b *graph.Builder, il int, cur, x *graph.Tensor) *graph.Tensor {
	h, l := m.Hyper, &m.layers[il]
	probs := b.SoftMax(l.n.probs, b.MulMat(l.n.router, l.router, cur))
	chosen := b.TopK(l.n.topk, probs, h.ExpertsUsed)
	weights := b.MoEWeights(l.n.weights, probs, chosen, h.ExpertNorm)
	shared := b.Arena.View(cur, 0, cur.Ne[0], 1, cur.Ne[1]) // one input row per token, shared by its experts
	var act *graph.Tensor
	if fusable(l.gateExps, l.upExps) {
		act = b.MulMatIDSwiGLU(l.n.gateUpExps, l.gateExps, l.upExps, shared, chosen)
	} else {
		gate := b.MulMatID(l.n.gateExps, l.gateExps, shared, chosen)
		up := b.MulMatID(l.n.upExps, l.upExps, shared, chosen)
		act = b.SwiGLU(l.n.act2, gate, up)
	}
	// For one token, MUL_MAT_ID_SUM runs each block of output rows over all the token's experts and sums them on
	// the spot, so the experts' outputs never leave the worker and the sum and residual add need no serial pass. A
	// prompt's experts run grouped by expert either way, so there the fused op would save only one pass over the
	// outputs; the unfused ops keep the prompt's trace showing MUL_MAT_ID, MOE_SUM and ADD.
	if cur.Rows() == 1 && fusable(l.downExps) {
		return b.MulMatIDSum(l.n.downExpsSumRes, l.downExps, act, chosen, weights, x)
	}
	down := b.MulMatID(l.n.downExps, l.downExps, act, chosen)
	return b.Add(l.n.ffnRes, x, b.MoESum(l.n.moeSum, down, weights))
}

// head is the final norm and the output projection, or nil when the batch needs no logits.
func (m *Model) head(b *graph.Builder, x *graph.Tensor, in *batch) *graph.Tensor {
	if !in.logits {
		return nil
	}
	b.SetLayer(-1)
	x = b.RMSNorm("output_norm", x, m.outNorm, m.Hyper.NormEps)
	return b.MulMat("output", m.output, x)
}
