// Package tokenizer turns text into token ids and back, from the vocabulary a GGUF file carries, with the
// rules llama.cpp applies: byte-level BPE (tokenizer.ggml.model "gpt2", pre-tokenizers "gpt-2", "qwen2" and
// Llama 3's "llama-bpe") and the LLaMA SentencePiece style (model "llama": score-ordered merges, "▁" for
// spaces, <0xXX> byte fallback). Special tokens (control, user-defined) are matched in the text before either
// runs.
package tokenizer

import (
	"fmt"
	"sort"
	"strings"

	"tilelab/engine/gguf"
)

// Token types as GGUF stores them in tokenizer.ggml.token_type (llama.cpp's llama_token_type).
const (
	TypeUndefined   = 0
	TypeNormal      = 1
	TypeUnknown     = 2
	TypeControl     = 3
	TypeUserDefined = 4
	TypeUnused      = 5
	TypeByte        = 6
)

// attr is a token's attribute set (llama.cpp's llama_token_attr); a token may gain bits while loading.
type attr uint32

const (
	attrUnknown attr = 1 << iota
	attrUnused
	attrNormal
	attrControl
	attrUserDefined
	attrByte
)

// Vocab is the tokenizer part of a model's metadata, with GGUF's key names (after "tokenizer.ggml.").
// FromGGUF fills it from a file; tests and synthetic models may build one directly.
type Vocab struct {
	Model  string    // "gpt2" (byte-level BPE) or "llama" (SentencePiece)
	Pre    string    // pre-tokenizer of a BPE vocabulary: "gpt-2", "qwen2", "llama-bpe"
	Tokens []string  // token texts by id
	Scores []float32 // SentencePiece merge scores by id; may be empty for BPE
	Types  []int32   // token types by id (Type* constants); empty means all normal
	Merges []string  // BPE merges "left right", best first

	// IDs holds special token ids present in the metadata, keyed like "bos_token_id", "eos_token_id",
	// "eot_token_id", "eom_token_id", "unknown_token_id", "padding_token_id", "fim_pad_token_id".
	IDs map[string]int64
	// Flags holds booleans present in the metadata: "add_bos_token", "add_eos_token", "add_space_prefix".
	Flags map[string]bool
}

// Tokenizer encodes and decodes text for one vocabulary. It is safe for concurrent use.
type Tokenizer struct {
	spm            bool
	pre            func([]rune) []int
	texts          []string
	scores         []float32
	attrs          []attr
	ids            map[string]int32
	rankByID       map[uint64]int    // merge ranks of pairs of tokens, keyed by their ids
	rankByText     map[[2]string]int // merge ranks of pairs whose parts are not both tokens
	special        []int32           // control, user-defined and unknown tokens, longest text first
	eog            map[int32]bool
	bos, eos, unk  int32
	addBOS, addEOS bool
	addSpacePrefix bool
	cleanSpaces    bool
	ignoreMerges   bool // a whole pre-tokenized word that is a token is taken as is (Llama 3)
}

// EncodeOptions says what Encode adds and recognises besides the text's own tokens.
type EncodeOptions struct {
	// AddSpecial adds BOS (and EOS) where the vocabulary asks for them (add_bos_token, add_eos_token, or the
	// vocabulary type's default: BOS for SentencePiece, none for BPE).
	AddSpecial bool
	// ParseSpecial turns the text of control tokens ("<|im_start|>") into those tokens. User-defined tokens
	// are always matched, as llama.cpp does.
	ParseSpecial bool
}

// New builds a tokenizer from vocabulary metadata, applying llama.cpp's defaults and special-token rules.
func New(v Vocab) (*Tokenizer, error) {
	n := len(v.Tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: vocabulary has no tokens")
	}
	if len(v.Types) != 0 && len(v.Types) != n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	t := &Tokenizer{
		texts:  make([]string, n),
		scores: make([]float32, n),
		attrs:  make([]attr, n),
		ids:    make(map[string]int32, n),
		eog:    map[int32]bool{},
	}
	switch v.Model {
	case "llama":
		t.spm = true
		t.bos, t.eos, t.unk = 1, 2, 0
		t.addSpacePrefix, t.addBOS = true, true
	case "gpt2":
		t.bos, t.eos, t.unk = 11, 11, -1
		t.cleanSpaces = true
		switch v.Pre {
		case "gpt-2":
			t.pre = splitGPT2
		case "qwen2":
			t.pre = splitQwen2
			t.cleanSpaces = false
		case "llama3", "llama-v3", "llama-bpe":
			t.pre = splitLlama3
			t.ignoreMerges, t.addBOS = true, true
		default:
			return nil, fmt.Errorf("tokenizer: BPE pre-tokenizer %q is not supported (supported: gpt-2, qwen2, llama-bpe)", v.Pre)
		}
		if len(v.Merges) == 0 {
			return nil, fmt.Errorf("tokenizer: BPE vocabulary has no merges")
		}
		t.rankByID = make(map[uint64]int, len(v.Merges))
		t.rankByText = map[[2]string]int{}
	default:
		return nil, fmt.Errorf("tokenizer: tokenizer model %q is not supported (supported: gpt2, llama)", v.Model)
	}
	if b, ok := v.Flags["add_space_prefix"]; ok {
		t.addSpacePrefix = b
	}

	for i, text := range v.Tokens {
		if text == "" {
			text = fmt.Sprintf("[EMPTY_%d]", i)
		}
		t.texts[i] = text
		t.ids[text] = int32(i) // a later duplicate wins, as in llama.cpp's map
		if i < len(v.Scores) {
			t.scores[i] = v.Scores[i]
		}
		t.attrs[i] = attrNormal
		if len(v.Types) > 0 {
			t.attrs[i] = typeAttr(v.Types[i])
		}
	}
	if !t.spm {
		for i, m := range v.Merges {
			// llama.cpp splits at the first space after the first byte, so a merge may start with a space.
			sp := strings.IndexByte(m[min(1, len(m)):], ' ')
			if sp < 0 {
				continue
			}
			sp += min(1, len(m))
			l, r := m[:sp], m[sp+1:]
			// The first occurrence of a pair keeps its rank, as with llama.cpp's map emplace.
			idl, okl := t.ids[l]
			idr, okr := t.ids[r]
			if okl && okr {
				if _, dup := t.rankByID[pairKey(idl, idr)]; !dup {
					t.rankByID[pairKey(idl, idr)] = i
				}
			} else if _, dup := t.rankByText[[2]string{l, r}]; !dup {
				t.rankByText[[2]string{l, r}] = i
			}
		}
	}

	special := func(key string, dst *int32) {
		if id, ok := v.IDs[key]; ok && id >= 0 && id < int64(n) {
			*dst = int32(id)
		}
	}
	eot, eom := int32(-1), int32(-1)
	fim := map[string]int32{"fim_pad_token_id": -1, "fim_rep_token_id": -1, "fim_sep_token_id": -1}
	special("bos_token_id", &t.bos)
	special("eos_token_id", &t.eos)
	special("eot_token_id", &eot)
	special("eom_token_id", &eom)
	special("unknown_token_id", &t.unk)
	for k, id := range fim {
		special(k, &id)
		fim[k] = id
	}
	// A vocabulary type's default id may not exist in a small vocabulary; treat it as absent.
	for _, id := range []*int32{&t.bos, &t.eos, &t.unk} {
		if *id >= int32(n) {
			*id = -1
		}
	}
	if b, ok := v.Flags["add_bos_token"]; ok {
		t.addBOS = b
	}
	if b, ok := v.Flags["add_eos_token"]; ok {
		t.addEOS = b
	}
	t.detectSpecial(&eot, &eom, fim)
	for _, id := range []int32{t.eos, eot, eom} {
		if id >= 0 {
			t.eog[id] = true
		}
	}

	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(id))
		}
	}
	sort.SliceStable(t.special, func(a, b int) bool { return len(t.texts[t.special[a]]) > len(t.texts[t.special[b]]) })
	return t, nil
}

func typeAttr(tt int32) attr {
	switch tt {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeByte:
		return attrByte
	}
	return 0
}

// detectSpecial finds end-of-turn, fill-in-the-middle and end-of-generation tokens by their text, as
// llama.cpp does for vocabularies whose metadata does not name them, and marks them as control tokens.
func (t *Tokenizer) detectSpecial(eot, eom *int32, fim map[string]int32) {
	eotTexts := []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	fimTexts := map[string][]string{
		"fim_pad_token_id": {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
		"fim_rep_token_id": {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
		"fim_sep_token_id": {"<|file_sep|>"},
	}
	eogTexts := []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
		"<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
		"<end_of_utterance>"}
	find := func(dst *int32, texts []string) {
		if *dst >= 0 {
			return
		}
		for id, text := range t.texts {
			if t.ids[text] == int32(id) && contains(texts, text) {
				*dst = int32(id)
				t.attrs[id] |= attrControl
				return
			}
		}
	}
	find(eot, eotTexts)
	find(eom, []string{"<|eom_id|>"})
	for k, texts := range fimTexts {
		id := fim[k]
		find(&id, texts)
		if id >= 0 {
			t.eog[id] = true
		}
	}
	for id, text := range t.texts {
		if t.ids[text] == int32(id) && contains(eogTexts, text) {
			t.eog[int32(id)] = true
			t.attrs[id] |= attrControl
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// BOS is the beginning-of-sequence token id, or -1 when the vocabulary has none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token id, or -1 when the vocabulary has none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// AddsBOS reports whether Encode with addSpecial puts BOS first.
func (t *Tokenizer) AddsBOS() bool { return t.addBOS && t.bos >= 0 }

// IsEOG reports whether generation should stop at this token (EOS, end-of-turn and the like).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// IsControl reports whether a token is a control or unknown token (BOS, "<|im_start|>", "<unk>"): text that
// llama.cpp's detokenizer leaves out unless asked to render special tokens.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&(attrControl|attrUnknown) != 0
}

// VocabSize is the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.texts) }

// Text is a token's text as the vocabulary spells it ("Ġthe", "▁the", "<0x0A>"); "" for an unknown id.
func (t *Tokenizer) Text(id int32) string {
	if id < 0 || int(id) >= len(t.texts) {
		return ""
	}
	return t.texts[id]
}

// Encode tokenizes text. With addSpecial it adds BOS (and EOS) where the vocabulary asks for them and
// recognises control tokens written in the text; without, the text is plain text (user-defined tokens are
// still matched).
func (t *Tokenizer) Encode(text string, addSpecial bool) []int32 {
	return t.EncodeWith(text, EncodeOptions{AddSpecial: addSpecial, ParseSpecial: addSpecial})
}

// fragment is a piece of the input: either raw text still to tokenize, or a special token found in it.
type fragment struct {
	text  string
	token int32 // -1 for raw text
}

// EncodeWith tokenizes text with explicit options (llama_tokenize's add_special and parse_special).
func (t *Tokenizer) EncodeWith(text string, o EncodeOptions) []int32 {
	var frags []fragment
	if text != "" {
		frags = t.partition([]fragment{{text: text, token: -1}}, o.ParseSpecial)
	}
	var out []int32
	if o.AddSpecial && t.addBOS && t.bos >= 0 {
		out = append(out, t.bos)
	}
	prevSpecial := true // SentencePiece prefixes a space to text at the start or after a special token
	for _, f := range frags {
		if f.token >= 0 {
			out = append(out, f.token)
			prevSpecial = true
			continue
		}
		if t.spm {
			s := f.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.encodeSPM(strings.ReplaceAll(s, " ", "▁"), out)
		} else {
			out = t.encodeBPE(f.text, out)
		}
		prevSpecial = false
	}
	if o.AddSpecial && t.addEOS && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// partition splits raw-text fragments at every occurrence of a special token's text, longest tokens first
// (llama.cpp's tokenizer_st_partition). Control and unknown tokens count only when parseSpecial is set.
func (t *Tokenizer) partition(frags []fragment, parseSpecial bool) []fragment {
	for _, id := range t.special {
		if !parseSpecial && t.attrs[id]&(attrControl|attrUnknown) != 0 {
			continue
		}
		st := t.texts[id]
		var next []fragment
		changed := false
		for _, f := range frags {
			if f.token >= 0 || !strings.Contains(f.text, st) {
				next = append(next, f)
				continue
			}
			changed = true
			rest := f.text
			for {
				k := strings.Index(rest, st)
				if k < 0 {
					break
				}
				if k > 0 {
					next = append(next, fragment{text: rest[:k], token: -1})
				}
				next = append(next, fragment{token: id})
				rest = rest[k+len(st):]
			}
			if rest != "" {
				next = append(next, fragment{text: rest, token: -1})
			}
		}
		if changed {
			frags = next
		}
	}
	return frags
}

func pairKey(l, r int32) uint64 { return uint64(uint32(l))<<32 | uint64(uint32(r)) }

// bpeRank is the merge rank of two adjacent pieces, if they may merge.
func (t *Tokenizer) bpeRank(l, r *symbol, word string) (float64, bool) {
	if l.id >= 0 && r.id >= 0 {
		rank, ok := t.rankByID[pairKey(l.id, r.id)]
		return float64(rank), ok
	}
	if len(t.rankByText) == 0 {
		return 0, false
	}
	rank, ok := t.rankByText[[2]string{word[l.start : l.start+l.n], word[r.start : r.start+r.n]}]
	return float64(rank), ok
}

// encodeBPE appends the tokens of one raw-text fragment of a byte-level BPE vocabulary. Words repeat, so each
// distinct word is merged once per call.
func (t *Tokenizer) encodeBPE(text string, out []int32) []int32 {
	cps := codePoints(text)
	m := merger{ids: t.ids}
	seen := map[string][]int32{}
	start := 0
	var word, raw []byte
	for _, end := range t.pre(cps) {
		// Spell the word's UTF-8 bytes in the vocabulary's byte alphabet.
		word = word[:0]
		for _, r := range cps[start:end] {
			raw = appendRune(raw[:0], r)
			for _, b := range raw {
				word = appendRune(word, byteRunes[b])
			}
		}
		start = end
		if ids, ok := seen[string(word)]; ok {
			out = append(out, ids...)
			continue
		}
		w := string(word)
		first := len(out)
		if id, ok := t.ids[w]; ok && t.ignoreMerges {
			out = append(out, id)
		} else {
			for _, s := range m.merge(w, func(l, r *symbol, _ string) (float64, bool) { return t.bpeRank(l, r, w) }) {
				if s.id >= 0 {
					out = append(out, s.id)
					continue
				}
				// No token for the merged piece: llama.cpp tries each byte of it as a token, dropping misses.
				piece := w[s.start : s.start+s.n]
				for i := 0; i < len(piece); i++ {
					if id, ok := t.ids[piece[i:i+1]]; ok {
						out = append(out, id)
					}
				}
			}
		}
		seen[w] = out[first:len(out):len(out)]
	}
	return out
}

// encodeSPM appends the tokens of one escaped raw-text fragment of a SentencePiece vocabulary.
func (t *Tokenizer) encodeSPM(text string, out []int32) []int32 {
	m := merger{ids: t.ids}
	syms := m.merge(text, func(_, _ *symbol, merged string) (float64, bool) {
		id, ok := t.ids[merged]
		if !ok {
			return 0, false
		}
		return -float64(t.scores[id]), true
	})
	for _, s := range syms {
		if s.id >= 0 {
			out = append(out, s.id)
			continue
		}
		// Every merged piece is a token, so only single characters land here: spell them as byte tokens.
		piece := text[s.start : s.start+s.n]
		for i := 0; i < len(piece); i++ {
			if id, ok := t.byteToken(piece[i]); ok {
				out = append(out, id)
			}
		}
	}
	return out
}

// byteToken is the SentencePiece byte-fallback token <0xXX> of b, else a token spelled as the byte
// itself, else the unknown token.
func (t *Tokenizer) byteToken(b byte) (int32, bool) {
	if id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
		return id, true
	}
	if id, ok := t.ids[string([]byte{b})]; ok {
		return id, true
	}
	return t.unk, t.unk >= 0
}

// TokenBytes is the raw bytes one token stands for, special tokens included as their text. Streaming output
// concatenates these and holds back an incomplete UTF-8 sequence until the next token completes it.
// It is nil for an id outside the vocabulary.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	if id < 0 || int(id) >= len(t.texts) {
		return nil
	}
	text, a := t.texts[id], t.attrs[id]
	switch {
	case a&(attrUnknown|attrControl|attrUserDefined) != 0:
		return []byte(text)
	case a&attrNormal != 0 && t.spm:
		return []byte(strings.ReplaceAll(text, "▁", " "))
	case a&attrNormal != 0:
		return decodeByteLevel(text)
	case a&attrByte != 0 && t.spm:
		var b byte
		if _, err := fmt.Sscanf(text, "<0x%02X>", &b); err == nil {
			return []byte{b}
		}
	}
	return []byte{}
}

// decodeByteLevel maps a byte-level BPE token's characters back to bytes. A character outside the byte
// alphabet is written as llama.cpp writes it, "[UNK_BYTE_0x..." with the token text.
func decodeByteLevel(text string) []byte {
	out := make([]byte, 0, len(text))
	for i := 0; i < len(text); {
		r, n := decodeRune(text, i)
		i += n
		if b, ok := runeBytes[r]; ok {
			out = append(out, b)
			continue
		}
		out = append(out, "[UNK_BYTE_0x"...)
		for _, c := range appendRune(nil, r) {
			out = fmt.Appendf(out, "%02x", c)
		}
		out = append(out, text...)
		out = append(out, ']')
	}
	return out
}

// Decode turns ids back into text as llama.cpp's detokenizer does with special tokens rendered: the space a
// SentencePiece vocabulary prefixes to the text is removed, and GPT-2 vocabularies get its space clean-up
// (" ," becomes ","). Invalid UTF-8 from partial byte tokens is kept as is.
func (t *Tokenizer) Decode(ids []int32) string {
	var b []byte
	for i, id := range ids {
		piece := t.TokenBytes(id)
		if i == 0 && t.addSpacePrefix && len(piece) > 0 && piece[0] == ' ' {
			piece = piece[1:]
		}
		b = append(b, piece...)
	}
	if t.cleanSpaces {
		b = cleanSpaces(b)
	}
	return string(b)
}

// cleanSpaces is llama.cpp's clean_up_tokenization_spaces: drop the space before ? ! . , and before the
// contractions 's 'm 're 've, and the spaces around a lone apostrophe.
func cleanSpaces(text []byte) []byte {
	if len(text) == 0 {
		return text
	}
	out := append(make([]byte, 0, len(text)), text[0])
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			out = out[:len(out)-1]
		}
		out = append(out, x)
	}
	text, out = out, append(make([]byte, 0, len(out)), out[0])
	afterStrip := false // llama.cpp blanks the dropped space in place, so the next character never sees ' ' before it
	for i := 1; i < len(text); i++ {
		x := text[i]
		if !afterStrip && x == '\'' && i+1 < len(text) && text[i-1] == ' ' && text[i+1] == ' ' {
			out = out[:len(out)-1]
			out = append(out, x)
			i++ // the space after it goes too
			afterStrip = true
			continue
		}
		afterStrip = false
		out = append(out, x)
	}
	text, out = out, append(make([]byte, 0, len(out)), out[0])
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < len(text) {
			x1 := text[i+1]
			switch {
			case x1 == 's' || x1 == 'm':
				out = out[:len(out)-1]
			case i+2 < len(text) && (x1 == 'r' || x1 == 'v') && text[i+2] == 'e':
				out = out[:len(out)-1]
			}
		}
		out = append(out, x)
	}
	return out
}

// Metadata is the part of a GGUF file's key-value API a tokenizer needs; *gguf.File provides it.
type Metadata interface {
	String(key string) (string, bool)
	Uint(key string) (uint64, bool)
	Int(key string) (int64, bool)
	Bool(key string) (bool, bool)
	Strings(key string) ([]string, bool)
	Float32s(key string) ([]float32, bool)
	Int32s(key string) ([]int32, bool)
}

// specialIDKeys are the token-id keys under tokenizer.ggml. that New understands.
var specialIDKeys = []string{"bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id", "unknown_token_id",
	"seperator_token_id", "padding_token_id", "mask_token_id", "fim_pre_token_id", "fim_suf_token_id",
	"fim_mid_token_id", "fim_pad_token_id", "fim_rep_token_id", "fim_sep_token_id"}

// VocabFromMetadata reads the tokenizer.ggml.* keys of a model's metadata.
func VocabFromMetadata(m Metadata) (Vocab, error) {
	const p = "tokenizer.ggml."
	var v Vocab
	var ok bool
	if v.Model, ok = m.String(p + "model"); !ok {
		return v, fmt.Errorf("tokenizer: metadata has no %smodel", p)
	}
	v.Pre, _ = m.String(p + "pre")
	if v.Tokens, ok = m.Strings(p + "tokens"); !ok {
		return v, fmt.Errorf("tokenizer: metadata has no %stokens array", p)
	}
	v.Scores, _ = m.Float32s(p + "scores")
	v.Types, _ = m.Int32s(p + "token_type")
	v.Merges, _ = m.Strings(p + "merges")
	v.IDs = map[string]int64{}
	for _, k := range specialIDKeys {
		if u, ok := m.Uint(p + k); ok {
			v.IDs[k] = int64(min(u, 1<<62))
		} else if i, ok := m.Int(p + k); ok {
			v.IDs[k] = i
		}
	}
	v.Flags = map[string]bool{}
	for _, k := range []string{"add_bos_token", "add_eos_token", "add_space_prefix"} {
		if b, ok := m.Bool(p + k); ok {
			v.Flags[k] = b
		}
	}
	return v, nil
}

// FromMetadata builds the tokenizer a model's metadata describes.
func FromMetadata(m Metadata) (*Tokenizer, error) {
	v, err := VocabFromMetadata(m)
	if err != nil {
		return nil, err
	}
	return New(v)
}

// FromGGUF builds the tokenizer a GGUF file's tokenizer.ggml.* metadata describes.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	if f == nil {
		return nil, fmt.Errorf("tokenizer: no GGUF file")
	}
	t, err := FromMetadata(f)
	if err != nil && f.Path() != "" {
		return nil, fmt.Errorf("%s: %w", f.Path(), err)
	}
	return t, err
}
