package tokenizer

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func words(s string, split func([]rune) []int) []string {
	cps := []rune(s)
	var out []string
	start := 0
	for _, end := range split(cps) {
		out = append(out, string(cps[start:end]))
		start = end
	}
	return out
}

func TestPreTokenizers(t *testing.T) {
	cases := []struct {
		name  string
		split func([]rune) []int
		in    string
		want  []string
	}{
		{"gpt-2 keeps a space with the word after it", splitGPT2, "Hello world", []string{"Hello", " world"}},
		{"gpt-2 leaves one space of a run for the next word", splitGPT2, "  Hello", []string{" ", " Hello"}},
		{"gpt-2 keeps trailing whitespace together", splitGPT2, "a  \n", []string{"a", "  \n"}},
		{"gpt-2 splits lower-case contractions", splitGPT2, "it's we'll", []string{"it", "'s", " we", "'ll"}},
		{"gpt-2 does not split upper-case contractions", splitGPT2, "IT'S", []string{"IT", "'", "S"}},
		{"gpt-2 keeps digit runs whole", splitGPT2, "3.14 15", []string{"3", ".", "14", " 15"}},
		{"gpt-2 groups punctuation", splitGPT2, "x!!? y", []string{"x", "!!?", " y"}},
		{"gpt-2 treats non-ASCII letters as letters", splitGPT2, " Äpfel ñ", []string{" Äpfel", " ñ"}},
		{"qwen2 splits digits one by one", splitQwen2, "x123", []string{"x", "1", "2", "3"}},
		{"qwen2 splits contractions in any case", splitQwen2, "I'M here", []string{"I", "'M", " here"}},
		{"qwen2 lets one punctuation mark lead a word", splitQwen2, "(foo", []string{"(foo"}},
		{"qwen2 ends a whitespace run after its last newline", splitQwen2, "a\n\n b", []string{"a", "\n\n", " b"}},
		{"qwen2 keeps newlines after punctuation", splitQwen2, "!!\n\nx", []string{"!!\n\n", "x"}},
		{"qwen2 leaves one space of a run for the next word", splitQwen2, "a   b", []string{"a", "  ", " b"}},
		{"qwen2 lets a tab lead a word", splitQwen2, "\tb", []string{"\tb"}},
		{"gpt-2 keeps a lone tab before a word apart", splitGPT2, "\tb", []string{"\t", "b"}},
		{"qwen2 treats U+3000 as whitespace", splitQwen2, "a\u3000\u3000", []string{"a", "\u3000\u3000"}},
		{"llama3 groups digits by three", splitLlama3, "x1234567 89", []string{"x", "123", "456", "7", " ", "89"}},
		{"llama3 splits contractions in any case", splitLlama3, "YOU'LL", []string{"YOU", "'LL"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := words(c.in, c.split); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
				t.Errorf("split(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// byteLevel spells s in the GPT-2 byte alphabet, as byte-level BPE vocabularies store tokens.
func byteLevel(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		b = utf8.AppendRune(b, byteRunes[s[i]])
	}
	return string(b)
}

// tinyBPE is a byte-level vocabulary with every byte, a few merged tokens and a control token.
func tinyBPE(t *testing.T, merges []string, extra ...string) *Tokenizer {
	t.Helper()
	var tokens []string
	var types []int32
	for b := 0; b < 256; b++ {
		tokens = append(tokens, byteLevel(string([]byte{byte(b)})))
		types = append(types, TypeNormal)
	}
	for _, e := range extra {
		tokens = append(tokens, e)
		types = append(types, TypeNormal)
	}
	tokens = append(tokens, "<|endoftext|>")
	types = append(types, TypeControl)
	tok, err := New(Vocab{Model: "gpt2", Pre: "qwen2", Tokens: tokens, Types: types, Merges: merges})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestLlama3TakesWholeWordsThatAreTokens(t *testing.T) {
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, byteLevel(string([]byte{byte(b)})))
	}
	tokens = append(tokens, byteLevel("ab"), byteLevel("abc"), "<|begin_of_text|>")
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = TypeNormal
	}
	types[len(types)-1] = TypeControl
	for _, c := range []struct {
		pre  string
		want []string
		bos  bool
	}{{"qwen2", []string{"ab", "c"}, false}, {"llama-bpe", []string{"abc"}, true}} {
		tok, err := New(Vocab{Model: "gpt2", Pre: c.pre, Tokens: tokens, Types: types, Merges: []string{"a b"},
			IDs: map[string]int64{"bos_token_id": int64(len(tokens) - 1)}})
		if err != nil {
			t.Fatal(err)
		}
		if got := pieces(tok, tok.EncodeWith("abc", EncodeOptions{})); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
			t.Errorf("%s: Encode(abc) = %q, want %q", c.pre, got, c.want)
		}
		if tok.AddsBOS() != c.bos {
			t.Errorf("%s: AddsBOS %v, want %v", c.pre, tok.AddsBOS(), c.bos)
		}
	}
}

func pieces(tok *Tokenizer, ids []int32) []string {
	var out []string
	for _, id := range ids {
		out = append(out, string(tok.TokenBytes(id)))
	}
	return out
}

func TestBPEMergesByRank(t *testing.T) {
	cases := []struct {
		name   string
		merges []string
		in     string
		want   []string
	}{
		{"the lower-ranked merge wins", []string{"b c", "a b", "a bc"}, "abc", []string{"abc"}},
		{"a merge that loses its pair never happens", []string{"b c", "a b"}, "abc", []string{"a", "bc"}},
		{"rank order flips the result", []string{"a b", "b c"}, "abc", []string{"ab", "c"}},
		{"equal pairs merge leftmost first", []string{"a a"}, "aaa", []string{"aa", "a"}},
		{"merges never cross words", []string{"a b"}, "a b", []string{"a", " ", "b"}},
		{"multi-byte characters start as their byte tokens", []string{}, "é", []string{"\xc3", "\xa9"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms := make([]string, len(c.merges))
			for i, m := range c.merges {
				l, r, _ := strings.Cut(m, " ")
				ms[i] = byteLevel(l) + " " + byteLevel(r)
			}
			if len(ms) == 0 {
				ms = []string{"x y"}
			}
			tok := tinyBPE(t, ms, byteLevel("ab"), byteLevel("bc"), byteLevel("abc"), byteLevel("aa"))
			got := pieces(tok, tok.EncodeWith(c.in, EncodeOptions{}))
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
				t.Errorf("Encode(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

// tinySPM is a SentencePiece vocabulary with byte fallback for '!' and '\n' only.
func tinySPM(t *testing.T, scoreA, scoreAB float32) *Tokenizer {
	t.Helper()
	v := Vocab{
		Model:  "llama",
		Tokens: []string{"<unk>", "<s>", "</s>", "▁", "a", "b", "▁a", "ab", "<0x21>", "<0x0A>", "▁b"},
		Scores: []float32{0, 0, 0, -5, -3, -3, scoreA, scoreAB, 0, 0, -2},
		Types: []int32{TypeUnknown, TypeControl, TypeControl, TypeNormal, TypeNormal, TypeNormal, TypeNormal,
			TypeNormal, TypeByte, TypeByte, TypeNormal},
	}
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSentencePiece(t *testing.T) {
	cases := []struct {
		name            string
		scoreA, scoreAB float32
		in              string
		opts            EncodeOptions
		want            []int32
	}{
		{"the higher-scored merge wins", -1, -0.5, "ab", EncodeOptions{}, []int32{3, 7}},
		{"scores decide, not position", 0, -0.5, "ab", EncodeOptions{}, []int32{6, 5}},
		{"a space becomes ▁ and joins the next word", 0, -0.5, "a b", EncodeOptions{}, []int32{6, 10}},
		{"characters without a token fall back to bytes", 0, -0.5, "a!\n", EncodeOptions{}, []int32{6, 8, 9}},
		{"BOS comes first when special tokens are added", 0, -0.5, "a", EncodeOptions{AddSpecial: true}, []int32{1, 6}},
		{"control text stays text unless parsed", 0, -0.5, "<s>", EncodeOptions{}, []int32{3, 0, 0, 0}},
		{"parsed control tokens restart the space prefix", 0, -0.5, "a</s>a",
			EncodeOptions{ParseSpecial: true}, []int32{6, 2, 6}},
		{"empty text gives only BOS", 0, -0.5, "", EncodeOptions{AddSpecial: true}, []int32{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok := tinySPM(t, c.scoreA, c.scoreAB)
			if got := tok.EncodeWith(c.in, c.opts); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
			}
		})
	}
}

func TestSentencePieceDecodeDropsThePrefixSpace(t *testing.T) {
	tok := tinySPM(t, 0, -0.5)
	ids := tok.Encode("a b!\n", true)
	// llama.cpp strips the prefix space from the first piece only, so after a rendered BOS it stays.
	if got := tok.Decode(ids); got != "<s> a b!\n" {
		t.Errorf("Decode(%v) = %q, want %q", ids, got, "<s> a b!\n")
	}
	if got := tok.Decode(ids[1:]); got != "a b!\n" {
		t.Errorf("Decode(%v) = %q, want %q", ids[1:], got, "a b!\n")
	}
}

func TestBOSFollowsMetadataThenVocabularyType(t *testing.T) {
	yes, no := true, false
	cases := []struct {
		name  string
		model string
		flag  *bool
		want  bool
	}{
		{"SentencePiece adds BOS by default", "llama", nil, true},
		{"BPE adds no BOS by default", "gpt2", nil, false},
		{"add_bos_token=false turns it off for SentencePiece", "llama", &no, false},
		{"add_bos_token=true turns it on for BPE", "gpt2", &yes, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Vocab{Model: c.model, Pre: "gpt-2", Tokens: []string{"<unk>", "<s>", "</s>", "a"},
				Merges: []string{"a a"}, IDs: map[string]int64{"bos_token_id": 1, "eos_token_id": 2}, Flags: map[string]bool{}}
			if c.flag != nil {
				v.Flags["add_bos_token"] = *c.flag
			}
			tok, err := New(v)
			if err != nil {
				t.Fatal(err)
			}
			ids := tok.Encode("a", true)
			if got := len(ids) > 0 && ids[0] == 1; got != c.want || tok.AddsBOS() != c.want {
				t.Errorf("Encode starts with BOS: %v, AddsBOS %v; want %v (ids %v)", got, tok.AddsBOS(), c.want, ids)
			}
		})
	}
}

func TestDefaultSpecialIDsOutsideASmallVocabularyAreAbsent(t *testing.T) {
	tok, err := New(Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: []string{"a", "b"}, Merges: []string{"a b"},
		Flags: map[string]bool{"add_bos_token": true}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != -1 || tok.EOS() != -1 || tok.AddsBOS() {
		t.Errorf("BOS %d, EOS %d, AddsBOS %v: want -1, -1, false (the BPE default id 11 does not exist)", tok.BOS(), tok.EOS(), tok.AddsBOS())
	}
	if ids := tok.Encode("ab", true); fmt.Sprint(ids) != "[0 1]" {
		t.Errorf("Encode(ab) = %v, want [0 1]", ids)
	}
}

func TestBadVocabulariesAreRefused(t *testing.T) {
	cases := []struct {
		name string
		v    Vocab
		want string
	}{
		{"no tokens", Vocab{Model: "llama"}, "no tokens"},
		{"unknown model", Vocab{Model: "t5", Tokens: []string{"a"}}, `model "t5"`},
		{"unknown pre-tokenizer", Vocab{Model: "gpt2", Pre: "tekken", Tokens: []string{"a"}, Merges: []string{"a a"}}, `"tekken"`},
		{"BPE without merges", Vocab{Model: "gpt2", Pre: "gpt-2", Tokens: []string{"a"}}, "no merges"},
		{"types of the wrong length", Vocab{Model: "llama", Tokens: []string{"a"}, Types: []int32{1, 1}}, "2 token types for 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.v)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("New: error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestQwen3SpecialTokens(t *testing.T) {
	tok := loadVocab(t, "qwen3-vocab.gguf")
	t.Run("chat markers are parsed when special tokens are on", func(t *testing.T) {
		ids := tok.Encode("<|im_start|>user\nhi<|im_end|>", true)
		if len(ids) < 2 || ids[0] != 151644 || ids[len(ids)-1] != 151645 {
			t.Errorf("ids %v: want 151644 first and 151645 last", ids)
		}
	})
	t.Run("chat markers are text when special tokens are off", func(t *testing.T) {
		ids := tok.Encode("<|im_end|>", false)
		if len(ids) < 2 {
			t.Errorf("ids %v: want the marker spelled as text", ids)
		}
	})
	t.Run("end-of-turn and end-of-text stop generation", func(t *testing.T) {
		for _, id := range []int32{151643, 151645} {
			if !tok.IsEOG(id) {
				t.Errorf("IsEOG(%d) = false", id)
			}
		}
		if tok.IsEOG(tok.Encode("Hello", false)[0]) {
			t.Error("an ordinary word is end-of-generation")
		}
	})
	t.Run("chat markers are control tokens and words are not", func(t *testing.T) {
		if !tok.IsControl(151644) || tok.IsControl(tok.Encode("Hello", false)[0]) || tok.IsControl(-1) {
			t.Errorf("IsControl(<|im_start|>) %v, IsControl(Hello) %v", tok.IsControl(151644), tok.IsControl(tok.Encode("Hello", false)[0]))
		}
	})
	t.Run("no BOS is added", func(t *testing.T) {
		if tok.AddsBOS() || tok.BOS() != 151643 || tok.EOS() != 151645 || tok.VocabSize() != 151936 {
			t.Errorf("AddsBOS %v BOS %d EOS %d VocabSize %d", tok.AddsBOS(), tok.BOS(), tok.EOS(), tok.VocabSize())
		}
	})
	t.Run("token bytes can split a character and streaming reassembles it", func(t *testing.T) {
		ids := tok.Encode("𒀀ꙮ naïve", false)
		var b []byte
		split := false
		for _, id := range ids {
			p := tok.TokenBytes(id)
			if !utf8.Valid(p) {
				split = true
			}
			b = append(b, p...)
		}
		if string(b) != "𒀀ꙮ naïve" || !split {
			t.Errorf("concatenated bytes %q (some token split a character: %v)", b, split)
		}
	})
}

func TestGPT2DecodeCleansSpacesLikeLlamaCpp(t *testing.T) {
	tok := loadVocab(t, "ggml-vocab-gpt-2.gguf")
	for _, c := range []struct{ in, want string }{
		{"Hello , world !", "Hello, world!"},
		{"it 's a dog 're", "it's a dog're"},
		{"a ' b", "a'b"},
	} {
		if got := tok.Decode(tok.Encode(c.in, false)); got != c.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzQwen3RoundTrip(f *testing.F) {
	for _, s := range []string{"", "Hello world", "  \n\t x", "<|im_start|>user\n你好<|im_end|>", "ied 4 ½ months",
		"3.14159 'll 'VE", "🦙 Äpfel\r\n", "\u00a0\u3000a"} {
		f.Add(s)
	}
	tok := loadVocab(f, "qwen3-vocab.gguf")
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true)
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d outside the vocabulary", s, id)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}

func TestUserDefinedTokensAreMatchedEvenAsPlainText(t *testing.T) {
	tok := loadVocab(t, "qwen3-vocab.gguf")
	think := tok.ids["<think>"]
	if think == 0 || tok.attrs[think]&attrUserDefined == 0 {
		t.Fatalf("<think> (id %d) is not a user-defined token in this vocabulary", think)
	}
	ids := tok.EncodeWith("a<think>b", EncodeOptions{})
	if len(ids) != 3 || ids[1] != think {
		t.Errorf("Encode(a<think>b) = %v, want the user-defined token %d between a and b", ids, think)
	}
}

func FuzzLlamaSPMRoundTrip(f *testing.F) {
	for _, s := range []string{"", " ", "Hello world", "  leading", "\n\n\tx", "<s>not special</s>", "😀 Äpfel 你好", "a\u00a0b"} {
		f.Add(s)
	}
	tok := loadVocab(f, "ggml-vocab-llama-spm.gguf")
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.EncodeWith(s, EncodeOptions{})
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d outside the vocabulary", s, id)
			}
		}
		if !utf8.ValidString(s) {
			return
		}
		// The space SentencePiece prefixes is dropped again by Decode, so plain text survives the trip.
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	})
}
