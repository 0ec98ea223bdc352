package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const tok512Path = sharedDir + "/models/stories260K/tok512.bin"

func readTok512(t *testing.T) *Llama2cTokenizer {
	t.Helper()
	tok, err := ReadLlama2cTokenizer(tok512Path)
	if err != nil {
		if strings.Contains(err.Error(), "no such file") {
			t.Skipf("shared test data not found: %v", err)
		}
		t.Fatal(err)
	}
	return tok
}

// storyTexts reads testdata/stories.jsonl: English story text in the style
// of TinyStories.
func storyTexts(t *testing.T) []string {
	t.Helper()
	f, err := os.ReadFile("testdata/stories.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		var s string
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestLlama2cTokenizerFile(t *testing.T) {
	tok := readTok512(t)
	if tok.VocabSize() != 512 {
		t.Errorf("VocabSize = %d, want 512", tok.VocabSize())
	}
	for id, want := range map[int]string{0: "<unk>", 1: "<s>", 2: "</s>", 3: "<0x00>", 258: "<0xFF>"} {
		if got, _ := tok.Token(id); got != want {
			t.Errorf("Token(%d) = %q, want %q", id, got, want)
		}
	}
	// The file lists merges best first; the first merge is " t".
	if got, _ := tok.Token(259); got != " t" {
		t.Errorf("Token(259) = %q, want \" t\"", got)
	}
}

func TestLlama2cEncodeByHand(t *testing.T) {
	tok := readTok512(t)
	id := func(s string) int {
		i, ok := tok.TokenID(s)
		if !ok {
			t.Fatalf("token %q not in vocabulary", s)
		}
		return i
	}
	tests := []struct {
		text string
		want []int
	}{
		{"", nil},
		// " the" is a single token; the dummy prefix supplies the space.
		{"the", []int{id(" the")}},
		{"The", []int{id(" The")}},
		// A character outside the vocabulary falls back to its UTF-8 bytes + 3.
		{"\u00df", []int{id(" "), 0xC3 + 3, 0x9F + 3}},
	}
	for _, tc := range tests {
		got, err := tok.Encode(tc.text, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	withBOS, _ := tok.Encode("the", true)
	if !slices.Equal(withBOS, []int{1, id(" the")}) {
		t.Errorf("Encode(the, BOS) = %v", withBOS)
	}
}

// llama2cTestTexts is story text plus the parity corpus, minus entries the
// two encoders are documented to treat differently (special-token strings,
// which tokenizer.json splits out, and U+2581, which it reads as a space).
func llama2cTestTexts(t *testing.T) []string {
	texts := storyTexts(t)
	for _, s := range readCorpus(t) {
		if strings.Contains(s, "\u2581") || strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
			continue
		}
		if len(s) > 600 {
			continue // llama2.c's merge loop is quadratic
		}
		texts = append(texts, s)
	}
	return texts
}

// convertTok512 converts tok512.bin into a new tokenizer.json directory and returns it.
func convertTok512(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := ConvertLlama2cTokenizer(tok512Path, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestConvertLlama2cTokenizerMatchesLlama2c(t *testing.T) {
	l2c := readTok512(t)
	dir := convertTok512(t)
	hf, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if hf.VocabSize() != l2c.VocabSize() {
		t.Fatalf("VocabSize: converted %d, llama2.c %d", hf.VocabSize(), l2c.VocabSize())
	}
	if bos, ok := hf.BOS(); !ok || bos != 1 {
		t.Errorf("BOS() = %d, %v; want 1", bos, ok)
	}
	texts := llama2cTestTexts(t)
	for _, text := range texts {
		for _, addSpecial := range []bool{false, true} {
			want, _ := l2c.Encode(text, addSpecial)
			got, err := hf.Encode(text, addSpecial)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%q, %v):\n converted %v\n llama2.c  %v", text, addSpecial, got, want)
				continue
			}
			for _, skip := range []bool{false, true} {
				a, err1 := hf.Decode(got, skip)
				b, err2 := l2c.Decode(got, skip)
				if err1 != nil || err2 != nil || a != b {
					t.Errorf("Decode(%v, skip=%v): converted %q (%v), llama2.c %q (%v)", got, skip, a, err1, b, err2)
				}
				if skip && a != text {
					t.Errorf("round trip of %q gave %q", text, a)
				}
			}
		}
	}
	t.Logf("%d texts encode identically with llama2.c's algorithm and the converted tokenizer.json", len(texts))
	if _, err := hf.Decode([]int{512}, false); err == nil {
		t.Error("Decode of id 512 succeeded, want an out-of-range error")
	}
}

func TestConvertLlama2cTokenizerConfig(t *testing.T) {
	readTok512(t)
	dir := convertTok512(t)
	var cfg map[string]any
	readJSONFile(t, filepath.Join(dir, "tokenizer_config.json"), &cfg)
	if cfg["bos_token"] != "<s>" || cfg["eos_token"] != "</s>" || cfg["add_bos_token"] != true {
		t.Errorf("tokenizer_config.json = %v", cfg)
	}
}

func TestParseLlama2cTokenizerErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "expected at least the int32 max_token_length"},
		{"bad max len", []byte{0, 0, 0, 0}, "max_token_length 0"},
		{"truncated header", []byte{4, 0, 0, 0, 1, 2}, "truncated header"},
		{"length past end", []byte{4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 'a'}, "runs past the end"},
		{"too few tokens", []byte{4, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'}, "expected at least <unk>"},
	}
	for _, tc := range tests {
		_, err := ParseLlama2cTokenizer(tc.data, "x.bin")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "x.bin") {
			t.Errorf("%s: error %v, want one naming x.bin and containing %q", tc.name, err, tc.want)
		}
	}
}

// TestLlama2cMatchesReferenceImplementation compares with ids computed by
// llama2.c's own C encoder (testdata/gen/gen_llama2c_ref.py).
func TestLlama2cMatchesReferenceImplementation(t *testing.T) {
	tok := readTok512(t)
	var fx struct {
		Source string   `json:"source"`
		Texts  []string `json:"texts"`
		IDs    [][]int  `json:"ids"`
	}
	readJSONFile(t, "testdata/fixtures/llama2c_tok512.json", &fx)
	if len(fx.Texts) != len(fx.IDs) || len(fx.Texts) < 1000 {
		t.Fatalf("fixture: %d texts, %d id lists", len(fx.Texts), len(fx.IDs))
	}
	dir := convertTok512(t)
	hf, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, text := range fx.Texts {
		got, _ := tok.Encode(text, false)
		conv, _ := hf.Encode(text, false)
		if !slices.Equal(got, fx.IDs[i]) || !slices.Equal(conv, fx.IDs[i]) {
			bad++
			if bad < 5 {
				t.Errorf("%q:\n llama2c  %v\n tok.json %v\n want     %v", text, got, conv, fx.IDs[i])
			}
		}
	}
	t.Logf("%d/%d texts identical to %s (both encoders)", len(fx.Texts)-bad, len(fx.Texts), fx.Source)
}

func TestOpen(t *testing.T) {
	readTok512(t)
	dir := convertTok512(t)
	for _, tc := range []struct {
		path string
		want string // type name
	}{
		{dir, "*tokenizer.HFTokenizer"},
		{filepath.Join(dir, "tokenizer.json"), "*tokenizer.HFTokenizer"},
		{tok512Path, "*tokenizer.Llama2cTokenizer"},
	} {
		tok, err := Open(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprintf("%T", tok); got != tc.want {
			t.Errorf("Open(%s) = %s, want %s", tc.path, got, tc.want)
		}
		ids, _ := tok.Encode("Once upon a time", true)
		if text, _ := tok.Decode(ids, true); text != "Once upon a time" {
			t.Errorf("Open(%s): round trip gave %q", tc.path, text)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Error("Open of a missing path succeeded")
	}
}
