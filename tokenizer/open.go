package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Open loads a tokenizer from a path: a directory holding tokenizer.json, a
// tokenizer.json file, or a llama2.c tokenizer file (any other file, e.g.
// tokenizer.bin or tok512.bin).
func Open(path string) (Tokenizer, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if info.IsDir() {
		return LoadDir(path)
	}
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return LoadFile(path)
	}
	return ReadLlama2cTokenizer(path)
}
