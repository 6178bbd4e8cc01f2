package placement

import (
	"fmt"

	"tilelab/engine/backend"
	"tilelab/engine/graph"
	"tilelab/engine/tensor"
)

// qwen3MoE30B lists the weights of Qwen3-30B-A3B as llama.cpp names them: 48 layers, embedding 2048, 32 query heads
// and 4 KV heads of 128, 128 experts of FFN 768, vocabulary 151936; quant everywhere except the F32 norms and
// router, as llama.cpp's quantizer leaves them.
func qwen3MoE30B(quant tensor.DType, layers int) []backend.WeightInfo {
	const embd, heads, kvHeads, headDim, experts, ffn, vocab = 2048, 32, 4, 128, 128, 768, 151936
	var ws []backend.WeightInfo
	add := func(name string, t tensor.DType, ne ...int) {
		var n [4]int
		for i := range n {
			n[i] = 1
		}
		copy(n[:], ne)
		ws = append(ws, Weight(name, t, n))
	}
	add("token_embd.weight", quant, embd, vocab)
	for l := range layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", tensor.F32, embd)
		add(p+"attn_q.weight", quant, embd, heads*headDim)
		add(p+"attn_k.weight", quant, embd, kvHeads*headDim)
		add(p+"attn_v.weight", quant, embd, kvHeads*headDim)
		add(p+"attn_output.weight", quant, heads*headDim, embd)
		add(p+"attn_q_norm.weight", tensor.F32, headDim)
		add(p+"attn_k_norm.weight", tensor.F32, headDim)
		add(p+"ffn_norm.weight", tensor.F32, embd)
		add(p+"ffn_gate_inp.weight", tensor.F32, embd, experts)
		add(p+"ffn_gate_exps.weight", quant, embd, ffn, experts)
		add(p+"ffn_up_exps.weight", quant, embd, ffn, experts)
		add(p+"ffn_down_exps.weight", quant, ffn, embd, experts)
	}
	add("output_norm.weight", tensor.F32, embd)
	add("output.weight", quant, embd, vocab)
	return ws
}

// fakeBuffer is a buffer type whose rule is a plain function, so tests state AMX-like or CUDA-like rules without
// depending on those packages. Import is never reached by placement.
type fakeBuffer struct {
	name   string
	host   bool
	accept func(w backend.WeightInfo) (bool, string)
	packed func(w backend.WeightInfo) int64
}

func (f *fakeBuffer) Name() string { return f.name }
func (f *fakeBuffer) IsHost() bool { return f.host }
func (f *fakeBuffer) Accepts(w backend.WeightInfo) (bool, string) {
	if f.accept == nil {
		return true, "takes every weight"
	}
	return f.accept(w)
}
func (f *fakeBuffer) PackedBytes(w backend.WeightInfo) int64 {
	if f.packed == nil {
		return w.Bytes()
	}
	return f.packed(w)
}
func (f *fakeBuffer) Import(t *graph.Tensor) error {
	return fmt.Errorf("fake buffer %s imports nothing", f.name)
}

// fakeAMXRule mirrors the rule the amx package states (F32 never, ne1 % 32, K % block, experts only with a
// MUL_MAT_ID kernel, matmul weights only) so placement's tests do not depend on that package.
func fakeAMXRule(experts bool) func(w backend.WeightInfo) (bool, string) {
	return func(w backend.WeightInfo) (bool, string) {
		switch {
		case w.Type == tensor.F32:
			return false, "F32 tensors are not packed for AMX"
		case w.Op == graph.MulMatID && !experts:
			return false, "MUL_MAT_ID expert, AMX experts off"
		case w.Op != graph.MulMat && w.Op != graph.MulMatID:
			return false, w.Op.String() + " is not a matrix multiplication"
		case w.Ne[1]%32 != 0:
			return false, fmt.Sprintf("ne1 %d is not a multiple of 32", w.Ne[1])
		case w.Ne[0]%w.Type.BlockSize() != 0:
			return false, fmt.Sprintf("K %d is not a multiple of the %s block", w.Ne[0], w.Type)
		}
		return true, fmt.Sprintf("%s, ne1 %d %% 32 == 0", w.Type, w.Ne[1])
	}
}

// registry builds the four buffer types a plan knows. amxPacked, when set, makes AMX repack to a larger size.
func registry(experts bool, amxPacked func(backend.WeightInfo) int64) *backend.Registry {
	reg := backend.NewRegistry()
	reg.AddBufferType(&fakeBuffer{name: CPU, host: true})
	reg.AddBufferType(&fakeBuffer{name: AMX, host: true, accept: fakeAMXRule(experts), packed: amxPacked})
	reg.AddBufferType(&fakeBuffer{name: CUDA0})
	reg.AddBufferType(&fakeBuffer{name: CUDAHost, host: true})
	return reg
}
