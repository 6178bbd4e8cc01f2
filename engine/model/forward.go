package model

import (
	"math"

	"tilelab/engine/graph"
)

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
		b.Layer = il

		cur := b.RMSNorm(l.n.attnNorm, x, l.attnNorm, h.NormEps)
		q := m.linear(b, l.n.q, l.n.qb, l.wq, l.bq, cur)
		k := m.linear(b, l.n.k, l.n.kb, l.wk, l.bk, cur)
		v := m.linear(b, l.n.v, l.n.vb, l.wv, l.bv, cur)
		q = b.RoPE(l.n.qRope, heads(b, q, h.HeadDim, h.Heads), in.pos, h.RopeTheta, h.RopeDims, h.RopeNeoX)
		k = b.RoPE(l.n.kRope, heads(b, k, h.HeadDim, h.HeadsKV), in.pos, h.RopeTheta, h.RopeDims, h.RopeNeoX)
		cur = m.attend(b, il, q, k, v, in)
		cur = m.linear(b, l.n.o, l.n.ob, l.wo, l.bo, cur)

		cur, x = m.lastRows(b, il, in, cur, x)
		x = b.Add(l.n.attnRes, x, cur)

		cur = b.RMSNorm(l.n.ffnNorm, x, l.ffnNorm, h.NormEps)
		cur = m.ffn(b, l, cur)
		x = b.Add(l.n.ffnRes, x, cur)
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
		b.Layer = il

		cur := b.RMSNorm(l.n.attnNorm, x, l.attnNorm, h.NormEps)
		q := m.linear(b, l.n.q, l.n.qb, l.wq, l.bq, cur)
		k := m.linear(b, l.n.k, l.n.kb, l.wk, l.bk, cur)
		v := m.linear(b, l.n.v, l.n.vb, l.wv, l.bv, cur)
		q = b.RMSNorm(l.n.qNorm, heads(b, q, h.HeadDim, h.Heads), l.qNorm, h.NormEps)
		k = b.RMSNorm(l.n.kNorm, heads(b, k, h.HeadDim, h.HeadsKV), l.kNorm, h.NormEps)
		q = b.RoPE(l.n.qRope, q, in.pos, h.RopeTheta, h.RopeDims, true)
		k = b.RoPE(l.n.kRope, k, in.pos, h.RopeTheta, h.RopeDims, true)
		cur = m.attend(b, il, q, k, v, in)
		cur = m.linear(b, l.n.o, l.n.ob, l.wo, l.bo, cur)

		cur, x = m.lastRows(b, il, in, cur, x)
		x = b.Add(l.n.attnRes, x, cur)

		cur = b.RMSNorm(l.n.ffnNorm, x, l.ffnNorm, h.NormEps)
		cur = m.ffn(b, l, cur)
		x = b.Add(l.n.ffnRes, x, cur)
	}
	return m.head(b, x, in)
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
	e, last := m.Hyper.Embd, in.M()-1
	return b.Arena.View(cur, last*e, e, 1), b.Arena.View(x, last*e, e, 1)
}

// ffn is the feed-forward block: SwiGLU, or the routed experts for MoE models.
func (m *Model) ffn(b *graph.Builder, l *layer, x *graph.Tensor) *graph.Tensor {
	if l.router != nil {
		return m.moe(b, l, x)
	}
	gate := b.MulMat(l.n.gate, l.gate, x)
	up := b.MulMat(l.n.up, l.up, x)
	return b.MulMat(l.n.down, l.down, b.SwiGLU(l.n.act, gate, up))
}

// moe is llama.cpp's build_moe_ffn with softmax gating: the router's probabilities, the top ExpertsUsed experts
// per token, their probabilities (renormalised to sum to one when ExpertNorm), each chosen expert's SwiGLU FFN,
// and the weighted sum of their outputs.
func (m *Model) moe(b *graph.Builder, l *layer, x *graph.Tensor) *graph.Tensor {
	h := m.Hyper
	probs := b.SoftMax(l.n.probs, b.MulMat(l.n.router, l.router, x))
	chosen := b.TopK(l.n.topk, probs, h.ExpertsUsed)
	weights := b.MoEWeights(l.n.weights, probs, chosen, h.ExpertNorm)
	shared := b.Arena.View(x, 0, x.Ne[0], 1, x.Ne[1]) // one input row per token, shared by its experts
	gate := b.MulMatID(l.n.gateExps, l.gateExps, shared, chosen)
	up := b.MulMatID(l.n.upExps, l.upExps, shared, chosen)
	down := b.MulMatID(l.n.downExps, l.downExps, b.SwiGLU(l.n.act2, gate, up), chosen)
	return b.MoESum(l.n.moeSum, down, weights)
}

// head is the final norm and the output projection, or nil when the batch needs no logits.
func (m *Model) head(b *graph.Builder, x *graph.Tensor, in *batch) *graph.Tensor {
	if !in.logits {
		return nil
	}
	b.Layer = -1
	x = b.RMSNorm("output_norm", x, m.outNorm, m.Hyper.NormEps)
	return b.MulMat("output", m.output, x)
}
