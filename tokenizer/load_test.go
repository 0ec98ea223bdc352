package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// minimalTokenizerJSON is a valid byte-level tokenizer.json with a tiny
// vocabulary, for error and fuzz tests: "a", "b", "ab" and one merge.
const minimalTokenizerJSON = `{
  "version": "1.0",
  "added_tokens": [{"id": 3, "content": "<eos>", "special": true, "normalized": false}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "post_processor": null,
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
}`

func TestLoadMinimal(t *testing.T) {
	tok, err := Load([]byte(minimalTokenizerJSON), "mini.json")
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := tok.Encode("abab<eos>", false)
	if want := []int{2, 2, 3}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	if tok.VocabSize() != 4 {
		t.Errorf("VocabSize = %d", tok.VocabSize())
	}
}

func TestLoadErrors(t *testing.T) {
	mod := func(old, new string) string { return strings.Replace(minimalTokenizerJSON, old, new, 1) }
	tests := []struct {
		name, json string
		want       []string // substrings of the error
	}{
		{"not JSON", "hello", []string{"bad.json", "malformed JSON"}},
		{"truncated", minimalTokenizerJSON[:100], []string{"bad.json", "offset"}},
		{"trailing data", minimalTokenizerJSON + "}", []string{"bad.json", "after the top-level object"}},
		{"no model", `{"added_tokens": []}`, []string{"bad.json", `"model"`, "missing"}},
		{"wordpiece", mod(`"type": "BPE"`, `"type": "WordPiece"`), []string{"bad.json", "WordPiece", "only BPE"}},
		{"unigram", mod(`"type": "BPE"`, `"type": "Unigram"`), []string{"Unigram"}},
		{"vocab not object", mod(`{"a": 0, "b": 1, "ab": 2}`, `[1, 2]`), []string{"vocab", "expected '{'"}},
		{"negative id", mod(`"a": 0`, `"a": -1`), []string{"vocab", `token "a"`, "non-negative integer"}},
		{"merge unknown token", mod(`["a b"]`, `["a c"]`), []string{"merges", "merge 0", `"c"`}},
		{"merge without space", mod(`["a b"]`, `["ab"]`), []string{"merge 0", "two tokens"}},
		{"merge result missing", mod(`"ab": 2`, `"x": 2`), []string{"merge 0", "merged token", `"ab"`}},
		{"merge triple", mod(`["a b"]`, `[["a", "b", "c"]]`), []string{"merge 0", "pair"}},
		{"dropout", mod(`"dropout": null`, `"dropout": 0.1`), []string{"dropout"}},
		{"unk missing", mod(`"unk_token": null`, `"unk_token": "<unk>"`), []string{"unk_token", "<unk>"}},
		{"unknown normalizer", mod(`"normalizer": null`, `"normalizer": {"type": "Precompiled"}`), []string{"normalizer", "Precompiled"}},
		{"unknown pre-tokenizer", mod(`{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`, `{"type": "BertPreTokenizer"}`), []string{"pre_tokenizer", "BertPreTokenizer"}},
		{"bad split behavior", mod(`{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`, `{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}`), []string{"pre_tokenizer.behavior", "Sideways"}},
		{"bad regex", mod(`{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`, `{"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}`), []string{"pre_tokenizer.pattern", "(("}},
		{"unknown decoder", mod(`"decoder": {"type": "ByteLevel"}`, `"decoder": {"type": "CTC"}`), []string{"decoder", "CTC"}},
		{"added token without id", mod(`{"id": 3, `, `{`), []string{"added_tokens[0].id"}},
		{"template unknown token", mod(`"post_processor": null`, `"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {}}`), []string{"post_processor.single[0]", "<s>"}},
		{"template id out of range", mod(`"post_processor": null`, `"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [99], "tokens": ["<s>"]}}}`), []string{"post_processor", "99"}},
		{"added tokens wrong type", mod(`"added_tokens": [`, `"added_tokens": {"x": [`), []string{"bad.json"}},
	}
	for _, tc := range tests {
		_, err := Load([]byte(tc.json), "bad.json")
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "tokenizer.json") {
		t.Errorf("truncated file: %v", err)
	}
}

func TestDecodeOutOfRange(t *testing.T) {
	tok, err := Load([]byte(minimalTokenizerJSON), "mini.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, ids := range [][]int{{0, 4}, {-1}, {1 << 40}} {
		if _, err := tok.Decode(ids, false); err == nil || !strings.Contains(err.Error(), "not in the vocabulary") {
			t.Errorf("Decode(%v): %v, want an out-of-range error", ids, err)
		}
	}
	if s, ok := tok.Token(99); ok || s != "" {
		t.Errorf("Token(99) = %q, %v", s, ok)
	}
}

func TestAddedTokenFlags(t *testing.T) {
	base := `{"added_tokens": [ADDED], "normalizer": null, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
	"decoder": {"type": "ByteLevel"},
	"model": {"type": "BPE", "vocab": VOCAB, "merges": []}}`
	var vocab strings.Builder
	vocab.WriteString("{")
	for b := 0; b < 256; b++ {
		if b > 0 {
			vocab.WriteString(",")
		}
		vocab.WriteString(`"` + jsonEscape(byteToString[b]) + `":` + itoa(b))
	}
	vocab.WriteString("}")
	mk := func(flags string) *HFTokenizer {
		js := strings.Replace(base, "VOCAB", vocab.String(), 1)
		js = strings.Replace(js, "ADDED", `{"id": 256, "content": "<x>", "special": true, `+flags+`}`, 1)
		tok, err := Load([]byte(js), "flags.json")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bytesOf := func(s string) []int {
		var out []int
		for i := 0; i < len(s); i++ {
			out = append(out, int(s[i]))
		}
		return out
	}
	cat := func(parts ...[]int) []int {
		var out []int
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		flags, text string
		want        []int
	}{
		{`"lstrip": true`, "a  <x> b", cat(bytesOf("a"), []int{256}, bytesOf(" b"))},
		{`"rstrip": true`, "a  <x>  b", cat(bytesOf("a "), bytesOf(" "), []int{256}, bytesOf("b"))},
		{`"single_word": true`, "a<x>b", bytesOf("a<x>b")},
		{`"single_word": true`, "a <x> b", cat(bytesOf("a "), []int{256}, bytesOf(" b"))},
		{`"single_word": false`, "a<x>b", cat(bytesOf("a"), []int{256}, bytesOf("b"))},
	}
	for _, tc := range tests {
		tok := mk(tc.flags)
		got, _ := tok.Encode(tc.text, false)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Encode(%q) = %v, want %v", tc.flags, tc.text, got, tc.want)
		}
	}
}

func jsonEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(`\u00` + string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15]))
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimalTokenizerJSON))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}}`))
	f.Add([]byte(`{"model": {"vocab": {"a": 0}, "merges": [["a", "a"]]}, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "x"}]}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"\u00e9\ud83d\ude00": 1}}, "pre_tokenizer": {"type": "Metaspace", "prepend_scheme": "first"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Load(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		ids, err := tok.Encode("Hello, wörld! <eos> 123", true)
		if err != nil {
			return
		}
		_, _ = tok.Decode(ids, false)
	})
}

func FuzzEncodeDecode(f *testing.F) {
	dir := f.TempDir()
	if err := WriteTestTokenizer(dir, 600); err != nil {
		f.Fatal(err)
	}
	tok, err := LoadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "Hello world", "  \t\n x", "日本語 😀", "<|im_start|>user\nhi<|im_end|>", "it's 12345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tok.Decode(ids, false)
		if err != nil {
			t.Fatal(err)
		}
		want := s
		if !utf8.ValidString(s) {
			want = string(appendLossyUTF8(nil, []byte(s)))
		}
		if got != want {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		checkStream(t, tok, ids, false)
	})
}

func TestUnknownTokensAndRoberta(t *testing.T) {
	base := `{"added_tokens": [{"id": 0, "content": "<s>", "special": true}, {"id": 1, "content": "</s>", "special": true}],
	"normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "_"}, {"type": "Replace", "pattern": {"String": " "}, "content": "_"}]},
	"post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0]},
	"model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": FUSE,
	  "vocab": {"<s>": 0, "</s>": 1, "<unk>": 2, "_": 3, "a": 4, "b": 5, "_a": 6},
	  "merges": ["_ a"]}}`
	for _, tc := range []struct {
		fuse string
		text string
		want []int
	}{
		// "_a b" after normalization: "_a", "_", "b"; unknown runs become <unk>.
		{"false", "a b", []int{6, 3, 5}},
		{"false", "axyb", []int{6, 2, 2, 5}},
		{"true", "axyb", []int{6, 2, 5}},
		{"true", "xy", []int{3, 2}},
	} {
		tok, err := Load([]byte(strings.Replace(base, "FUSE", tc.fuse, 1)), "unk.json")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tok.Encode(tc.text, false)
		if !slices.Equal(got, tc.want) {
			t.Errorf("fuse_unk %s: Encode(%q) = %v, want %v", tc.fuse, tc.text, got, tc.want)
		}
		withSpecial, _ := tok.Encode(tc.text, true)
		if want := append(append([]int{0}, tc.want...), 1); !slices.Equal(withSpecial, want) {
			t.Errorf("RobertaProcessing: %v, want %v", withSpecial, want)
		}
	}
}
