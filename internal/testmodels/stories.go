package testmodels

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"tether/bundled"
	"tether/tokenizer"
	"tether/weights"
)

var (
	storiesOnce sync.Once
	storiesDir  string
	storiesErr  error
)

// Stories260K returns a Hugging Face directory holding the bundled
// stories260K (a real model without a chat template), converted once per
// test binary into a temporary directory.
func Stories260K(t testing.TB) string {
	t.Helper()
	storiesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tether-test-stories")
		if err != nil {
			storiesErr = fmt.Errorf("testmodels: stories260K: %w", err)
			return
		}
		storiesDir, storiesErr = convertStories260K(dir)
	})
	if storiesErr != nil {
		t.Fatal(storiesErr)
	}
	return storiesDir
}

// convertStories260K extracts the bundled llama2.c files into dir/src and
// converts them into dir/stories260K, which it returns.
func convertStories260K(dir string) (string, error) {
	ckpt, tok, err := bundled.ExtractStories260K(filepath.Join(dir, "src"))
	if err != nil {
		return "", err
	}
	hf := filepath.Join(dir, "stories260K")
	if err := weights.ConvertLlama2c(ckpt, hf); err != nil {
		return "", err
	}
	if err := tokenizer.ConvertLlama2cTokenizer(tok, hf); err != nil {
		return "", err
	}
	return hf, nil
}
