package synth

import (
	"fmt"
	"sort"
	"strings"
)

// Shape is an architecture and its dimensions: everything a preset fixes except the weight type and vocabulary.
type Shape struct {
	Arch       string  // llama.cpp architecture name: "qwen3", "qwen3moe" or "llama"
	Layers     int     // block_count
	Embd       int     // embedding_length
	Heads      int     // attention.head_count
	KVHeads    int     // attention.head_count_kv
	HeadDim    int     // attention.key_length and value_length
	FF         int     // feed_forward_length (dense FFN; for qwen3moe llama.cpp records the dense size too)
	Experts    int     // expert_count (0 for dense models)
	ExpertUsed int     // expert_used_count
	ExpertFF   int     // expert_feed_forward_length
	Vocab      int     // vocabulary size when the built-in vocabulary is used
	Context    int     // context_length
	RopeBase   float32 // rope.freq_base
	NormEps    float32 // attention.layer_norm_rms_epsilon
	SPM        bool    // built-in vocabulary is SentencePiece (llama) rather than byte-level BPE (qwen)
}

// String summarises the shape in one line.
func (s Shape) String() string {
	moe := ""
	if s.MoE() {
		moe = fmt.Sprintf(", %d experts (%d used, FFN %d)", s.Experts, s.ExpertUsed, s.ExpertFF)
	}
	return fmt.Sprintf("%s: %d layers, embedding %d, %d/%d heads of %d, FFN %d%s, vocabulary %d, context %d",
		s.Arch, s.Layers, s.Embd, s.Heads, s.KVHeads, s.HeadDim, s.FF, moe, s.Vocab, s.Context)
}

// MoE reports whether the shape has routed experts.
func (s Shape) MoE() bool { return s.Experts > 0 }

// presets are the shapes by name. The tiny ones keep every dimension a multiple of 32 (so every weight
// quantizes to Q8_0 and Q4_0) and head dimensions of at least 32, and make the query width differ from the
// embedding where the real models do, so that no transpose or shape mix-up can pass unnoticed.
var presets = map[string]Shape{
	// Dense Qwen3: QK-norm, GQA 2:1, query width 256 against an embedding of 128.
	"tiny-dense": {Arch: "qwen3", Layers: 2, Embd: 128, Heads: 4, KVHeads: 2, HeadDim: 64, FF: 384,
		Vocab: 512, Context: 40960, RopeBase: 1e6, NormEps: 1e-6},
	// Qwen3-MoE with the dimensions of ../shared/testdata/models/tiny-qwen3moe-q4_0.gguf, which llama.cpp's own
	// tools wrote: with that file's vocabulary, the header is the same tensor for tensor.
	"tiny-moe": {Arch: "qwen3moe", Layers: 4, Embd: 256, Heads: 8, KVHeads: 2, HeadDim: 32, FF: 512,
		Experts: 8, ExpertUsed: 2, ExpertFF: 128, Vocab: 512, Context: 40960, RopeBase: 1e6, NormEps: 1e-6},
	// Llama with a SentencePiece vocabulary (byte fallback) and GQA 2:1.
	"tiny-llama": {Arch: "llama", Layers: 2, Embd: 128, Heads: 4, KVHeads: 2, HeadDim: 32, FF: 256,
		Vocab: 512, Context: 4096, RopeBase: 10000, NormEps: 1e-5, SPM: true},
	// The shapes of Qwen3-30B-A3B (config.json of Qwen/Qwen3-30B-A3B).
	"qwen3-30b-a3b": {Arch: "qwen3moe", Layers: 48, Embd: 2048, Heads: 32, KVHeads: 4, HeadDim: 128, FF: 6144,
		Experts: 128, ExpertUsed: 8, ExpertFF: 768, Vocab: 151936, Context: 40960, RopeBase: 1e6, NormEps: 1e-6},
	// Qwen3-30B-A3B cut to 4 layers, for quick benchmarks with full-size layers.
	"bench-moe": {Arch: "qwen3moe", Layers: 4, Embd: 2048, Heads: 32, KVHeads: 4, HeadDim: 128, FF: 6144,
		Experts: 128, ExpertUsed: 8, ExpertFF: 768, Vocab: 151936, Context: 40960, RopeBase: 1e6, NormEps: 1e-6},
	// The shapes of Qwen3-8B (config.json of Qwen/Qwen3-8B), for dense measurements.
	"qwen3-8b": {Arch: "qwen3", Layers: 36, Embd: 4096, Heads: 32, KVHeads: 8, HeadDim: 128, FF: 12288,
		Vocab: 151936, Context: 40960, RopeBase: 1e6, NormEps: 1e-6},
}

// Presets lists the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns a preset's shape, or an error listing the valid names.
func Lookup(preset string) (Shape, error) {
	s, ok := presets[preset]
	if !ok {
		return Shape{}, fmt.Errorf("synth: unknown preset %q (valid: %s)", preset, strings.Join(Presets(), ", "))
	}
	return s, nil
}
