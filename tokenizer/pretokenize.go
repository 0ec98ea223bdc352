package tokenizer

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// piece is a stretch of normalized text on its way to the model. atStart
// records that it begins at offset 0 of the original input (Metaspace's
// prepend_scheme "first" depends on it).
type piece struct {
	text    string
	atStart bool
}

// preTokenizer splits pieces further, appending the results to out.
type preTokenizer interface {
	split(in []piece, out []piece) []piece
}

// splitBehavior says what happens to the matched delimiters of a split.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseSplitBehavior(s string) (splitBehavior, bool) {
	switch s {
	case "Removed":
		return splitRemoved, true
	case "Isolated":
		return splitIsolated, true
	case "MergedWithPrevious":
		return splitMergedWithPrevious, true
	case "MergedWithNext":
		return splitMergedWithNext, true
	case "Contiguous":
		return splitContiguous, true
	}
	return 0, false
}

// span is a byte range of a piece; match tells whether a pattern matched it.
type span struct {
	start, end int
	match      bool
}

// findSpans covers s with alternating non-matching and matching spans, as
// tokenizers' Pattern::find_matches does (invert flips the match flags).
func findSpans(s string, m matcher, invert bool, spans []span) []span {
	spans = spans[:0]
	if s == "" {
		return append(spans, span{0, 0, invert})
	}
	prev := 0
	m.findAll(s, func(start, end int) {
		if start != prev {
			spans = append(spans, span{prev, start, invert})
		}
		spans = append(spans, span{start, end, !invert})
		prev = end
	})
	if prev != len(s) {
		spans = append(spans, span{prev, len(s), invert})
	}
	return spans
}

// applyBehavior turns the spans of findSpans into the kept pieces of a split
// (normalizer.rs NormalizedString::split).
func applyBehavior(spans []span, b splitBehavior) []span {
	out := spans[:0]
	switch b {
	case splitIsolated:
		for _, sp := range spans {
			sp.match = false
			out = append(out, sp)
		}
	case splitRemoved:
		for _, sp := range spans {
			if !sp.match {
				out = append(out, sp)
			}
		}
	case splitContiguous:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
	case splitMergedWithPrevious:
		prevMatch := false
		for _, sp := range spans {
			if sp.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = sp.end
			} else {
				out = append(out, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
	case splitMergedWithNext:
		// Walk backwards, merging each first match into the span after it.
		tmp := make([]span, 0, len(spans))
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			sp := spans[i]
			if sp.match && !prevMatch && len(tmp) > 0 {
				tmp[len(tmp)-1].start = sp.start
			} else {
				tmp = append(tmp, span{sp.start, sp.end, false})
			}
			prevMatch = sp.match
		}
		for i := len(tmp) - 1; i >= 0; i-- {
			out = append(out, tmp[i])
		}
	}
	return out
}

// splitPreTokenizer is the "Split" pre-tokenizer.
type splitPreTokenizer struct {
	pattern  matcher
	behavior splitBehavior
	invert   bool
}

func (p splitPreTokenizer) split(in []piece, out []piece) []piece {
	sp := spanPool.Get().(*[]span)
	defer spanPool.Put(sp)
	spans := (*sp)[:0]
	defer func() { *sp = spans[:0] }()
	for _, pc := range in {
		spans = applyBehavior(findSpans(pc.text, p.pattern, p.invert, spans), p.behavior)
		for _, sp := range spans {
			if sp.end > sp.start {
				out = append(out, piece{pc.text[sp.start:sp.end], pc.atStart && sp.start == 0})
			}
		}
	}
	return out
}

// tilingSplit is the fast path for a Split with behavior Isolated whose
// pattern matches every character (the GPT-style regexes): each match is a
// piece.
type tilingSplit struct{ pattern matcher }

func (p tilingSplit) split(in []piece, out []piece) []piece {
	for _, pc := range in {
		text, atStart := pc.text, pc.atStart
		p.pattern.findAll(text, func(start, end int) {
			if end > start {
				out = append(out, piece{text[start:end], atStart && start == 0})
			}
		})
	}
	return out
}

// runeMatcher matches single runes satisfying f.
type runeMatcher struct{ f func(rune) bool }

func (m runeMatcher) findAll(s string, match func(start, end int)) {
	for i, r := range s {
		if m.f(r) {
			match(i, i+utf8.RuneLen(r))
		}
	}
}

// byteLevelPreTokenizer optionally adds a prefix space and splits with the
// GPT-2 regex (regex is nil when use_regex is false). Mapping bytes to the
// byte-level alphabet happens in the model (see bpeModel), which is
// equivalent and avoids copying every piece.
type byteLevelPreTokenizer struct {
	addPrefixSpace bool
	regex          matcher
}

func (p byteLevelPreTokenizer) split(in []piece, out []piece) []piece {
	for _, pc := range in {
		text := pc.text
		if p.addPrefixSpace && !strings.HasPrefix(text, " ") {
			text = " " + text
		}
		if p.regex == nil {
			if text != "" {
				out = append(out, piece{text, pc.atStart})
			}
			continue
		}
		atStart := pc.atStart
		p.regex.findAll(text, func(start, end int) {
			if end > start {
				out = append(out, piece{text[start:end], atStart && start == 0})
			}
		})
	}
	return out
}

// metaspacePreTokenizer replaces spaces by the replacement character,
// prepends it according to the scheme and splits before each occurrence.
type metaspacePreTokenizer struct {
	replacement string
	scheme      string // "always", "first" or "never"
	splitWords  bool
}

func (p metaspacePreTokenizer) split(in []piece, out []piece) []piece {
	for _, pc := range in {
		text := strings.ReplaceAll(pc.text, " ", p.replacement)
		if !strings.HasPrefix(text, p.replacement) {
			if p.scheme == "always" || (p.scheme == "first" && pc.atStart) {
				text = p.replacement + text
			}
		}
		if !p.splitWords {
			if text != "" {
				out = append(out, piece{text, pc.atStart})
			}
			continue
		}
		spans := applyBehavior(findSpans(text, stringMatcher{p.replacement}, false, nil), splitMergedWithNext)
		for _, sp := range spans {
			if sp.end > sp.start {
				out = append(out, piece{text[sp.start:sp.end], pc.atStart && sp.start == 0})
			}
		}
	}
	return out
}

// whitespaceSplit splits on white space, dropping it.
type whitespaceSplit struct{}

func (whitespaceSplit) split(in []piece, out []piece) []piece {
	for _, pc := range in {
		first := true
		for _, f := range strings.FieldsFunc(pc.text, unicode.IsSpace) {
			out = append(out, piece{f, pc.atStart && first && strings.HasPrefix(pc.text, f)})
			first = false
		}
	}
	return out
}

// preTokenizerSeq applies its steps one after the other.
type preTokenizerSeq []preTokenizer

// pieceBufs are two reusable buffers for the intermediate steps of a
// preTokenizerSeq.
type pieceBufs struct{ free, cur []piece }

var (
	pieceBufPool = sync.Pool{New: func() any { return new(pieceBufs) }}
	spanPool     = sync.Pool{New: func() any { return new([]span) }}
)

func (s preTokenizerSeq) split(in []piece, out []piece) []piece {
	if len(s) == 0 {
		return append(out, in...)
	}
	bufs := pieceBufPool.Get().(*pieceBufs)
	cur := in
	for _, step := range s[:len(s)-1] {
		next := step.split(cur, bufs.free[:0])
		// The previous intermediate result has been consumed.
		bufs.free, bufs.cur = bufs.cur, next
		cur = next
	}
	out = s[len(s)-1].split(cur, out)
	pieceBufPool.Put(bufs)
	return out
}

// buildPreTokenizer turns the "pre_tokenizer" JSON object into a
// preTokenizer (nil for null). byteLevel reports whether a ByteLevel step is
// present, which must be the last one since the model does its byte mapping.
func buildPreTokenizer(c *componentJSON, field string) (p preTokenizer, byteLevel bool, err error) {
	if c == nil {
		return nil, false, nil
	}
	switch c.Type {
	case "Sequence":
		var seq preTokenizerSeq
		for i := range c.Pretokenizers {
			if byteLevel {
				return nil, false, fmt.Errorf("%s.pretokenizers[%d]: a pre-tokenizer after ByteLevel is not supported", field, i)
			}
			step, bl, err := buildPreTokenizer(&c.Pretokenizers[i], fmt.Sprintf("%s.pretokenizers[%d]", field, i))
			if err != nil {
				return nil, false, err
			}
			byteLevel = bl
			if step != nil {
				seq = append(seq, step)
			}
		}
		if len(seq) == 1 {
			return seq[0], byteLevel, nil
		}
		return seq, byteLevel, nil
	case "Split":
		b, ok := parseSplitBehavior(c.Behavior)
		if !ok {
			return nil, false, fmt.Errorf("%s.behavior: unknown split behavior %q", field, c.Behavior)
		}
		m, err := c.Pattern.compile(field + ".pattern")
		if err != nil {
			return nil, false, err
		}
		switch m.(type) {
		case gpt2Matcher, llama3Matcher:
			if b == splitIsolated && !c.Invert {
				return tilingSplit{m}, false, nil
			}
		}
		return splitPreTokenizer{pattern: m, behavior: b, invert: c.Invert}, false, nil
	case "ByteLevel":
		useRegex := c.UseRegex == nil || *c.UseRegex
		p := byteLevelPreTokenizer{addPrefixSpace: c.AddPrefixSpace != nil && *c.AddPrefixSpace}
		if useRegex {
			p.regex = gpt2Matcher{}
		}
		return p, true, nil
	case "Digits":
		b := splitContiguous
		if c.IndividualDigits {
			b = splitIsolated
		}
		return splitPreTokenizer{pattern: runeMatcher{unicode.IsNumber}, behavior: b}, false, nil
	case "Metaspace":
		repl, scheme := c.metaspaceSettings()
		if scheme != "always" && scheme != "first" && scheme != "never" {
			return nil, false, fmt.Errorf("%s.prepend_scheme: unknown value %q (expected always, first or never)", field, scheme)
		}
		return metaspacePreTokenizer{replacement: repl, scheme: scheme, splitWords: c.Split == nil || *c.Split}, false, nil
	case "WhitespaceSplit":
		return whitespaceSplit{}, false, nil
	case "Whitespace":
		m, err := compileGenericPattern(`\w+|[^\w\s]+`)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", field, err)
		}
		return splitPreTokenizer{pattern: m, behavior: splitRemoved, invert: true}, false, nil
	case "":
		return nil, false, fmt.Errorf("%s: missing \"type\"", field)
	default:
		return nil, false, fmt.Errorf("%s: unsupported pre-tokenizer type %q (supported: Sequence, Split, ByteLevel, Digits, Metaspace, Whitespace, WhitespaceSplit)", field, c.Type)
	}
}
