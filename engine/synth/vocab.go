package synth

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"tilelab/engine/gguf"
)

// Token types, as llama.cpp's llama_token_type numbers them in tokenizer.ggml.token_type.
const (
	tokNormal  = 1
	tokUnknown = 2
	tokControl = 3
	tokUnused  = 5
	tokByte    = 6
)

// corpus is the text the built-in vocabularies learn their merges from: plain English about the subject at
// hand, long enough to yield a few hundred merges.
const corpus = `Once upon a time there was a small model that lived in a large file. Every morning the model woke up,
read its weights from the disk, and tried to guess the next token. Some days the guesses were good and some days
they were not, but the model kept trying. The tiles on the processor were fast, and the model liked to watch them
multiply the numbers in blocks of sixteen rows. When the prompt was short the tiles had little to do, and the
model wondered whether they were worth the trouble of packing the weights. When the prompt was long the tiles
were busy, and the model was glad of them. The experts in the middle of each layer took turns: for every token
the router chose eight of them, and the others rested. The model did not mind which experts worked, as long as the
answer came out right. At night the model wrote its cache to memory and waited for the next question. There is a
lesson here for anyone who builds such things: measure first, then decide where the work should run, and write
down why. The quick brown fox jumps over the lazy dog; the lazy dog does not mind. Numbers such as 0, 1, 2, 3, 4,
5, 6, 7, 8, 9, 10, 16, 32, 64, 128 and 256 appear in the text too, along with punctuation: commas, colons,
semicolons, question marks? and exclamation marks! "Quotes" and (brackets) are here as well.
`

// vocab is a tokenizer's metadata: the tokenizer.* keys of a GGUF file, and the vocabulary size.
type vocab struct {
	kv []gguf.KV
	n  int
}

// byteChars is GPT-2's byte-to-unicode table: printable Latin-1 bytes stand for themselves, the rest are moved
// to code points from 256 up, so that every byte has a visible, non-space character. The order is the order of
// the first 256 tokens in GPT-2 and Qwen vocabularies.
func byteChars() (order []byte, char [256]string) {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xa1; b <= 0xac; b++ {
		bs = append(bs, b)
	}
	for b := 0xae; b <= 0xff; b++ {
		bs = append(bs, b)
	}
	seen := map[int]bool{}
	for _, b := range bs {
		seen[b] = true
		char[b] = string(rune(b))
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !seen[b] {
			bs = append(bs, b)
			char[b] = string(rune(256 + n))
			n++
		}
	}
	for _, b := range bs {
		order = append(order, byte(b))
	}
	return order, char
}

// words splits text into words the way both tokenizers see them: a space belongs to the word after it, and
// punctuation stands alone.
func words(text string) []string {
	var out []string
	cur := ""
	flush := func() {
		if cur != "" {
			out = append(out, cur)
			cur = ""
		}
	}
	isWord := func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' }
	for _, r := range strings.ReplaceAll(text, "\n", " ") {
		switch {
		case r == ' ':
			flush()
			cur = " "
		case isWord(r):
			if cur != "" && cur != " " && !isWord(rune(cur[len(cur)-1])) {
				flush()
			}
			cur += string(r)
		default:
			if cur != " " {
				flush()
			}
			cur += string(r)
			flush()
		}
	}
	flush()
	return out
}

// learnMerges runs byte-pair-encoding training on the words, each split into the given symbols, and returns up
// to n merges in order. Ties go to the lexicographically smallest pair, so the result never varies.
func learnMerges(ws []string, split func(string) []string, n int) [][2]string {
	counts := map[string]int{}
	for _, w := range ws {
		counts[w]++
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	syms := make([][]string, len(keys))
	for i, w := range keys {
		syms[i] = split(w)
	}
	var merges [][2]string
	for len(merges) < n {
		pairs := map[[2]string]int{}
		for i, s := range syms {
			for j := 0; j+1 < len(s); j++ {
				pairs[[2]string{s[j], s[j+1]}] += counts[keys[i]]
			}
		}
		var best [2]string
		bestN := 1 // a pair seen once is not worth a token
		for p, c := range pairs {
			if c > bestN || c == bestN && c > 1 && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, c
			}
		}
		if bestN < 2 {
			break
		}
		merges = append(merges, best)
		for i, s := range syms {
			var out []string
			for j := 0; j < len(s); j++ {
				if j+1 < len(s) && s[j] == best[0] && s[j+1] == best[1] {
					out = append(out, best[0]+best[1])
					j++
				} else {
					out = append(out, s[j])
				}
			}
			syms[i] = out
		}
	}
	return merges
}

// maxMerges bounds the merges learned from the corpus; a vocabulary keeps as many as fit.
const maxMerges = 1024

// bpeMerges learns the byte-level merges once: training is deterministic, and not free.
var bpeMerges = sync.OnceValue(func() [][2]string {
	_, char := byteChars()
	split := func(w string) []string {
		var s []string
		for i := 0; i < len(w); i++ {
			s = append(s, char[w[i]])
		}
		return s
	}
	return learnMerges(words(corpus), split, maxMerges)
})

// spmMerges learns the SentencePiece pieces once, over characters with "▁" for space.
var spmMerges = sync.OnceValue(func() [][2]string {
	ws := words(corpus)
	for i, w := range ws {
		ws[i] = strings.ReplaceAll(w, " ", "▁")
	}
	split := func(w string) []string {
		var s []string
		for _, r := range w {
			s = append(s, string(r))
		}
		return s
	}
	return learnMerges(ws, split, maxMerges)
})

// builtinBPE is a byte-level BPE vocabulary in the style of Qwen's (tokenizer.ggml.model "gpt2", pre-tokenizer
// "qwen2"): the 256 byte characters, merges learned from the corpus, the three Qwen chat control tokens, and
// unused "[PADn]" tokens up to size, as Qwen pads its vocabulary.
func builtinBPE(size int) (vocab, error) {
	if size < 256+3 {
		return vocab{}, fmt.Errorf("synth: a built-in BPE vocabulary needs at least %d tokens, not %d", 256+3, size)
	}
	order, char := byteChars()
	toks := make([]string, 0, size)
	for _, b := range order {
		toks = append(toks, char[b])
	}
	const specials = 3
	merges := bpeMerges()
	if room := size - len(toks) - specials; len(merges) > room {
		merges = merges[:max(room, 0)]
	}
	mergeStrs := make([]string, len(merges))
	have := map[string]bool{}
	for i, m := range merges {
		mergeStrs[i] = m[0] + " " + m[1]
		// Two merges can spell the same token ("ab c" and "a bc"); a vocabulary lists each string once.
		if t := m[0] + m[1]; !have[t] {
			have[t] = true
			toks = append(toks, t)
		}
	}
	types := make([]int32, len(toks), size)
	for i := range types {
		types[i] = tokNormal
	}
	eot := len(toks)
	for _, s := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"} {
		toks = append(toks, s)
		types = append(types, tokControl)
	}
	if len(toks) > size {
		return vocab{}, fmt.Errorf("synth: a built-in BPE vocabulary needs at least %d tokens, not %d", len(toks), size)
	}
	for len(toks) < size {
		toks = append(toks, "[PAD"+strconv.Itoa(len(toks))+"]")
		types = append(types, tokUnused)
	}
	return vocab{n: size, kv: []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.Str("gpt2")},
		{Key: "tokenizer.ggml.pre", Value: gguf.Str("qwen2")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Strings(toks)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.Int32s(types)},
		{Key: "tokenizer.ggml.merges", Value: gguf.Strings(mergeStrs)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.Uint32(uint32(eot + 2))},
		{Key: "tokenizer.ggml.padding_token_id", Value: gguf.Uint32(uint32(eot))},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.Uint32(uint32(eot))},
		{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(false)},
	}}, nil
}

// builtinSPM is a SentencePiece vocabulary in the style of LLaMA's (tokenizer.ggml.model "llama"): <unk>, <s>,
// </s>, the 256 byte-fallback tokens <0x00>..<0xFF>, pieces learned from the corpus with "▁" for space and scores
// falling with merge rank (the tokenizer prefers high scores), then the corpus's single characters with the
// lowest scores, as in LLaMA's own vocabulary. Any text tokenizes: what no piece covers falls back to bytes.
func builtinSPM(size int) (vocab, error) {
	if size < 3+256 {
		return vocab{}, fmt.Errorf("synth: a built-in SentencePiece vocabulary needs at least %d tokens, not %d", 3+256, size)
	}
	toks := []string{"<unk>", "<s>", "</s>"}
	types := []int32{tokUnknown, tokControl, tokControl}
	scores := []float32{0, 0, 0}
	for b := 0; b < 256; b++ {
		toks = append(toks, fmt.Sprintf("<0x%02X>", b))
		types = append(types, tokByte)
		scores = append(scores, 0)
	}
	ws := words(corpus)
	var chars []string
	seen := map[string]bool{}
	for i, w := range ws {
		ws[i] = strings.ReplaceAll(w, " ", "▁")
		for _, r := range ws[i] {
			if c := string(r); !seen[c] {
				seen[c] = true
				chars = append(chars, c)
			}
		}
	}
	sort.Strings(chars)
	merges := spmMerges()
	if room := size - len(toks) - len(chars); len(merges) > room {
		merges = merges[:max(room, 0)]
	}
	have := map[string]bool{}
	for i, m := range merges {
		if t := m[0] + m[1]; !have[t] {
			have[t] = true
			toks = append(toks, t)
			types = append(types, tokNormal)
			scores = append(scores, -float32(i))
		}
	}
	for i, c := range chars {
		toks = append(toks, c)
		types = append(types, tokNormal)
		scores = append(scores, -float32(len(merges)+i))
	}
	if len(toks) > size {
		return vocab{}, fmt.Errorf("synth: a built-in SentencePiece vocabulary needs at least %d tokens, not %d", len(toks), size)
	}
	for len(toks) < size {
		toks = append(toks, "[PAD"+strconv.Itoa(len(toks))+"]")
		types = append(types, tokUnused)
		scores = append(scores, -1e9)
	}
	return vocab{n: size, kv: []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: gguf.Str("llama")},
		{Key: "tokenizer.ggml.pre", Value: gguf.Str("default")},
		{Key: "tokenizer.ggml.tokens", Value: gguf.Strings(toks)},
		{Key: "tokenizer.ggml.scores", Value: gguf.Float32s(scores)},
		{Key: "tokenizer.ggml.token_type", Value: gguf.Int32s(types)},
		{Key: "tokenizer.ggml.bos_token_id", Value: gguf.Uint32(1)},
		{Key: "tokenizer.ggml.eos_token_id", Value: gguf.Uint32(2)},
		{Key: "tokenizer.ggml.unknown_token_id", Value: gguf.Uint32(0)},
		{Key: "tokenizer.ggml.add_bos_token", Value: gguf.Bool(true)},
		{Key: "tokenizer.ggml.add_eos_token", Value: gguf.Bool(false)},
	}}, nil
}

// vocabFromFile copies every tokenizer.* key of a GGUF file, in its order.
func vocabFromFile(path string) (vocab, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return vocab{}, fmt.Errorf("synth: vocabulary: %w", err)
	}
	defer f.Close()
	var v vocab
	for _, e := range f.KV {
		if strings.HasPrefix(e.Key, "tokenizer.") {
			v.kv = append(v.kv, e) // values are copies, independent of the mapping closed below
		}
	}
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	if !ok || len(toks) == 0 {
		return vocab{}, fmt.Errorf("synth: vocabulary %s has no tokenizer.ggml.tokens", path)
	}
	v.n = len(toks)
	return v, nil
}
