package tokenizer

import (
	"testing"

	"tilelab/engine/synth"
)

func TestSynthVocabulariesTokenize(t *testing.T) {
	const text = "Once upon a time, a small model read 42 GGUF files\nand said: naïve café 🦙!"
	for _, c := range []struct {
		preset string
		bos    bool
	}{{"tiny-dense", false}, {"tiny-moe", false}, {"tiny-llama", true}} {
		t.Run(c.preset+"'s built-in vocabulary round-trips text", func(t *testing.T) {
			f, err := synth.Header(c.preset, synth.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			ids := tok.Encode(text, true)
			if got := len(ids) > 0 && ids[0] == tok.BOS(); got != c.bos {
				t.Errorf("starts with BOS: %v, want %v", got, c.bos)
			}
			if c.bos {
				ids = ids[1:]
			}
			if len(ids) >= len(text) {
				t.Errorf("%d tokens for %d bytes: no merges applied", len(ids), len(text))
			}
			if got := tok.Decode(ids); got != text {
				t.Errorf("Decode(Encode(text)) = %q", got)
			}
			if !tok.IsEOG(tok.EOS()) {
				t.Errorf("EOS %d is not end-of-generation", tok.EOS())
			}
		})
	}
}
