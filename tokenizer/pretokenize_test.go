package tokenizer

import (
	"slices"
	"testing"
)

// The expected splits are those of the Rust test suite of tokenizers
// (pre_tokenizers/metaspace.rs, tests basic, multiple_spaces and
// non_legacy_meta_space).
func TestMetaspaceLikeRust(t *testing.T) {
	sOnly, err := compilePattern(`(<s>)`)
	if err != nil {
		t.Fatal(err)
	}
	splitS := splitPreTokenizer{pattern: sOnly, behavior: splitIsolated}
	always := metaspacePreTokenizer{replacement: "▁", scheme: "always", splitWords: true}
	firstNoSplit := metaspacePreTokenizer{replacement: "▁", scheme: "first", splitWords: false}
	tests := []struct {
		name string
		pre  preTokenizer
		text string
		want []string
	}{
		{"basic", always, "Hey friend!", []string{"▁Hey", "▁friend!"}},
		{"multiple spaces", always, "Hey   friend!", []string{"▁Hey", "▁", "▁", "▁friend!"}},
		{"first, no split", preTokenizerSeq{splitS, firstNoSplit}, "Hey my friend <s>how▁are you",
			[]string{"▁Hey▁my▁friend▁", "<s>", "how▁are▁you"}},
		{"first then always", preTokenizerSeq{splitS, firstNoSplit, always}, "Hey my friend <s>how▁are you",
			[]string{"▁Hey", "▁my", "▁friend", "▁", "▁<s>", "▁how", "▁are", "▁you"}},
		{"prefix space", preTokenizerSeq{splitS, firstNoSplit}, " Hey <s>how", []string{"▁Hey▁", "<s>", "how"}},
		{"many splits", preTokenizerSeq{splitS, firstNoSplit}, " Hey <s>how <s>are <s> you",
			[]string{"▁Hey▁", "<s>", "how▁", "<s>", "are▁", "<s>", "▁you"}},
	}
	for _, tc := range tests {
		var got []string
		for _, p := range tc.pre.split([]piece{{tc.text, true}}, nil) {
			got = append(got, p.text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	dec := metaspaceDecoder{replacement: "▁", scheme: "always"}
	if got := dec.decodeChain([]string{"▁Hey", "▁friend!"}); !slices.Equal(got, []string{"Hey", " friend!"}) {
		t.Errorf("decoder: %q", got)
	}
}

// Decoder cases from the Rust test suite (decoders/byte_fallback.rs,
// decoders/strip.rs, decoders/fuse.rs).
func TestDecodersLikeRust(t *testing.T) {
	tests := []struct {
		name string
		d    decoder
		in   []string
		want []string
	}{
		{"byte fallback plain", byteFallbackDecoder{}, []string{"Hey", "friend!"}, []string{"Hey", "friend!"}},
		{"byte fallback byte", byteFallbackDecoder{}, []string{"<0x61>"}, []string{"a"}},
		{"byte fallback invalid", byteFallbackDecoder{}, []string{"<0xE5>"}, []string{"\uFFFD"}},
		{"byte fallback two invalid", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8f>"}, []string{"\uFFFD", "\uFFFD"}},
		{"byte fallback complete", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8f>", "<0xab>"}, []string{"叫"}},
		{"byte fallback then text", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8f>", "<0xab>", "a"}, []string{"叫", "a"}},
		{"byte fallback not a byte", byteFallbackDecoder{}, []string{"<0xE5>", "<0x8f>", "a"}, []string{"\uFFFD", "\uFFFD", "a"}},
		{"fuse", fuseDecoder{}, []string{"Hey", " friend!"}, []string{"Hey friend!"}},
		{"strip", stripDecoder{content: 'H', start: 1, stop: 0}, []string{"Hey", " friend!", "HHH"}, []string{"ey", " friend!", "HH"}},
		{"strip both", stripDecoder{content: 'y', start: 0, stop: 1}, []string{"Hey", " friend!"}, []string{"He", " friend!"}},
	}
	for _, tc := range tests {
		if got := tc.d.decodeChain(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestByteLevelAlphabet(t *testing.T) {
	// GPT-2's table: printable bytes map to themselves, space to U+0120 'Ġ',
	// newline to U+010A 'Ċ', and the 256 images are distinct.
	if byteToRune[' '] != 'Ġ' || byteToRune['\n'] != 'Ċ' || byteToRune['A'] != 'A' {
		t.Errorf("byteToRune: space %q newline %q", byteToRune[' '], byteToRune['\n'])
	}
	seen := map[rune]bool{}
	for b := 0; b < 256; b++ {
		if seen[byteToRune[b]] {
			t.Fatalf("byte %d maps to a repeated rune %q", b, byteToRune[b])
		}
		seen[byteToRune[b]] = true
	}
	if byteToRune[0xAD] != 'Ń' {
		t.Errorf("byte 0xAD maps to %q, want 'Ń'", byteToRune[0xAD])
	}
}

func TestLossyUTF8LikeRust(t *testing.T) {
	// String::from_utf8_lossy replaces each maximal invalid subpart.
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one replacement
		{"\xe2\x82x", "\uFFFDx"},               // same, followed by ASCII
		{"\xff\xfe", "\uFFFD\uFFFD"},           // two invalid bytes
		{"\xf0\x9f\x98", "\uFFFD"},             // truncated emoji
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: ED then two stray continuation bytes
		{"\xc3\xa9\x80", "é\uFFFD"},
	}
	for _, tc := range tests {
		if got := string(appendLossyUTF8(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("lossy(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
