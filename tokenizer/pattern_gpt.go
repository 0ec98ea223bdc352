package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written equivalents of the GPT-2 and Llama 3 / Qwen 2 pre-tokenizer
// regexes. Both regexes end with \s+ and cover every character class, so
// every character of the input belongs to exactly one match and the matches
// tile the input.

func isLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return (r|0x20) >= 'a' && (r|0x20) <= 'z'
	}
	return unicode.IsLetter(r)
}

func isNumber(r rune) bool {
	if r < utf8.RuneSelf {
		return r >= '0' && r <= '9'
	}
	return unicode.IsNumber(r)
}

// isSpace is Oniguruma's \s in UTF-8 mode (Unicode White_Space).
func isSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return r == ' ' || (r >= '\t' && r <= '\r')
	}
	return unicode.IsSpace(r)
}

func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// spanWhile returns the end of the run of runes from i that satisfy f.
func spanWhile(s string, i int, f func(rune) bool) int {
	for i < len(s) {
		r, w := runeAt(s, i)
		if !f(r) {
			break
		}
		i += w
	}
	return i
}

func isOther(r rune) bool { return !isSpace(r) && !isLetter(r) && !isNumber(r) }

// contraction matches 's 't 're 've 'm 'll 'd at i (case-insensitively when
// fold is set) and returns the end, or -1.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	lower := func(c byte) byte {
		if fold && c >= 'A' && c <= 'Z' {
			return c + 32
		}
		return c
	}
	c1 := lower(s[i+1])
	switch c1 {
	case 's', 't', 'm', 'd':
		return i + 2
	}
	if i+2 < len(s) {
		c2 := lower(s[i+2])
		switch {
		case c1 == 'r' && c2 == 'e', c1 == 'v' && c2 == 'e', c1 == 'l' && c2 == 'l':
			return i + 3
		}
	}
	return -1
}

// whitespaceMatch implements `\s+(?!\S)|\s+` at i, where s[i] is white space.
func whitespaceMatch(s string, i int) int {
	j := spanWhile(s, i, isSpace)
	if j == len(s) {
		return j
	}
	// Back off one character so that the last space stays with the next word.
	_, w := utf8.DecodeLastRuneInString(s[:j])
	if j-w > i {
		return j - w
	}
	return j
}

// gpt2Matcher is `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
type gpt2Matcher struct{}

func (gpt2Matcher) findAll(s string, match func(start, end int)) {
	i := 0
	for i < len(s) {
		end := gpt2MatchAt(s, i)
		match(i, end)
		i = end
	}
}

func gpt2MatchAt(s string, i int) int {
	if e := contraction(s, i, false); e > 0 {
		return e
	}
	r, w := runeAt(s, i)
	start := i
	if r == ' ' {
		r2, w2 := runeAt(s, i+1)
		switch {
		case r2 >= 0 && isLetter(r2):
			return spanWhile(s, i+1+w2, isLetter)
		case r2 >= 0 && isNumber(r2):
			return spanWhile(s, i+1+w2, isNumber)
		case r2 >= 0 && isOther(r2):
			return spanWhile(s, i+1+w2, isOther)
		}
		return whitespaceMatch(s, start)
	}
	switch {
	case isLetter(r):
		return spanWhile(s, i+w, isLetter)
	case isNumber(r):
		return spanWhile(s, i+w, isNumber)
	case isSpace(r):
		return whitespaceMatch(s, i)
	default:
		return spanWhile(s, i+w, isOther)
	}
}

// llama3Matcher is the Llama 3 pattern (maxDigits 3) or the Qwen 2 pattern
// (maxDigits 1):
// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
type llama3Matcher struct{ maxDigits int }

func (m llama3Matcher) findAll(s string, match func(start, end int)) {
	i := 0
	for i < len(s) {
		end := m.matchAt(s, i)
		match(i, end)
		i = end
	}
}

func isNewline(r rune) bool { return r == '\r' || r == '\n' }

func (m llama3Matcher) matchAt(s string, i int) int {
	if e := contraction(s, i, true); e > 0 {
		return e
	}
	r, w := runeAt(s, i)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isLetter(r) {
		return spanWhile(s, i+w, isLetter)
	}
	if !isNewline(r) && !isNumber(r) {
		if r2, w2 := runeAt(s, i+w); r2 >= 0 && isLetter(r2) {
			return spanWhile(s, i+w+w2, isLetter)
		}
	}
	// \p{N}{1,m}
	if isNumber(r) {
		j := i + w
		for n := 1; n < m.maxDigits; n++ {
			r2, w2 := runeAt(s, j)
			if r2 < 0 || !isNumber(r2) {
				break
			}
			j += w2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if r == ' ' {
		if r2, _ := runeAt(s, i+1); r2 >= 0 && isOther(r2) {
			j = i + 1
		}
	}
	if r2, _ := runeAt(s, j); r2 >= 0 && isOther(r2) {
		j = spanWhile(s, j, isOther)
		return spanWhile(s, j, isNewline)
	}
	// Here r is white space.
	// \s*[\r\n]+ : up to the last newline of the white-space run.
	end := spanWhile(s, i, isSpace)
	lastNL := -1
	for k := i; k < end; {
		r2, w2 := runeAt(s, k)
		if isNewline(r2) {
			lastNL = k
		}
		k += w2
	}
	if lastNL >= 0 {
		return lastNL + 1
	}
	return whitespaceMatch(s, i)
}
