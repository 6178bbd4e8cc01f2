package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"tilelab/amx"
)

func TestGenerateGreedyMatchesLlamaCppText(t *testing.T) {
	want, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(tinyModel(t))), "reference", "tiny-qwen3moe-q4_0", "greedy-16.txt"))
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd("generate", "-m", tinyModel(t), "-p", "Once upon a time", "-n", "16", "-t", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The reference file is the prompt and 16 greedy tokens as llama.cpp printed them, then two newlines.
	if got, w := strings.TrimSuffix(stdout, "\n"), strings.TrimRight(string(want), "\n"); got != w {
		t.Errorf("generated %q, llama.cpp %q", got, w)
	}
	if !strings.Contains(stderr, "prompt: 4 tokens") || !strings.Contains(stderr, "tok/s") {
		t.Errorf("no rates on stderr: %q", stderr)
	}
}

func TestUTF8StreamHoldsBackSplitCharacters(t *testing.T) {
	for _, c := range []struct {
		name   string
		pieces []string
		valid  bool
	}{
		{"a three-byte character split after its first byte", []string{"a\xe5", "\x90\x8d", "b"}, true},
		{"a four-byte character split in three", []string{"\xf0\x9f", "\x98", "\x80!"}, true},
		{"plain ASCII", []string{"he", "llo"}, true},
		{"an invalid byte is passed through", []string{"\xff", "x"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var sb strings.Builder
			u := utf8Stream{w: &sb}
			for _, p := range c.pieces {
				if err := u.write([]byte(p)); err != nil {
					t.Fatal(err)
				}
				if out := sb.String(); c.valid && !utf8.ValidString(out) {
					t.Fatalf("after %q the output %q ends in a partial character", p, out)
				}
			}
			u.flush()
			if got, want := sb.String(), strings.Join(c.pieces, ""); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

func TestGenerateWithAMXNeverTimesTheEmulator(t *testing.T) {
	code, stdout, stderr := runCmd("generate", "-m", tinyModel(t), "-p", "Once upon a time", "-n", "2", "-t", "2", "--amx", "all")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.HasPrefix(stdout, "Once upon a time") {
		t.Errorf("no text: %q", stdout)
	}
	if amx.Detect().Usable {
		if !strings.Contains(stderr, "tok/s") || !strings.Contains(stderr, "amx=all") {
			t.Errorf("AMX hardware here, but no rates for amx=all: %q", stderr)
		}
	} else if strings.Contains(stderr, "tok/s") || !strings.Contains(stderr, "emulator") {
		t.Errorf("the emulator was timed, or the note is missing: %q", stderr)
	}
}

func TestGenerateRejectsBadArguments(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"a negative thread count", []string{"-t", "-2"}, "-t -2"},
		{"a negative context", []string{"--ctx", "-1"}, "--ctx -1"},
		{"a top-p above one", []string{"--top-p", "1.5"}, "--top-p"},
	} {
		t.Run(c.name+" is a usage error naming the flag", func(t *testing.T) {
			code, _, stderr := runCmd(append([]string{"generate", "-m", "x.gguf", "-p", "x"}, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, c.want)
			}
		})
	}
}
