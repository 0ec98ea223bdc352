package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a piece of text before pre-tokenization, as a
// tokenizer.json "normalizer" does.
type normalizer interface {
	normalize(s string) string
}

type normalizerSeq []normalizer

func (n normalizerSeq) normalize(s string) string {
	for _, step := range n {
		s = step.normalize(s)
	}
	return s
}

type unicodeNormalizer struct{ form norm.Form }

// cgj is U+034F COMBINING GRAPHEME JOINER.
const cgj = "\u034f"

// normalize applies the Unicode normalization form. Go's norm package
// follows the Stream-Safe Text Format and inserts U+034F after 30
// consecutive non-starters; Rust's unicode-normalization (used by
// tokenizers) does not, so inserted joiners are removed again. Joiners that
// were in the input are kept (the text is normalized piecewise around them,
// which is exact since U+034F is a starter that never composes).
func (n unicodeNormalizer) normalize(s string) string {
	out := n.form.String(s)
	if !strings.Contains(out, cgj) {
		return out
	}
	if !strings.Contains(s, cgj) {
		return strings.ReplaceAll(out, cgj, "")
	}
	parts := strings.Split(s, cgj)
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(n.form.String(p), cgj, "")
	}
	return strings.Join(parts, cgj)
}

// replaceNormalizer replaces every match of a pattern by content.
type replaceNormalizer struct {
	pattern matcher
	content string
}

func (n replaceNormalizer) normalize(s string) string {
	if lit, ok := n.pattern.(stringMatcher); ok {
		if lit.lit == "" {
			return s
		}
		return strings.ReplaceAll(s, lit.lit, n.content)
	}
	return replaceAll(s, n.pattern, n.content)
}

// replaceAll replaces the matches of m in s by content.
func replaceAll(s string, m matcher, content string) string {
	var b strings.Builder
	last := 0
	m.findAll(s, func(start, end int) {
		b.WriteString(s[last:start])
		b.WriteString(content)
		last = end
	})
	if last == 0 && b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// prependNormalizer puts a prefix in front of every non-empty piece.
type prependNormalizer struct{ prefix string }

func (n prependNormalizer) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

type lowercaseNormalizer struct{}

// normalize lowercases like Rust's char::to_lowercase, whose only
// multi-character result is U+0130 -> "i\u0307" (Go maps it to "i").
func (lowercaseNormalizer) normalize(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "\u0130", "i\u0307"))
}

type stripNormalizer struct{ left, right bool }

func (n stripNormalizer) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripAccentsNormalizer removes combining marks (Mn).
type stripAccentsNormalizer struct{}

func (stripAccentsNormalizer) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// buildNormalizer turns the "normalizer" JSON object into a normalizer
// (nil for JSON null).
func buildNormalizer(c *componentJSON, field string) (normalizer, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq normalizerSeq
		for i := range c.Normalizers {
			n, err := buildNormalizer(&c.Normalizers[i], fmt.Sprintf("%s.normalizers[%d]", field, i))
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "NFC":
		return unicodeNormalizer{norm.NFC}, nil
	case "NFD":
		return unicodeNormalizer{norm.NFD}, nil
	case "NFKC":
		return unicodeNormalizer{norm.NFKC}, nil
	case "NFKD":
		return unicodeNormalizer{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNormalizer{}, nil
	case "Strip":
		return stripNormalizer{left: c.StripLeft, right: c.StripRight}, nil
	case "StripAccents":
		return stripAccentsNormalizer{}, nil
	case "Prepend":
		return prependNormalizer{prefix: c.Prepend}, nil
	case "Replace":
		m, err := c.Pattern.compile(field + ".pattern")
		if err != nil {
			return nil, err
		}
		return replaceNormalizer{pattern: m, content: c.Content}, nil
	case "":
		return nil, fmt.Errorf("%s: missing \"type\"", field)
	default:
		return nil, fmt.Errorf("%s: unsupported normalizer type %q (supported: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace)", field, c.Type)
	}
}
