package tokenizer

import "unicode"

// replacementRune stands in for every byte that does not start a well-formed sequence, as llama.cpp does.
const replacementRune = 0xFFFD

// utf8Len is the length of the UTF-8 sequence a lead byte announces, judged from its high nibble only
// (llama.cpp's unicode_len_utf8). Continuation and invalid lead bytes count as 1.
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// decodeRune reads one code point the way llama.cpp's unicode_cpt_from_utf8 does: it checks only that the
// continuation bytes have the 10xxxxxx form, so overlong forms and surrogates decode to their values
// (Go's utf8.DecodeRune would reject them). A malformed sequence yields (replacementRune, 1).
func decodeRune(s string, i int) (rune, int) {
	b0 := s[i]
	cont := func(k int) bool { return i+k < len(s) && s[i+k]&0xC0 == 0x80 }
	switch {
	case b0&0x80 == 0:
		return rune(b0), 1
	case b0&0x40 == 0:
		return replacementRune, 1
	case b0&0x20 == 0:
		if !cont(1) {
			return replacementRune, 1
		}
		return rune(b0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case b0&0x10 == 0:
		if !cont(1) || !cont(2) {
			return replacementRune, 1
		}
		return rune(b0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case b0&0x08 == 0:
		if !cont(1) || !cont(2) || !cont(3) {
			return replacementRune, 1
		}
		return rune(b0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F), 4
	}
	return replacementRune, 1
}

// codePoints splits s into code points with decodeRune.
func codePoints(s string) []rune {
	out := make([]rune, 0, len(s))
	for i := 0; i < len(s); {
		r, n := decodeRune(s, i)
		out = append(out, r)
		i += n
	}
	return out
}

// appendRune writes r as UTF-8 without Go's surrogate check, so code points that decodeRune accepted
// are written back byte for byte (llama.cpp's unicode_cpt_to_utf8).
func appendRune(dst []byte, r rune) []byte {
	switch {
	case r < 0x80:
		return append(dst, byte(r))
	case r < 0x800:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r&0x3F))
	case r < 0x10000:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
	}
	return append(dst, 0xF0|byte(r>>18&0x07), 0x80|byte(r>>12&0x3F), 0x80|byte(r>>6&0x3F), 0x80|byte(r&0x3F))
}

// Character classes of the pre-tokenizer regexes. \p{L}, \p{N} and \s of llama.cpp's tables are the Unicode
// general categories L and N and the White_Space property, which is what Go's unicode package provides.
func isLetter(r rune) bool {
	return r < 0x80 && ('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z') || r >= 0x80 && unicode.IsLetter(r)
}
func isNumber(r rune) bool {
	return r < 0x80 && '0' <= r && r <= '9' || r >= 0x80 && unicode.IsNumber(r)
}
func isSpace(r rune) bool {
	if r < 0x80 {
		return r == ' ' || '\t' <= r && r <= '\r'
	}
	return unicode.IsSpace(r)
}

// byteRunes is GPT-2's reversible map from bytes to printable code points: printable Latin-1 bytes map to
// themselves and the rest, in order, to U+0100 onwards. Byte-level BPE vocabularies spell tokens in it.
var byteRunes, runeBytes = func() ([256]rune, map[rune]byte) {
	var fwd [256]rune
	rev := make(map[rune]byte, 256)
	printable := func(b int) bool { return 0x21 <= b && b <= 0x7E || 0xA1 <= b && b <= 0xAC || 0xAE <= b && b <= 0xFF }
	next := rune(256)
	for b := 0; b < 256; b++ {
		if printable(b) {
			fwd[b] = rune(b)
		} else {
			fwd[b] = next
			next++
		}
		rev[fwd[b]] = byte(b)
	}
	return fwd, rev
}()
