package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
)

// matcher finds the successive non-overlapping matches of a pattern, left
// to right, and reports their byte ranges.
type matcher interface {
	findAll(s string, match func(start, end int))
}

// stringMatcher matches a literal string (an empty one never matches).
type stringMatcher struct{ lit string }

func (m stringMatcher) findAll(s string, match func(start, end int)) {
	if m.lit == "" {
		return
	}
	off := 0
	for {
		i := strings.Index(s[off:], m.lit)
		if i < 0 {
			return
		}
		match(off+i, off+i+len(m.lit))
		off += i + len(m.lit)
	}
}

// re2Matcher uses Go's regexp package (linear time) for patterns it accepts.
type re2Matcher struct{ re *regexp.Regexp }

func (m re2Matcher) findAll(s string, match func(start, end int)) {
	for _, loc := range m.re.FindAllStringIndex(s, -1) {
		match(loc[0], loc[1])
	}
}

// backtrackMatcher uses regexp2 for patterns with lookaround.
type backtrackMatcher struct{ re *regexp2.Regexp }

func (m backtrackMatcher) findAll(s string, match func(start, end int)) {
	runes := []rune(s)
	// byteAt[i] is the byte offset of rune i (and len(s) at the end).
	byteAt := make([]int, len(runes)+1)
	off := 0
	for i, r := range runes {
		byteAt[i] = off
		off += utf8.RuneLen(r)
		if r == utf8.RuneError {
			// Invalid bytes were decoded as U+FFFD; find the real width.
			_, w := utf8.DecodeRuneInString(s[byteAt[i]:])
			off = byteAt[i] + w
		}
	}
	byteAt[len(runes)] = len(s)
	m2, err := m.re.FindRunesMatch(runes)
	for err == nil && m2 != nil {
		match(byteAt[m2.Index], byteAt[m2.Index+m2.Length])
		m2, err = m.re.FindNextMatch(m2)
	}
}

// Whitespace as Oniguruma's \s sees it in UTF-8 mode: the Unicode White_Space
// property, which is also what unicode.IsSpace reports; written for Go's
// regexp and for regexp2 (.NET syntax).
const (
	whiteSpaceClassRE2 = `\t\n\x{0B}\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	whiteSpaceClassNET = `\t\n\u000B\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000`
)

// rewriteShorthands replaces \s and \S (which are ASCII-only in Go's regexp
// but Unicode-aware in Oniguruma, the engine Hugging Face tokenizers uses)
// by explicit classes. Inside a bracket expression only \s can be expanded.
func rewriteShorthands(pattern, whiteSpaceClass string) (string, bool) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c == '\\' && i+1 < len(pattern) {
			n := pattern[i+1]
			switch {
			case n == 's' && inClass:
				b.WriteString(whiteSpaceClass)
			case n == 's':
				b.WriteString("[" + whiteSpaceClass + "]")
			case n == 'S' && !inClass:
				b.WriteString("[^" + whiteSpaceClass + "]")
			case n == 'S':
				return "", false
			default:
				b.WriteByte(c)
				b.WriteByte(n)
			}
			i++
			continue
		}
		if c == '[' && !inClass {
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is literal.
			if i+1 < len(pattern) && pattern[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pattern) && pattern[i+1] == ']' {
				b.WriteByte(']')
				i++
			}
			continue
		}
		if c == ']' && inClass {
			inClass = false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// Pre-tokenizer regexes that are common enough to deserve a hand-written
// matcher (checked against regexp2 in the tests).
const (
	gpt2Pattern   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// compilePattern turns a tokenizer.json regex into a matcher: a hand-written
// one for the well-known GPT-2 / Llama 3 / Qwen 2 patterns, Go's regexp when
// the pattern is RE2-compatible, and regexp2 (backtracking, lookaround)
// otherwise.
func compilePattern(pattern string) (matcher, error) {
	switch pattern {
	case gpt2Pattern:
		return gpt2Matcher{}, nil
	case llama3Pattern:
		return llama3Matcher{maxDigits: 3}, nil
	case qwen2Pattern:
		return llama3Matcher{maxDigits: 1}, nil
	}
	return compileGenericPattern(pattern)
}

// compileGenericPattern compiles a pattern without the hand-written fast
// paths (used directly by the tests to cross-check them).
func compileGenericPattern(pattern string) (matcher, error) {
	// Oniguruma's Ruby syntax makes ^ and $ line anchors: multi-line mode.
	if rewritten, ok := rewriteShorthands(pattern, whiteSpaceClassRE2); ok {
		if re, err := regexp.Compile("(?m)" + rewritten); err == nil {
			return re2Matcher{re}, nil
		}
	}
	if rewritten, ok := rewriteShorthands(pattern, whiteSpaceClassNET); ok {
		pattern = rewritten
	}
	re, err := regexp2.Compile(pattern, regexp2.Multiline)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return backtrackMatcher{re}, nil
}
