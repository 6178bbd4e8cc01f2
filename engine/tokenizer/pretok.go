package tokenizer

// Pre-tokenizers split text into words before BPE merges run inside each word. llama.cpp defines them as
// regexes; Go's regexp has no lookahead, so each is a hand-written scanner with the regex's semantics:
// alternatives tried in order at each position, greedy quantifiers, backtracking where the regex would.
// Each returns the end offsets (in code points) of the words of cps.

// splitGPT2 implements the GPT-2 pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(cps []rune) []int {
	n := len(cps)
	at := func(i int) rune {
		if i < n {
			return cps[i]
		}
		return -1
	}
	other := func(i int) bool { // [^\s\p{L}\p{N}], false past the end
		return i < n && !isSpace(cps[i]) && !isLetter(cps[i]) && !isNumber(cps[i])
	}
	run := func(i int, class func(rune) bool) int {
		for i < n && class(cps[i]) {
			i++
		}
		return i
	}
	var ends []int
	for i := 0; i < n; {
		c := cps[i]
		if c == '\'' {
			c1, c2 := at(i+1), at(i+2)
			if c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd' {
				i += 2
				ends = append(ends, i)
				continue
			}
			if c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l' {
				i += 3
				ends = append(ends, i)
				continue
			}
		}
		j := i
		if c == ' ' {
			j = i + 1 // the optional leading space of the next three alternatives
		}
		switch {
		case j < n && isLetter(cps[j]):
			i = run(j, isLetter)
		case j < n && isNumber(cps[j]):
			i = run(j, isNumber)
		case other(j):
			k := j
			for other(k) {
				k++
			}
			i = k
		default:
			// Whitespace (c is whitespace here: a lone ' ' followed by whitespace or the end also lands here).
			k := run(i, isSpace)
			switch {
			case k-i > 1 && k < n:
				i = k - 1 // \s+(?!\S): give back the last space, which then leads the next word
			case k > i:
				i = k
			default:
				i++ // unreachable for well-formed classes; never loop forever
			}
		}
		ends = append(ends, i)
	}
	return ends
}

// splitQwen2 implements the Qwen2 pattern (llama.cpp's adaptation of the tokenizer.json regex)
//
//	(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitQwen2(cps []rune) []int { return splitDigits(cps, 1) }

// splitLlama3 implements the Llama 3 pattern, the Qwen2 one with digits in groups of up to three:
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//	\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(cps []rune) []int { return splitDigits(cps, 3) }

// splitDigits is the Qwen2/Llama 3 scanner with runs of digits cut into words of at most maxDigits.
func splitDigits(cps []rune, maxDigits int) []int {
	n := len(cps)
	lower := func(i int) rune {
		if i >= n {
			return -1
		}
		if c := cps[i]; 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return cps[i]
	}
	letter := func(i int) bool { return i < n && isLetter(cps[i]) }
	other := func(i int) bool { return i < n && !isSpace(cps[i]) && !isLetter(cps[i]) && !isNumber(cps[i]) }
	newline := func(i int) bool { return i < n && (cps[i] == '\r' || cps[i] == '\n') }
	var ends []int
	for i := 0; i < n; {
		c := cps[i]
		end := -1
		switch {
		case c == '\'' && (lower(i+1) == 's' || lower(i+1) == 't' || lower(i+1) == 'm' || lower(i+1) == 'd'):
			end = i + 2
		case c == '\'' && (lower(i+1) == 'r' && lower(i+2) == 'e' || lower(i+1) == 'v' && lower(i+2) == 'e' ||
			lower(i+1) == 'l' && lower(i+2) == 'l'):
			end = i + 3
		case letter(i) || c != '\r' && c != '\n' && !isNumber(c) && letter(i+1):
			// [^\r\n\p{L}\p{N}]?\p{L}+ : an optional non-letter lead, then a run of letters.
			k := i + 1
			for letter(k) {
				k++
			}
			end = k
		case isNumber(c):
			end = i + 1
			for end < n && end-i < maxDigits && isNumber(cps[end]) {
				end++
			}
		case other(i) || c == ' ' && other(i+1):
			k := i
			if c == ' ' {
				k++
			}
			for other(k) {
				k++
			}
			for newline(k) {
				k++
			}
			end = k
		default:
			// c is whitespace. \s*[\r\n]+ ends just after the last \r or \n of the run; failing that,
			// \s+(?!\S) keeps all but the last space when non-space follows; failing that, \s+.
			k := i
			lastNL := -1
			for k < n && isSpace(cps[k]) {
				if newline(k) {
					lastNL = k
				}
				k++
			}
			switch {
			case lastNL >= 0:
				end = lastNL + 1
			case k-i > 1 && k < n:
				end = k - 1
			case k > i:
				end = k
			default:
				end = i + 1
			}
		}
		i = end
		ends = append(ends, i)
	}
	return ends
}
