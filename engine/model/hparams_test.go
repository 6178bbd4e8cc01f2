package model

import (
	"strings"
	"testing"
)

// meta is an in-memory Metadata.
type meta map[string]any

func (m meta) Uint(k string) (uint64, bool) {
	v, ok := m[k].(int)
	return uint64(v), ok && v >= 0
}
func (m meta) Float(k string) (float64, bool) { v, ok := m[k].(float64); return v, ok }
func (m meta) Bool(k string) (bool, bool)     { v, ok := m[k].(bool); return v, ok }
func (m meta) String(k string) (string, bool) { v, ok := m[k].(string); return v, ok }
func (m meta) Architecture() string           { s, _ := m["general.architecture"].(string); return s }

func qwen3moeMeta() meta {
	return meta{
		"general.architecture":                      "qwen3moe",
		"qwen3moe.block_count":                      4,
		"qwen3moe.embedding_length":                 256,
		"qwen3moe.attention.head_count":             8,
		"qwen3moe.attention.head_count_kv":          2,
		"qwen3moe.attention.key_length":             32,
		"qwen3moe.attention.layer_norm_rms_epsilon": 1e-6,
		"qwen3moe.rope.freq_base":                   1e6,
		"qwen3moe.expert_count":                     8,
		"qwen3moe.expert_used_count":                2,
		"qwen3moe.expert_feed_forward_length":       128,
		"qwen3moe.context_length":                   4096,
	}
}

func TestReadHyperFollowsLlamaCppKeysAndDefaults(t *testing.T) {
	h, err := ReadHyper(qwen3moeMeta(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := Hyper{Arch: "qwen3moe", Layers: 4, Embd: 256, Heads: 8, HeadsKV: 2, HeadDim: 32, Vocab: 1000, CtxTrain: 4096,
		Experts: 8, ExpertsUsed: 2, ExpertFFN: 128, ExpertNorm: true, NormEps: 1e-6, RopeTheta: 1e6, RopeDims: 32,
		RopeNeoX: true, QKNorm: true}
	if h != want {
		t.Fatalf("got %+v\nwant %+v", h, want)
	}
	t.Run("llama defaults: KV heads, head size, rope base and dims", func(t *testing.T) {
		h, err := ReadHyper(meta{"general.architecture": "llama", "llama.block_count": 2, "llama.embedding_length": 128,
			"llama.attention.head_count": 4, "llama.feed_forward_length": 256, "llama.attention.layer_norm_rms_epsilon": 1e-5}, 32)
		if err != nil {
			t.Fatal(err)
		}
		if h.HeadsKV != 4 || h.HeadDim != 32 || h.RopeTheta != 10000 || h.RopeDims != 32 || h.RopeNeoX || h.QKNorm || h.MoE() {
			t.Fatalf("defaults wrong: %+v", h)
		}
	})
}

func TestReadHyperNamesWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(meta)
		want string
	}{
		{"an unknown architecture", func(m meta) { m["general.architecture"] = "mamba" }, `"mamba" is not supported`},
		{"no architecture at all", func(m meta) { delete(m, "general.architecture") }, "no general.architecture"},
		{"a missing block count", func(m meta) { delete(m, "qwen3moe.block_count") }, "qwen3moe.block_count"},
		{"a zero embedding length", func(m meta) { m["qwen3moe.embedding_length"] = 0 }, "must all be positive"},
		{"query heads that KV heads do not divide", func(m meta) { m["qwen3moe.attention.head_count_kv"] = 3 }, "cannot share 3 KV heads"},
		{"an odd rope dimension count", func(m meta) { m["qwen3moe.rope.dimension_count"] = 31 }, "rope.dimension_count 31"},
		{"more experts used than exist", func(m meta) { m["qwen3moe.expert_used_count"] = 9 }, "expert_used_count 9"},
		{"no norm epsilon", func(m meta) { delete(m, "qwen3moe.attention.layer_norm_rms_epsilon") }, "layer_norm_rms_epsilon"},
		{"value heads unlike key heads", func(m meta) { m["qwen3moe.attention.value_length"] = 64 }, "value_length 64"},
		{"a MoE architecture without experts", func(m meta) { delete(m, "qwen3moe.expert_count") }, "without expert_count"},
		{"YaRN RoPE scaling", func(m meta) { m["qwen3moe.rope.scaling.type"] = "yarn" }, `rope.scaling.type "yarn" is not supported`},
		{"a linear RoPE scaling factor", func(m meta) { m["qwen3moe.rope.scaling.factor"] = 4.0 }, "rope.scaling.factor 4 is not supported"},
	} {
		t.Run(c.name+" is an error that says so", func(t *testing.T) {
			m := qwen3moeMeta()
			c.edit(m)
			_, err := ReadHyper(m, 1000)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
