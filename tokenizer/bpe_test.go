package tokenizer

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// bpeOnly builds a tokenizer.json with only a BPE model (no normalizer or
// pre-tokenizer), so Encode runs the model on the whole input.
func bpeOnly(t *testing.T, vocab map[string]int, merges [][2]string, opts map[string]any) *HFTokenizer {
	t.Helper()
	if merges == nil {
		merges = [][2]string{}
	}
	model := map[string]any{"type": "BPE", "vocab": vocab, "merges": merges}
	for k, v := range opts {
		model[k] = v
	}
	data, err := json.Marshal(map[string]any{"model": model})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := Load(data, "bpe.json")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Cases from the Rust test suite of tokenizers' BPE model (models/bpe/
// model.rs): merges, unknown tokens with and without fuse_unk, byte
// fallback and ignore_merges.
func TestBPEModelLikeRust(t *testing.T) {
	hello := map[string]int{"h": 0, "e": 1, "l": 2, "o": 3, "he": 4, "hel": 5, "hell": 6, "hello": 7}
	helloMerges := [][2]string{{"h", "e"}, {"he", "l"}, {"hel", "l"}, {"hell", "o"}}
	withUnk := map[string]int{"<unk>": 8}
	for k, v := range hello {
		withUnk[k] = v
	}
	byteVocab := map[string]int{"h": 300, "e": 301, "<unk>": 400}
	for b := 0; b < 256; b++ {
		byteVocab[fmt.Sprintf("<0x%02X>", b)] = b
	}
	turkish := map[string]int{".:.:": 0, "Ġbelirtilen": 1, ".": 2, ":": 3, "bel": 4, "irtilen": 5, "Ġ": 6, ".:": 7,
		"belirtilen": 8, ".:.": 9, "be": 10, "l": 11, "ir": 12, "ti": 13, "en": 14, "irtil": 15, "irti": 16, "i": 17,
		"r": 18, "t": 19, "b": 20, "e": 21, "n": 22}
	turkishMerges := [][2]string{{".", ":"}, {"b", "e"}, {"be", "l"}, {"i", "r"}, {"t", "i"}, {"ir", "ti"}, {"e", "n"}, {"irti", "l"}}

	tests := []struct {
		name   string
		vocab  map[string]int
		merges [][2]string
		opts   map[string]any
		cases  map[string][]int
	}{
		{"merges", hello, helloMerges, nil, map[string][]int{
			"hello": {7}, "hell": {6}, "helo": {5, 3}, "oleh": {3, 2, 1, 0}, "": nil,
			"hxe": {4}, // no unk_token: the unknown 'x' is dropped
		}},
		{"unk", withUnk, helloMerges, map[string]any{"unk_token": "<unk>"}, map[string][]int{
			"hxe": {0, 8, 1}, "xh": {8, 0}, "hxxe": {0, 8, 8, 1}, "xx": {8, 8},
		}},
		{"fuse_unk", withUnk, helloMerges, map[string]any{"unk_token": "<unk>", "fuse_unk": true}, map[string][]int{
			"hxxe": {0, 8, 1}, "xxh": {8, 0}, "xxxx": {8}, "xhx": {8, 0, 8},
		}},
		{"byte_fallback", byteVocab, nil, map[string]any{"byte_fallback": true}, map[string][]int{
			"hé": {300, 0xC3, 0xA9}, "🤗": {0xF0, 0x9F, 0xA4, 0x97},
		}},
		{"byte_fallback over unk", byteVocab, nil, map[string]any{"byte_fallback": true, "unk_token": "<unk>"}, map[string][]int{
			"é": {0xC3, 0xA9},
		}},
		{"byte_fallback partial", map[string]int{"<unk>": 0, "<0x61>": 1}, nil, map[string]any{"byte_fallback": true, "unk_token": "<unk>"}, map[string][]int{
			"c": {0}, "a": {1},
		}},
		{"byte_fallback newline", map[string]int{"<unk>": 0, "<0x0A>": 1}, nil, map[string]any{"byte_fallback": true, "unk_token": "<unk>"}, map[string][]int{
			"\n": {1},
		}},
		{"ignore_merges hello", hello, helloMerges, map[string]any{"ignore_merges": true}, map[string][]int{
			"hello": {7}, "helo": {5, 3},
		}},
		{"ignore_merges", turkish, turkishMerges, map[string]any{"ignore_merges": true}, map[string][]int{
			".:.:": {0}, "Ġbelirtilen": {1},
		}},
		{"without ignore_merges", turkish, turkishMerges, nil, map[string][]int{
			".:.:": {7, 7}, "Ġbelirtilen": {6, 4, 15, 14},
		}},
	}
	for _, tc := range tests {
		tok := bpeOnly(t, tc.vocab, tc.merges, tc.opts)
		for in, want := range tc.cases {
			got, err := tok.Encode(in, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", tc.name, in, got, want)
			}
		}
	}
}

// The heap-based merge loop used for long words must agree with the simple
// one used for short words.
func TestMergeAllHeapMatchesSimple(t *testing.T) {
	tok := sharedTokenizer(t, "gemma3")
	m := tok.model
	corpus := readCorpus(t)
	sc := new(bpeScratch)
	checked := 0
	for _, text := range corpus {
		syms := m.initialSymbols(sc, normalizeForTest(tok, text), false)
		if len(syms) < 2 || len(syms) > 64 {
			continue
		}
		a := m.mergeAll(sc, append([]int32(nil), syms...))
		a = append([]int32(nil), a...)
		b := m.mergeAllHeap(sc, append([]int32(nil), syms...))
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("%q: simple %v, heap %v", text, a, b)
		}
		checked++
	}
	if checked < 500 {
		t.Fatalf("only %d words checked", checked)
	}
}

func normalizeForTest(t *HFTokenizer, s string) string {
	if t.normalizer == nil {
		return s
	}
	return t.normalizer.normalize(s)
}
