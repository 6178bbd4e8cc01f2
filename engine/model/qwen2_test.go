package model

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"tilelab/engine/gguf"
	"tilelab/engine/reference"
	"tilelab/engine/tensor"
)

// writeQwen2 writes a small qwen2 model (q/k/v biases, no QK-norm, NeoX RoPE, tied output) with random F32
// weights, since engine/synth has no qwen2 preset.
func writeQwen2(t *testing.T, path string, skip ...string) {
	t.Helper()
	const layers, embd, heads, kvHeads, headDim, ff, vocab = 2, 64, 4, 2, 16, 96, 50
	a := "qwen2."
	kv := []gguf.KV{
		{Key: "general.architecture", Value: gguf.Str("qwen2")},
		{Key: a + "block_count", Value: gguf.Uint32(layers)},
		{Key: a + "embedding_length", Value: gguf.Uint32(embd)},
		{Key: a + "feed_forward_length", Value: gguf.Uint32(ff)},
		{Key: a + "attention.head_count", Value: gguf.Uint32(heads)},
		{Key: a + "attention.head_count_kv", Value: gguf.Uint32(kvHeads)},
		{Key: a + "attention.layer_norm_rms_epsilon", Value: gguf.Float32(1e-6)},
		{Key: a + "rope.freq_base", Value: gguf.Float32(1e6)},
		{Key: a + "context_length", Value: gguf.Uint32(256)},
	}
	tis := []gguf.TensorInfo{
		gguf.NewTensorInfo("token_embd.weight", tensor.F32, embd, vocab),
		gguf.NewTensorInfo("output_norm.weight", tensor.F32, embd),
	}
	for l := 0; l < layers; l++ {
		p := fmt.Sprintf("blk.%d.", l)
		tis = append(tis,
			gguf.NewTensorInfo(p+"attn_norm.weight", tensor.F32, embd),
			gguf.NewTensorInfo(p+"attn_q.weight", tensor.F32, embd, heads*headDim),
			gguf.NewTensorInfo(p+"attn_q.bias", tensor.F32, heads*headDim),
			gguf.NewTensorInfo(p+"attn_k.weight", tensor.F32, embd, kvHeads*headDim),
			gguf.NewTensorInfo(p+"attn_k.bias", tensor.F32, kvHeads*headDim),
			gguf.NewTensorInfo(p+"attn_v.weight", tensor.F32, embd, kvHeads*headDim),
			gguf.NewTensorInfo(p+"attn_v.bias", tensor.F32, kvHeads*headDim),
			gguf.NewTensorInfo(p+"attn_output.weight", tensor.F32, heads*headDim, embd),
			gguf.NewTensorInfo(p+"ffn_norm.weight", tensor.F32, embd),
			gguf.NewTensorInfo(p+"ffn_gate.weight", tensor.F32, embd, ff),
			gguf.NewTensorInfo(p+"ffn_up.weight", tensor.F32, embd, ff),
			gguf.NewTensorInfo(p+"ffn_down.weight", tensor.F32, ff, embd),
		)
	}
	for _, name := range skip {
		for i := range tis {
			if tis[i].Name == name {
				tis = append(tis[:i], tis[i+1:]...)
				break
			}
		}
	}
	f, err := gguf.NewFile(kv, tis)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	err = gguf.WriteFile(path, f, func(ti *gguf.TensorInfo, w io.Writer) error {
		b := make([]byte, ti.Size)
		for i := 0; i < len(b); i += 4 {
			v := float32(rng.NormFloat64() * 0.1)
			if strings.HasSuffix(ti.Name, "norm.weight") {
				v = 1 + v
			}
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(v))
		}
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Qwen2 has no synthetic preset, so this test builds one and holds the engine to the float32 oracle, every
// position of a prompt and a decoded token after it.
func TestQwen2AgreesWithTheOracle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qwen2.gguf")
	writeQwen2(t, path)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tokens := []int32{3, 17, 42, 8, 49, 0, 21}
	for _, ref := range []bool{true, false} {
		t.Run(map[bool]string{true: "reference kernels", false: "fast kernels"}[ref], func(t *testing.T) {
			m, err := Load(f, Options{Reference: ref, Threads: 2, Ctx: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if m.Hyper.QKNorm || !m.Hyper.RopeNeoX || m.layers[0].bq == nil {
				t.Fatalf("qwen2 read as %+v", m.Hyper)
			}
			all, err := m.EvalAll(context.Background(), tokens[:6])
			if err != nil {
				t.Fatal(err)
			}
			want, err := reference.ForwardFile(f, tokens[:6], reference.Options{AllPositions: true})
			if err != nil {
				t.Fatal(err)
			}
			v := m.Hyper.Vocab
			for p, row := range want {
				if rel := relErr(all[p*v:(p+1)*v], row); rel > 1e-4 {
					t.Errorf("position %d: relative L2 %.3g", p, rel)
				}
			}
			next, err := m.Eval(context.Background(), tokens[6:])
			if err != nil {
				t.Fatal(err)
			}
			last, err := reference.ForwardFile(f, tokens, reference.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if rel := relErr(next, last[0]); rel > 1e-4 {
				t.Errorf("decoded token: relative L2 %.3g", rel)
			}
		})
	}
}

func TestLoadNamesAMissingTensor(t *testing.T) {
	for _, name := range []string{"blk.1.ffn_down.weight", "blk.0.attn_k.bias", "output_norm.weight"} {
		t.Run("without "+name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "qwen2.gguf")
			writeQwen2(t, path, name)
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			m, err := Load(f, Options{Threads: 1, Ctx: 8})
			if err == nil {
				m.Close()
				t.Fatal("loaded a model with a tensor missing")
			}
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error %q does not name %s", err, name)
			}
		})
	}
}
