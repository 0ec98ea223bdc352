package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// sharedDir is the project's read-only test data (../shared from the
// repository root).
const sharedDir = "../../shared"

// sharedTokenizersDir holds the real tokenizer.json and tokenizer_config.json
// files of ../shared, one directory a model family.
const sharedTokenizersDir = sharedDir + "/tokenizers"

// sharedTokenizers maps fixture names to directories under
// ../shared/tokenizers.
var sharedTokenizers = []struct{ name, dir string }{
	{"smollm2", "smollm2-135m-instruct"},
	{"qwen3", "qwen3"},
	{"llama3", "llama3"},
	{"gemma3", "gemma3"},
}

var (
	loadedMu sync.Mutex
	loaded   = map[string]*HFTokenizer{}
)

// sharedTokenizer loads a tokenizer from ../shared once per test binary,
// skipping the test when the shared data is absent.
func sharedTokenizer(t testing.TB, dir string) *HFTokenizer {
	t.Helper()
	path := filepath.Join(sharedDir, "tokenizers", dir, "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("shared test data not found (%v): the tokenizer tests need %s", err, path)
	}
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tok, ok := loaded[dir]; ok {
		return tok
	}
	tok, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	loaded[dir] = tok
	return tok
}

// readCorpus reads testdata/corpus.jsonl (one JSON string per line).
func readCorpus(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("testdata/corpus.jsonl")
	if err != nil {
		t.Fatalf("corpus: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var s string
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("corpus line %d: %v", len(out)+1, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("corpus: %v", err)
	}
	return out
}

// readJSONFile decodes a JSON file into v.
func readJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
