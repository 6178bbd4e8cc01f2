package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLogitsPrintsTokensArgmaxAndWritesTheLogits(t *testing.T) {
	out := filepath.Join(t.TempDir(), "logits.f32")
	for _, args := range [][]string{
		{"-p", "Once upon a time"},
		{"--tokens", "12522, 5193,264,882"},
	} {
		t.Run("logits "+strings.Join(args, " ")+" matches llama.cpp's argmax", func(t *testing.T) {
			code, stdout, stderr := runCmd(append([]string{"logits", "-m", tinyModel(t), "-t", "2", "-o", out}, args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(stdout, "tokens (4): 12522 5193 264 882\n") {
				t.Errorf("token ids missing:\n%s", stdout)
			}
			if !strings.Contains(stdout, "argmax: 7158 ") {
				t.Errorf("argmax is not llama.cpp's 7158:\n%s", stdout)
			}
			if strings.Count(stdout, "\n  ") != 5 {
				t.Errorf("want 5 top entries:\n%s", stdout)
			}
			st, err := os.Stat(out)
			if err != nil || st.Size() != 151936*4 {
				t.Fatalf("logits file: %v, %v bytes; want 151936 float32", err, st)
			}
		})
	}
}

func TestLogitsRejectsBadArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"-p", "x"}, 2, "-m FILE"},
		{"both a prompt and tokens", []string{"-m", "x.gguf", "-p", "x", "--tokens", "1"}, 2, "exactly one"},
		{"a token list with a word in it", []string{"-m", tinyModelPath(), "--tokens", "1,two"}, 1, `"two"`},
		{"a missing file", []string{"-m", "/nonexistent.gguf", "-p", "x"}, 1, "nonexistent"},
		{"an unknown flag", []string{"--bogus"}, 2, "bogus"},
		{"a negative thread count", []string{"-m", "x.gguf", "-p", "x", "-t", "-3"}, 2, "-t -3"},
		{"a negative context", []string{"-m", "x.gguf", "-p", "x", "--ctx", "-5"}, 2, "--ctx -5"},
	} {
		t.Run(c.name+" fails with exit "+map[int]string{1: "1", 2: "2"}[c.code], func(t *testing.T) {
			code, _, stderr := runCmd(append([]string{"logits"}, c.args...)...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, c.code, c.want)
			}
		})
	}
}

// tinyModelPath is tinyModel without a test to fail: argument tables are built before t exists.
func tinyModelPath() string { return "tiny-model-for-parse-errors.gguf" }
