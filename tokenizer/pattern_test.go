package tokenizer

import (
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// matches lists the match ranges of m in s.
func matches(m matcher, s string) [][2]int {
	var out [][2]int
	m.findAll(s, func(a, b int) { out = append(out, [2]int{a, b}) })
	return out
}

// randomTexts mixes characters of the classes the pre-tokenizer regexes
// distinguish, so that every branch and boundary is exercised.
func randomTexts(n int, seed int64) []string {
	rng := rand.New(rand.NewSource(seed))
	pieces := []string{" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u0085", "\u2009", "a", "Z", "é",
		"日", "ß", "1", "23", "٣", "½", "'", "'s", "'S", "'ll", "'LL", "'re", "'d", ".", "!!", "(", "😀", "\u0301",
		"-", "_", "\ufeff", "x", "abc", "Hello"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := rng.Intn(12); k >= 0; k-- {
			b.WriteString(pieces[rng.Intn(len(pieces))])
		}
		out[i] = b.String()
	}
	return out
}

// TestHandWrittenPatternsMatchRegex checks the hand-written GPT-2, Llama 3
// and Qwen 2 matchers against the same regexes run by regexp2, a
// backtracking engine like Oniguruma.
func TestHandWrittenPatternsMatchRegex(t *testing.T) {
	texts := append(readCorpus(t), randomTexts(3000, 1)...)
	for _, tc := range []struct {
		name    string
		pattern string
		fast    matcher
	}{
		{"gpt2", gpt2Pattern, gpt2Matcher{}},
		{"llama3", llama3Pattern, llama3Matcher{maxDigits: 3}},
		{"qwen2", qwen2Pattern, llama3Matcher{maxDigits: 1}},
	} {
		slow, err := compileGenericPattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := slow.(backtrackMatcher); !ok {
			t.Fatalf("%s: expected the regexp2 engine for a lookahead pattern, got %T", tc.name, slow)
		}
		bad := 0
		for _, s := range texts {
			got, want := matches(tc.fast, s), matches(slow, s)
			if !slices.Equal(got, want) {
				bad++
				if bad <= 5 {
					t.Errorf("%s: %q:\n hand-written %v\n regexp2      %v", tc.name, s, got, want)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%s: %d of %d texts differ", tc.name, bad, len(texts))
		}
	}
}

func TestRewriteShorthands(t *testing.T) {
	tests := []struct{ in, want string }{
		{`\s+`, "[" + whiteSpaceClassRE2 + "]+"},
		{`[^\s\p{L}]`, "[^" + whiteSpaceClassRE2 + `\p{L}]`},
		{`\S`, "[^" + whiteSpaceClassRE2 + "]"},
		{`a\.b`, `a\.b`},
		{`[]\s]`, "[]" + whiteSpaceClassRE2 + "]"},
	}
	for _, tc := range tests {
		got, ok := rewriteShorthands(tc.in, whiteSpaceClassRE2)
		if !ok || got != tc.want {
			t.Errorf("rewriteShorthands(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := rewriteShorthands(`[\S]`, whiteSpaceClassRE2); ok {
		t.Error(`[\S] cannot be rewritten inside a class, want ok=false`)
	}
}

func TestSplitBehaviors(t *testing.T) {
	// "a-b--c" split on "-": the behaviors of tokenizers' SplitDelimiterBehavior.
	tests := []struct {
		b    splitBehavior
		want []string
	}{
		{splitRemoved, []string{"a", "b", "c"}},
		{splitIsolated, []string{"a", "-", "b", "-", "-", "c"}},
		{splitMergedWithPrevious, []string{"a-", "b-", "-", "c"}},
		{splitMergedWithNext, []string{"a", "-b", "-", "-c"}},
		{splitContiguous, []string{"a", "-", "b", "--", "c"}},
	}
	for _, tc := range tests {
		p := splitPreTokenizer{pattern: stringMatcher{"-"}, behavior: tc.b}
		var got []string
		for _, pc := range p.split([]piece{{"a-b--c", true}}, nil) {
			got = append(got, pc.text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("behavior %d: %q, want %q", tc.b, got, tc.want)
		}
	}
	inv := splitPreTokenizer{pattern: stringMatcher{"-"}, behavior: splitRemoved, invert: true}
	var got []string
	for _, pc := range inv.split([]piece{{"a-b--c", true}}, nil) {
		got = append(got, pc.text)
	}
	if !slices.Equal(got, []string{"-", "-", "-"}) {
		t.Errorf("inverted Removed: %q", got)
	}
}

// Oniguruma (Ruby syntax) treats ^ and $ as line anchors.
func TestGenericPatternLineAnchors(t *testing.T) {
	for _, pattern := range []string{`^a`, `^a(?=\n|$)`} {
		m, err := compileGenericPattern(pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := matches(m, "a\na"); !slices.Equal(got, [][2]int{{0, 1}, {2, 3}}) {
			t.Errorf("%s (%T) on \"a\\na\": %v", pattern, m, got)
		}
	}
}
