package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tilelab/engine/gguf"
)

func TestSynthCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "tiny.gguf")
	t.Run("writes the preset, flags before or after the name, and reports size and time", func(t *testing.T) {
		code, stdout, stderr := runCmd("synth", "--quant", "q8_0", "tiny-llama", "--seed", "5", "-o", out, "-q")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "wrote "+out+": tiny-llama q8_0, 2 layers, 21 tensors, ") || !strings.Contains(stdout, " in ") {
			t.Errorf("stdout = %q", stdout)
		}
		f, err := gguf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if f.Architecture() != "llama" {
			t.Errorf("architecture %q", f.Architecture())
		}
		if ti, _ := f.Tensor("blk.0.attn_q.weight"); ti == nil || ti.Type.String() != "q8_0" {
			t.Errorf("attn_q is %+v", ti)
		}
	})
	t.Run("layers and vocabulary are taken from flags", func(t *testing.T) {
		vocab := filepath.Join(filepath.Dir(filepath.Dir(tinyModel(t))), "tokenizer", "ggml-vocab-llama-spm.gguf")
		p := filepath.Join(dir, "v.gguf")
		if code, _, stderr := runCmd("synth", "tiny-llama", "--layers", "1", "--vocab", vocab, "-o", p, "-q"); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		f, err := gguf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		toks, _ := f.Strings("tokenizer.ggml.tokens")
		if n, _ := f.Uint("llama.block_count"); n != 1 || len(toks) != 32000 {
			t.Errorf("block_count %d, %d tokens", n, len(toks))
		}
	})
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"an unknown preset lists the presets", []string{"synth", "tiny", "-o", "x.gguf"}, 1, "valid: bench-moe, qwen3-30b-a3b"},
		{"an unknown weight type lists the types", []string{"synth", "tiny-moe", "--quant", "q4_k", "-o", "x.gguf"}, 1, "valid: f32, f16, bf16, q8_0, q4_0"},
		{"a missing output is a usage error", []string{"synth", "tiny-moe"}, 2, "usage: tilelab synth PRESET"},
		{"a missing output is named", []string{"synth", "tiny-moe"}, 2, "-o OUT.gguf is required"},
		{"a missing preset is a usage error", []string{"synth", "-o", "x.gguf"}, 2, "presets: bench-moe"},
		{"a missing preset is named", []string{"synth", "-o", "x.gguf"}, 2, "want one PRESET, got none"},
		{"two presets are a usage error naming both", []string{"synth", "tiny-moe", "tiny-dense", "-o", "x.gguf"}, 2, `want one PRESET, got ["tiny-moe" "tiny-dense"]`},
		{"an unknown flag is a usage error", []string{"synth", "tiny-moe", "--bogus"}, 2, "flag provided but not defined: -bogus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCmd(c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
			if _, err := os.Stat("x.gguf"); err == nil {
				t.Error("a file was written")
			}
		})
	}
}
