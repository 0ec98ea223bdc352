package testmodels

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"tether/model"
	"tether/tokenizer"
	"tether/weights"
)

// Backend is the backend the tests run on: TETHER_TEST_BACKEND or "go".
func Backend() string {
	if b := os.Getenv("TETHER_TEST_BACKEND"); b != "" {
		return b
	}
	return "go"
}

// WriteWeights writes random F32 weights of cfg (same seed, same weights)
// and its config.json into dir, and returns dir.
func WriteWeights(t testing.TB, dir string, cfg Llama, seed uint64) string {
	t.Helper()
	if err := weights.WriteRandomModel(dir, cfg.JSON(), seed, weights.F32); err != nil {
		t.Fatalf("testmodels: random model in %s: %v", dir, err)
	}
	return dir
}

// Write writes a random model of cfg with the ChatML test tokenizer (of
// cfg.Vocab tokens) into dir, and returns dir.
func Write(t testing.TB, dir string, cfg Llama, seed uint64) string {
	t.Helper()
	WriteWeights(t, dir, cfg, seed)
	if err := tokenizer.WriteTestTokenizer(dir, cfg.Vocab); err != nil {
		t.Fatalf("testmodels: test tokenizer in %s: %v", dir, err)
	}
	return dir
}

// Open opens the model directory dir on Backend() and closes it when the
// test ends.
func Open(t testing.TB, dir string) *model.Model {
	t.Helper()
	return OpenWith(t, dir, model.Options{Backend: Backend()})
}

// OpenWith opens the model directory dir with opts and closes it when the
// test ends.
func OpenWith(t testing.TB, dir string, opts model.Options) *model.Model {
	t.Helper()
	m, err := model.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// SetChatTemplate replaces the chat template in dir's tokenizer_config.json with template.
func SetChatTemplate(t testing.TB, dir, template string) {
	t.Helper()
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("testmodels: %s: %v", path, err)
	}
	cfg["chat_template"] = template
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
