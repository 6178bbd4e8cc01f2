package synth

import (
	"fmt"
	"strings"
	"testing"

	"tilelab/engine/gguf"
)

func vocabKV(t *testing.T, v vocab) *gguf.File {
	t.Helper()
	f, err := gguf.NewFile(v.kv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBuiltinBPEVocabularyIsWhatLlamaCppNeeds(t *testing.T) {
	v, err := builtinBPE(512)
	if err != nil {
		t.Fatal(err)
	}
	f := vocabKV(t, v)
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	types, _ := f.Int32s("tokenizer.ggml.token_type")
	merges, _ := f.Strings("tokenizer.ggml.merges")
	index := map[string]int{}
	for i, s := range toks {
		index[s] = i
	}
	t.Run("it has 512 tokens, each listed once", func(t *testing.T) {
		if len(toks) != 512 || len(types) != 512 || len(index) != 512 {
			t.Errorf("%d tokens, %d types, %d distinct", len(toks), len(types), len(index))
		}
	})
	t.Run("every byte has its GPT-2 character, newline (Ċ) and space (Ġ) included", func(t *testing.T) {
		_, char := byteChars()
		for b := 0; b < 256; b++ {
			if i, ok := index[char[b]]; !ok || i >= 256 {
				t.Fatalf("byte %#x (%q) missing from the first 256 tokens", b, char[b])
			}
		}
		if char['\n'] != "Ċ" || char[' '] != "Ġ" || toks[0] != "!" {
			t.Errorf("newline %q space %q first token %q", char['\n'], char[' '], toks[0])
		}
	})
	t.Run("it learned a few hundred merges, each joining existing tokens into one", func(t *testing.T) {
		if len(merges) < 150 {
			t.Errorf("only %d merges", len(merges))
		}
		for _, m := range merges {
			a, b, ok := strings.Cut(m, " ")
			_, okA := index[a]
			_, okB := index[b]
			_, okAB := index[a+b]
			if !ok || !okA || !okB || !okAB {
				t.Fatalf("merge %q refers to missing tokens", m)
			}
		}
	})
	t.Run("the control tokens are typed control and named by the special ids", func(t *testing.T) {
		eos, _ := f.Uint("tokenizer.ggml.eos_token_id")
		bos, _ := f.Uint("tokenizer.ggml.bos_token_id")
		if toks[eos] != "<|im_end|>" || toks[bos] != "<|endoftext|>" || types[eos] != tokControl || types[bos] != tokControl {
			t.Errorf("eos %d %q, bos %d %q", eos, toks[eos], bos, toks[bos])
		}
		if add, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || add {
			t.Error("Qwen-style vocabularies add no BOS")
		}
	})
	t.Run("padding tokens are unused", func(t *testing.T) {
		if toks[511] != "[PAD511]" || types[511] != tokUnused {
			t.Errorf("last token %q type %d", toks[511], types[511])
		}
	})
	t.Run("a size too small is refused", func(t *testing.T) {
		if _, err := builtinBPE(100); err == nil {
			t.Error("no error")
		}
	})
}

func TestBuiltinSentencePieceVocabularyIsWhatLlamaCppNeeds(t *testing.T) {
	v, err := builtinSPM(512)
	if err != nil {
		t.Fatal(err)
	}
	f := vocabKV(t, v)
	toks, _ := f.Strings("tokenizer.ggml.tokens")
	types, _ := f.Int32s("tokenizer.ggml.token_type")
	scores, _ := f.Float32s("tokenizer.ggml.scores")
	t.Run("unk, bos and eos come first with their types", func(t *testing.T) {
		if toks[0] != "<unk>" || toks[1] != "<s>" || toks[2] != "</s>" || types[0] != tokUnknown || types[1] != tokControl || types[2] != tokControl {
			t.Errorf("%q %q %q types %v", toks[0], toks[1], toks[2], types[:3])
		}
		for k, want := range map[string]uint64{"tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0} {
			if n, ok := f.Uint(k); !ok || n != want {
				t.Errorf("%s = %d", k, n)
			}
		}
		if add, ok := f.Bool("tokenizer.ggml.add_bos_token"); !ok || !add {
			t.Error("SentencePiece vocabularies add BOS")
		}
	})
	t.Run("the 256 byte-fallback tokens follow as <0x00>..<0xFF>, typed byte", func(t *testing.T) {
		for b := 0; b < 256; b++ {
			if toks[3+b] != fmt.Sprintf("<0x%02X>", b) || types[3+b] != tokByte {
				t.Fatalf("token %d is %q type %d", 3+b, toks[3+b], types[3+b])
			}
		}
	})
	t.Run("pieces use ▁ for space, scores fall with rank, and every token is distinct", func(t *testing.T) {
		seen := map[string]bool{}
		for i, s := range toks {
			if seen[s] {
				t.Fatalf("token %q repeated", s)
			}
			seen[s] = true
			if i > 259 && types[i] == tokNormal && scores[i] > scores[i-1] {
				t.Fatalf("score rises at %d (%q): %g after %g", i, s, scores[i], scores[i-1])
			}
		}
		if !seen["▁"] || !seen["▁the"] || len(toks) != 512 || len(scores) != 512 {
			t.Errorf("▁ %v, ▁the %v, %d tokens", seen["▁"], seen["▁the"], len(toks))
		}
	})
}
