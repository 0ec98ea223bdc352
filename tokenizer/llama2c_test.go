package tokenizer

import (
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

// storyText is English story text in the style of TinyStories.
var storyText = []string{
	"Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
	"One day, she saw a big, red ball. She wanted to play with it, but it was too high.",
	"Tom and his mom went to the store. They bought apples, bread and milk. \"Thank you, Mom!\" said Tom.",
	"The sun was shining and the birds were singing. The little dog ran fast and jumped over the log.",
	"Ben was sad because he lost his toy car. His friend Sue helped him look for it under the bed.",
	"They found it! Ben smiled and said, \"You are my best friend.\" Sue hugged him.",
	"The cat's name was Whiskers. Whiskers didn't like the rain, so he stayed inside by the warm fire.",
	"At night, the moon was bright. Lucy looked at the stars and made a wish: she wanted to fly.",
	"  Two spaces in front, a tab\there, and a newline\nat the end.\n",
	"Numbers: 1, 22, 333, 4444 and 55555; symbols: @#$%^&*()_+{}|~`<>?",
	"Caf\u00e9, na\u00efve, \u00fcber, \u65e5\u672c, \U0001F600 - characters outside the small vocabulary.",
	"",
	" ",
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
	texts := slices.Clone(storyText)
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

func TestConvertLlama2cTokenizerMatchesLlama2c(t *testing.T) {
	l2c := readTok512(t)
	dir := t.TempDir()
	if err := ConvertLlama2cTokenizer(tok512Path, dir); err != nil {
		t.Fatal(err)
	}
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
	dir := t.TempDir()
	if err := ConvertLlama2cTokenizer(tok512Path, dir); err != nil {
		t.Fatal(err)
	}
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
