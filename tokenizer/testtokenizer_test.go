package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteTestTokenizer(t *testing.T) {
	corpus := readCorpus(t)
	for _, size := range []int{260, 300, 1000, 5000} {
		dir := t.TempDir()
		if err := WriteTestTokenizer(dir, size); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadDir(dir)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if tok.VocabSize() != size {
			t.Errorf("size %d: VocabSize %d", size, tok.VocabSize())
		}
		for i, s := range testSpecialTokens {
			id, ok := tok.TokenID(s)
			if want := size - len(testSpecialTokens) + i; !ok || id != want || !tok.IsSpecial(id) {
				t.Errorf("size %d: %s has id %d (special %v), want special id %d", size, s, id, tok.IsSpecial(id), want)
			}
		}
		total := 0
		for _, text := range corpus {
			ids, err := tok.Encode(text, false)
			if err != nil {
				t.Fatal(err)
			}
			total += len(ids)
			for _, id := range ids {
				if id < 0 || id >= size {
					t.Fatalf("size %d: id %d out of range", size, id)
				}
			}
			if got, _ := tok.Decode(ids, false); got != text {
				t.Fatalf("size %d: round trip of %q gave %q", size, text, got)
			}
		}
		t.Logf("vocab %d: corpus encodes to %d ids", size, total)
		var cfg map[string]any
		readJSONFile(t, filepath.Join(dir, "tokenizer_config.json"), &cfg)
		tmpl, _ := cfg["chat_template"].(string)
		if !strings.Contains(tmpl, "<|im_start|>") || cfg["eos_token"] != "<|im_end|>" || cfg["bos_token"] == nil {
			t.Errorf("size %d: tokenizer_config.json %v", size, cfg)
		}
	}
}

// A larger vocabulary must compress English better: the learned merges are
// a prefix of each other's, so the token count cannot grow.
func TestWriteTestTokenizerMergesCompress(t *testing.T) {
	text := strings.Join(readCorpus(t)[:300], "\n")
	prev := -1
	for _, size := range []int{260, 400, 800, 1500} {
		dir := t.TempDir()
		if err := WriteTestTokenizer(dir, size); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := tok.Encode(text, false)
		if prev >= 0 && len(ids) > prev {
			t.Errorf("vocab %d: %d ids, more than %d with a smaller vocabulary", size, len(ids), prev)
		}
		prev = len(ids)
	}
	if prev >= len(text) {
		t.Errorf("%d ids for %d bytes: no compression", prev, len(text))
	}
}

func TestWriteTestTokenizerDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := WriteTestTokenizer(a, 700); err != nil {
		t.Fatal(err)
	}
	if err := WriteTestTokenizer(b, 700); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(filepath.Join(a, "tokenizer.json"))
	db, _ := os.ReadFile(filepath.Join(b, "tokenizer.json"))
	if string(da) != string(db) {
		t.Error("two runs wrote different tokenizer.json files")
	}
}

func TestWriteTestTokenizerTooSmall(t *testing.T) {
	err := WriteTestTokenizer(t.TempDir(), 259)
	if err == nil || !strings.Contains(err.Error(), "259") {
		t.Errorf("error %v, want one naming the size 259", err)
	}
}
