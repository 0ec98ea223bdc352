// Package bundled embeds tether's bundled default model, stories260K (a real
// 260K-parameter Llama trained on TinyStories, from llama2.c, MIT license; see
// stories260K/README.md), so the binary runs its demo with no files beside it.
package bundled

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

//go:embed stories260K/stories260K.bin stories260K/tok512.bin stories260K/LICENSE stories260K/README.md
var files embed.FS

// Stories260K file names inside the bundle.
const (
	Stories260KCheckpoint = "stories260K.bin"
	Stories260KTokenizer  = "tok512.bin"
)

// ExtractStories260K writes the bundled llama2.c files (checkpoint, tokenizer,
// license, readme) into dir and returns the checkpoint's and the tokenizer's paths.
func ExtractStories260K(dir string) (checkpoint, tok string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("bundled: %w", err)
	}
	for _, name := range []string{Stories260KCheckpoint, Stories260KTokenizer, "LICENSE", "README.md"} {
		data, err := files.ReadFile("stories260K/" + name)
		if err != nil {
			return "", "", fmt.Errorf("bundled: bundled %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return "", "", fmt.Errorf("bundled: %w", err)
		}
	}
	return filepath.Join(dir, Stories260KCheckpoint), filepath.Join(dir, Stories260KTokenizer), nil
}
