package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// decoder turns token strings back into text pieces (decode_chain in
// tokenizers' decoders); the final text is the concatenation.
type decoder interface {
	decodeChain(tokens []string) []string
}

type decoderSeq []decoder

func (d decoderSeq) decodeChain(tokens []string) []string {
	for _, step := range d {
		tokens = step.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDecoder maps byte-level characters back to bytes and the whole
// result to UTF-8, replacing invalid sequences.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decodeChain(tokens []string) []string {
	var raw []byte
	for _, t := range tokens {
		raw = byteLevelDecodeToken(raw, t)
	}
	if utf8.Valid(raw) {
		return []string{string(raw)}
	}
	return []string{string(appendLossyUTF8(nil, raw))}
}

type replaceDecoder struct {
	pattern matcher
	content string
}

func (d replaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	r := replaceNormalizer(d)
	for i, t := range tokens {
		out[i] = r.normalize(t)
	}
	return out
}

// parseByteToken recognizes "<0xHH>".
func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || t[0] != '<' || t[1] != '0' || t[2] != 'x' || t[5] != '>' {
		return 0, false
	}
	var v byte
	for _, c := range []byte(t[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return v, true
}

// byteFallbackDecoder turns runs of <0xHH> tokens into their UTF-8 text, or
// one U+FFFD per byte when the run is not valid UTF-8.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type fuseDecoder struct{}

func (fuseDecoder) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDecoder removes up to start leading and stop trailing copies of a
// character from every token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (d stripDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		for n := 0; n < d.start; n++ {
			r, w := utf8.DecodeRuneInString(t)
			if w == 0 || r != d.content {
				break
			}
			t = t[w:]
		}
		for n := 0; n < d.stop; n++ {
			r, w := utf8.DecodeLastRuneInString(t)
			if w == 0 || r != d.content {
				break
			}
			t = t[:len(t)-w]
		}
		out[i] = t
	}
	return out
}

// metaspaceDecoder turns the replacement character back into spaces,
// dropping it in the first token unless the prepend scheme is "never".
type metaspaceDecoder struct {
	replacement string
	scheme      string
}

func (d metaspaceDecoder) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		if i == 0 && d.scheme != "never" {
			out[i] = strings.ReplaceAll(t, d.replacement, "")
		} else {
			out[i] = strings.ReplaceAll(t, d.replacement, " ")
		}
	}
	return out
}

// buildDecoder turns the "decoder" JSON object into a decoder (nil for null).
func buildDecoder(c *componentJSON, field string) (decoder, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq decoderSeq
		for i := range c.Decoders {
			d, err := buildDecoder(&c.Decoders[i], fmt.Sprintf("%s.decoders[%d]", field, i))
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "Replace":
		m, err := c.Pattern.compile(field + ".pattern")
		if err != nil {
			return nil, err
		}
		return replaceDecoder{pattern: m, content: c.Content}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		r, w := utf8.DecodeRuneInString(c.Content)
		if w == 0 || w != len(c.Content) {
			return nil, fmt.Errorf("%s.content: expected a single character, got %q", field, c.Content)
		}
		return stripDecoder{content: r, start: c.Start, stop: c.Stop}, nil
	case "Metaspace":
		repl, scheme := c.metaspaceSettings()
		return metaspaceDecoder{replacement: repl, scheme: scheme}, nil
	case "":
		return nil, fmt.Errorf("%s: missing \"type\"", field)
	default:
		return nil, fmt.Errorf("%s: unsupported decoder type %q (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)", field, c.Type)
	}
}
