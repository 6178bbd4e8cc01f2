package tokenizer

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	loadedMu sync.Mutex
	loaded   = map[string]*Tokenizer{}
)

// loadVocab builds (once per test binary) the tokenizer of a vocabulary file in testdata/tokenizer.
func loadVocab(t testing.TB, name string) *Tokenizer {
	t.Helper()
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tok, ok := loaded[name]; ok {
		return tok
	}
	tok, err := openTokenizer(filepath.Join(testdataDir(t), "tokenizer", name))
	if err != nil {
		t.Fatal(err)
	}
	loaded[name] = tok
	return tok
}

// readVectors reads llama.cpp's test-tokenizer-0 vectors: X.inp holds strings, each followed by a line
// "__ggml_vocab_test__"; X.out holds each string's ids on one line.
func readVectors(t *testing.T, base string) (inputs []string, want [][]int32) {
	t.Helper()
	inp, err := os.ReadFile(base + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(base + ".out")
	if err != nil {
		t.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	inputs = strings.Split(string(inp), sep)
	if inputs[len(inputs)-1] != "" {
		t.Fatalf("%s.inp does not end with the separator", base)
	}
	inputs = inputs[:len(inputs)-1]
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(inputs) {
		t.Fatalf("%s: %d inputs but %d output lines", base, len(inputs), len(lines))
	}
	for _, line := range lines {
		var ids []int32
		for _, f := range strings.Fields(line) {
			v, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s.out: %v", base, err)
			}
			ids = append(ids, int32(v))
		}
		want = append(want, ids)
	}
	return inputs, want
}

func TestLlamaCppVectors(t *testing.T) {
	for _, name := range []string{"qwen3-vocab.gguf", "ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"} {
		t.Run(name, func(t *testing.T) {
			tok := loadVocab(t, name)
			inputs, want := readVectors(t, filepath.Join(testdataDir(t), "tokenizer", name))
			for i, in := range inputs {
				t.Run(fmt.Sprintf("string %d %.20q encodes as llama.cpp does", i, in), func(t *testing.T) {
					// test-tokenizer-0 calls llama_tokenize(add_special=false, parse_special=false).
					got := tok.EncodeWith(in, EncodeOptions{})
					if fmt.Sprint(got) != fmt.Sprint(want[i]) {
						t.Errorf("Encode(%q)\n got %v\nwant %v", in, got, want[i])
					}
				})
			}
		})
	}
}

func TestReferencePromptEncodesToItsTokens(t *testing.T) {
	dir := filepath.Join(testdataDir(t), "reference", "tiny-qwen3moe-q4_0")
	prompt, err := os.ReadFile(filepath.Join(dir, "prompt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "prompt-tokens.i32"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]int32, len(raw)/4)
	for i := range want {
		want[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	tok := loadVocab(t, "../models/tiny-qwen3moe-q4_0.gguf")
	got := tok.Encode(string(prompt), true)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Encode(%q, true) = %v, want %v (no BOS for this vocabulary)", prompt, got, want)
	}
}

func TestFirstGreedyTokenPrintsAsLlamaCppPrintedIt(t *testing.T) {
	// llama.cpp's greedy continuation starts with token 7158 (summary.json's argmax), the first two bytes of a
	// three-byte character: streaming output must pass such bytes through unchanged.
	dir := filepath.Join(testdataDir(t), "reference", "tiny-qwen3moe-q4_0")
	text, err := os.ReadFile(filepath.Join(dir, "greedy-16.txt"))
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := os.ReadFile(filepath.Join(dir, "prompt.txt"))
	if err != nil {
		t.Fatal(err)
	}
	tok := loadVocab(t, "qwen3-vocab.gguf")
	want := append(append([]byte{}, prompt...), tok.TokenBytes(7158)...)
	if !strings.HasPrefix(string(text), string(want)) {
		t.Errorf("greedy-16.txt starts %q, want prefix %q", text[:min(len(text), len(want)+4)], want)
	}
}

// BenchmarkEncode tokenizes llama.cpp's test strings one by one, as separate prompts: every script and edge
// case they cover, with no repetition for the per-call word cache to exploit.
func BenchmarkEncode(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(testdataDir(b), "tokenizer", "qwen3-vocab.gguf.inp"))
	if err != nil {
		b.Fatal(err)
	}
	texts := strings.Split(string(raw), "\n__ggml_vocab_test__\n")
	for _, name := range []string{"qwen3-vocab.gguf", "ggml-vocab-llama-spm.gguf"} {
		b.Run(name, func(b *testing.B) {
			tok := loadVocab(b, name)
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				for _, s := range texts {
					tok.Encode(s, false)
				}
			}
		})
	}
}
