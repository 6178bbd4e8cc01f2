package model

import (
	"fmt"
	"strings"
)

// Metadata is the part of a GGUF file the hyperparameters are read from; *gguf.File satisfies it.
type Metadata interface {
	Uint(key string) (uint64, bool)
	Float(key string) (float64, bool)
	Bool(key string) (bool, bool)
	String(key string) (string, bool)
	Architecture() string
}

// Hyper are a model's hyperparameters, read from GGUF metadata with llama.cpp's keys and defaults
// (llama-model.cpp, llm_load_hparams).
type Hyper struct {
	Arch     string // general.architecture: llama, qwen2, qwen3, qwen3moe
	Layers   int    // <arch>.block_count
	Embd     int    // <arch>.embedding_length
	Heads    int    // <arch>.attention.head_count
	HeadsKV  int    // <arch>.attention.head_count_kv (default: Heads)
	HeadDim  int    // <arch>.attention.key_length (default: Embd/Heads); value_length must match
	FFN      int    // <arch>.feed_forward_length (dense layers)
	Vocab    int    // rows of token_embd
	CtxTrain int    // <arch>.context_length

	Experts     int  // <arch>.expert_count (0: dense)
	ExpertsUsed int  // <arch>.expert_used_count
	ExpertFFN   int  // <arch>.expert_feed_forward_length
	ExpertNorm  bool // renormalise the chosen experts' weights (qwen3moe and mixtral-style llama do)

	NormEps   float32 // <arch>.attention.layer_norm_rms_epsilon
	RopeTheta float32 // <arch>.rope.freq_base (default 10000)
	RopeDims  int     // <arch>.rope.dimension_count (default: HeadDim)
	RopeNeoX  bool    // NeoX pairing (qwen*) rather than LLaMA's interleaved pairs
	QKNorm    bool    // RMSNorm on each query and key head before RoPE (qwen3, qwen3moe)
}

// Architectures lists the architectures Load understands.
var Architectures = []string{"llama", "qwen2", "qwen3", "qwen3moe"}

// ReadHyper reads the hyperparameters of a supported architecture. vocab is the number of token embeddings.
func ReadHyper(md Metadata, vocab int) (Hyper, error) {
	h := Hyper{Arch: md.Architecture(), Vocab: vocab}
	switch h.Arch {
	case "llama":
	case "qwen2":
		h.RopeNeoX = true
	case "qwen3":
		h.RopeNeoX, h.QKNorm = true, true
	case "qwen3moe":
		h.RopeNeoX, h.QKNorm = true, true
	case "":
		return h, fmt.Errorf("model: the file has no general.architecture")
	default:
		return h, fmt.Errorf("model: architecture %q is not supported (supported: %s)", h.Arch, strings.Join(Architectures, ", "))
	}
	key := func(k string) string { return h.Arch + "." + k }
	var err error
	req := func(k string) int {
		v, ok := md.Uint(key(k))
		if !ok && err == nil {
			err = fmt.Errorf("model: %s: required key %s is missing or not a non-negative integer", h.Arch, key(k))
		}
		return int(v)
	}
	opt := func(k string, def int) int {
		if v, ok := md.Uint(key(k)); ok {
			return int(v)
		}
		return def
	}
	h.Layers = req("block_count")
	h.Embd = req("embedding_length")
	h.Heads = req("attention.head_count")
	if err != nil {
		return h, err
	}
	if h.Layers <= 0 || h.Embd <= 0 || h.Heads <= 0 {
		return h, fmt.Errorf("model: %s: block_count %d, embedding_length %d and head_count %d must all be positive", h.Arch, h.Layers, h.Embd, h.Heads)
	}
	h.HeadsKV = opt("attention.head_count_kv", h.Heads)
	h.HeadDim = opt("attention.key_length", h.Embd/h.Heads)
	if vd := opt("attention.value_length", h.HeadDim); vd != h.HeadDim {
		return h, fmt.Errorf("model: %s: value_length %d differs from key_length %d, which TileLab does not support", h.Arch, vd, h.HeadDim)
	}
	h.CtxTrain = opt("context_length", 0)
	h.FFN = opt("feed_forward_length", 0)
	h.Experts = opt("expert_count", 0)
	h.ExpertsUsed = opt("expert_used_count", 0)
	h.ExpertFFN = opt("expert_feed_forward_length", h.FFN)
	// qwen3moe and mixtral-style llama renormalise the top-k weights (build_moe_ffn's norm_w = true); a file may
	// say otherwise with expert_weights_norm.
	h.ExpertNorm = true
	if v, ok := md.Bool(key("expert_weights_norm")); ok {
		h.ExpertNorm = v
	}
	h.RopeDims = opt("rope.dimension_count", h.HeadDim)
	h.RopeTheta = 10000
	if v, ok := md.Float(key("rope.freq_base")); ok {
		h.RopeTheta = float32(v)
	}
	// RoPE scaling changes every position's angle; running a file that asks for it with plain RoPE would give
	// wrong logits without any sign, so refuse what the forward pass does not implement.
	if typ, ok := md.String(key("rope.scaling.type")); ok && typ != "none" {
		return h, fmt.Errorf("model: %s: rope.scaling.type %q is not supported (only plain RoPE)", h.Arch, typ)
	}
	if f, ok := md.Float(key("rope.scaling.factor")); ok && f != 0 && f != 1 {
		return h, fmt.Errorf("model: %s: rope.scaling.factor %g is not supported (only plain RoPE)", h.Arch, f)
	}
	eps, ok := md.Float(key("attention.layer_norm_rms_epsilon"))
	if !ok {
		return h, fmt.Errorf("model: %s: required key %s is missing", h.Arch, key("attention.layer_norm_rms_epsilon"))
	}
	h.NormEps = float32(eps)
	return h, h.check()
}

// check rejects hyperparameters the forward pass cannot run, naming the bad value.
func (h Hyper) check() error {
	switch {
	case h.HeadsKV <= 0 || h.Heads%h.HeadsKV != 0:
		return fmt.Errorf("model: %d query heads cannot share %d KV heads", h.Heads, h.HeadsKV)
	case h.HeadDim <= 0:
		return fmt.Errorf("model: head size %d must be positive", h.HeadDim)
	case h.RopeDims <= 0 || h.RopeDims > h.HeadDim || h.RopeDims%2 != 0:
		return fmt.Errorf("model: rope.dimension_count %d must be even and at most the head size %d", h.RopeDims, h.HeadDim)
	case h.RopeTheta <= 0:
		return fmt.Errorf("model: rope.freq_base %g must be positive", h.RopeTheta)
	case h.Experts > 0 && (h.ExpertsUsed <= 0 || h.ExpertsUsed > h.Experts):
		return fmt.Errorf("model: expert_used_count %d must be within 1..expert_count %d", h.ExpertsUsed, h.Experts)
	case h.Arch == "qwen3moe" && h.Experts == 0:
		return fmt.Errorf("model: qwen3moe without expert_count")
	case h.Vocab <= 0:
		return fmt.Errorf("model: vocabulary of %d tokens", h.Vocab)
	}
	return nil
}

// MoE reports whether the model routes its FFN through experts.
func (h Hyper) MoE() bool { return h.Experts > 0 }
