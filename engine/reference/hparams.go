package reference

import (
	"fmt"

	"tilelab/engine/gguf"
)

// hparams are the hyperparameters the forward pass needs, read from GGUF metadata with llama.cpp's key names
// and defaults. This reading is deliberately independent of engine/model, so the oracle is a second opinion.
type hparams struct {
	arch           string
	nLayer         int
	nEmbd          int
	nHead, nHeadKV int
	headDim        int // key/query head size
	headDimV       int // value head size
	nFF            int // dense FFN size
	nRot           int // rotated dimensions per head
	ropeBase       float64
	ropeScale      float64 // positions are multiplied by this (1 / linear scaling factor)
	neox           bool    // RoPE rotates (i, i+nRot/2) pairs rather than (2i, 2i+1)
	eps            float64
	qkNorm         bool
	nExpert        int
	nExpertUsed    int
	nFFExp         int
	normTopK       bool // renormalise the selected experts' weights to sum to 1
}

// archRoPE says which architectures this oracle knows and how each rotates: true for NeoX-style pairs.
var archRoPE = map[string]bool{"llama": false, "qwen2": true, "qwen3": true, "qwen3moe": true}

func readHParams(f *gguf.File) (hparams, error) {
	h := hparams{arch: f.Architecture()}
	neox, ok := archRoPE[h.arch]
	if !ok {
		return h, fmt.Errorf("reference: architecture %q is not supported (supported: llama, qwen2, qwen3, qwen3moe)", h.arch)
	}
	h.neox = neox
	key := func(k string) string { return h.arch + "." + k }
	var err error
	uintKey := func(k string, def int) int {
		if err != nil {
			return 0
		}
		if v, ok := f.Uint(key(k)); ok {
			return int(min(v, 1<<31))
		}
		// Some converters write per-layer arrays; accept one whose entries agree.
		if a, ok := f.Int32s(key(k)); ok && len(a) > 0 {
			for _, x := range a {
				if x != a[0] {
					err = fmt.Errorf("reference: %s differs between layers (%v), which this oracle does not support", key(k), a)
				}
			}
			return int(a[0])
		}
		if def < 0 {
			err = fmt.Errorf("reference: metadata has no %s", key(k))
		}
		return def
	}
	floatKey := func(k string, def float64) float64 {
		if v, ok := f.Float(key(k)); ok {
			return v
		}
		return def
	}
	h.nLayer = uintKey("block_count", -1)
	h.nEmbd = uintKey("embedding_length", -1)
	h.nHead = uintKey("attention.head_count", -1)
	h.nHeadKV = uintKey("attention.head_count_kv", h.nHead)
	if err != nil {
		return h, err
	}
	if h.nHead <= 0 || h.nHeadKV <= 0 || h.nHead%h.nHeadKV != 0 {
		return h, fmt.Errorf("reference: %d query heads cannot share %d key/value heads", h.nHead, h.nHeadKV)
	}
	h.headDim = uintKey("attention.key_length", h.nEmbd/h.nHead)
	h.headDimV = uintKey("attention.value_length", h.headDim)
	h.nRot = uintKey("rope.dimension_count", h.headDim)
	h.nFF = uintKey("feed_forward_length", 0)
	h.nExpert = uintKey("expert_count", 0)
	h.nExpertUsed = uintKey("expert_used_count", 0)
	h.nFFExp = uintKey("expert_feed_forward_length", h.nFF)
	if err != nil {
		return h, err
	}
	if h.nRot > h.headDim || h.nRot%2 != 0 || h.nRot <= 0 {
		return h, fmt.Errorf("reference: rope.dimension_count %d does not fit head size %d", h.nRot, h.headDim)
	}
	h.ropeBase = floatKey("rope.freq_base", 10000)
	h.eps = floatKey("attention.layer_norm_rms_epsilon", 1e-5)
	h.ropeScale = 1
	if t, ok := f.String(key("rope.scaling.type")); ok && t != "none" {
		if t != "linear" {
			return h, fmt.Errorf("reference: rope scaling %q is not supported (only linear)", t)
		}
		if factor := floatKey("rope.scaling.factor", 1); factor > 0 {
			h.ropeScale = 1 / factor
		}
	}
	h.qkNorm = h.arch == "qwen3" || h.arch == "qwen3moe"
	if h.arch == "qwen3moe" {
		if h.nExpert <= 0 || h.nExpertUsed <= 0 || h.nExpertUsed > h.nExpert {
			return h, fmt.Errorf("reference: qwen3moe needs 0 < expert_used_count (%d) <= expert_count (%d)", h.nExpertUsed, h.nExpert)
		}
		// llama.cpp's qwen3moe graph always renormalises; a file may say otherwise explicitly.
		h.normTopK = true
		if b, ok := f.Bool(key("expert_weights_norm")); ok {
			h.normTopK = b
		}
	}
	return h, nil
}
