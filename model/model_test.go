package model

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/bundled"
	"tether/engine"
	"tether/tokenizer"
	"tether/weights"
)

// knownStart is llama2.c's documented greedy output of stories260K from BOS.
const knownStart = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

// convertBundled converts the bundled stories260K into a fresh directory.
func convertBundled(t *testing.T) (hfDir, tokBin string) {
	t.Helper()
	dir := t.TempDir()
	ckpt, tok, err := bundled.ExtractStories260K(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	hfDir = filepath.Join(dir, "hf")
	if err := weights.ConvertLlama2c(ckpt, hfDir); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.ConvertLlama2cTokenizer(tok, hfDir); err != nil {
		t.Fatal(err)
	}
	return hfDir, tok
}

// TestStories260KKnownOutput: the real model, converted, decodes greedily
// from BOS to the text the llama2.c project documents, both when the ids are
// decoded by the written tokenizer.json and by the original llama2.c tokenizer.
func TestStories260KKnownOutput(t *testing.T) {
	hfDir, tokBin := convertBundled(t)
	m, err := Open(hfDir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	bos, err := m.PlainPrompt("")
	if err != nil {
		t.Fatal(err)
	}
	if len(bos) != 1 || bos[0] != 1 {
		t.Fatalf("empty prompt = %v, want [1] (BOS)", bos)
	}
	res, err := m.Engine.Generate(context.Background(), []engine.Request{{Prompt: bos, MaxNewTokens: 40}},
		engine.GenerateOptions{Detokenizer: m.Tokenizer})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res[0].Text, knownStart) {
		t.Fatalf("greedy from BOS via tokenizer.json:\n got %q\nwant prefix %q", res[0].Text, knownStart)
	}
	l2c, err := tokenizer.ReadLlama2cTokenizer(tokBin)
	if err != nil {
		t.Fatal(err)
	}
	text, err := l2c.Decode(res[0].Tokens, false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, knownStart) {
		t.Fatalf("greedy from BOS via the llama2.c tokenizer:\n got %q\nwant prefix %q", text, knownStart)
	}
	// The prompt side: both tokenizers give the same ids for a story prompt.
	const prompt = "Once upon a time, there was a little dog named Max."
	a, err := m.PlainPrompt(prompt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l2c.Encode(prompt, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("tokenizer.json ids %v != llama2.c ids %v", a, b)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("tokenizer.json ids %v != llama2.c ids %v", a, b)
		}
	}
}

// TestSharedCopyIsBundled: the bundled model is byte-identical to the one in
// ../shared (when present), so the tests above check the documented model.
func TestSharedCopyIsBundled(t *testing.T) {
	shared := filepath.Join("..", "..", "shared", "models", "stories260K")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("../shared not present (%v); nothing to compare", err)
	}
	for _, name := range []string{bundled.Stories260KCheckpoint, bundled.Stories260KTokenizer} {
		want, err := os.ReadFile(filepath.Join(shared, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "bundled", "stories260K", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("bundled/stories260K/%s differs from ../shared", name)
		}
	}
}

// TestOpenErrors: references that are not models fail with a clear error.
func TestOpenErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct{ name, ref, want string }{
		{"missing dir", filepath.Join(empty, "nope"), "nope"},
		{"dir without config", empty, "config.json"},
		{"unknown hub id", "no-such-org/no-such-model", "no-such-model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HF_HUB_CACHE", empty)
			_, err := Open(tc.ref, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%q) error = %v, want one mentioning %q", tc.ref, err, tc.want)
			}
		})
	}
}

// TestTokenizerOnly: a directory with only tokenizer files opens for
// tokenize/template use, and the chat prompt encodes what the template renders.
func TestTokenizerOnly(t *testing.T) {
	dir := t.TempDir()
	if err := tokenizer.WriteTestTokenizer(dir, 300); err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, Options{TokenizerOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Config != nil || m.Engine != nil {
		t.Fatalf("tokenizer-only open loaded a config or weights")
	}
	msgs := []tokenizer.Message{{Role: "user", Content: "Hi there"}}
	text, err := m.RenderChat(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "Hi there") || !strings.HasSuffix(text, "assistant\n") {
		t.Fatalf("rendered %q: want the user text and a ChatML generation prompt", text)
	}
	ids, err := m.ChatPrompt(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	back, err := m.Tokenizer.Decode(ids, false)
	if err != nil || back != text {
		t.Fatalf("decode(ChatPrompt) = %q, %v; want the rendered text %q", back, err, text)
	}
	if _, err := m.PlainPrompt(""); err == nil {
		t.Fatal("empty plain prompt without a config (no BOS known) succeeded")
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("full open of a tokenizer-only dir: %v, want an error naming config.json", err)
	}
}

// TestOpenChecksMemoryBeforeLoading: a workload whose KV cache cannot fit in
// this machine's available memory fails before the weights load, naming the
// terms; a small one opens and records its plan.
func TestOpenChecksMemoryBeforeLoading(t *testing.T) {
	hfDir, _ := convertBundled(t)
	avail, err := engine.QueryAvailableMemory("go")
	if err != nil {
		t.Skipf("no available-memory figure on this machine: %v", err)
	}
	// stories260K: 5 layers, 4 KV heads of 8: 1280 bytes of float32 cache
	// per token; 2^20 sequences of 255 prompt tokens (320 cache slots after
	// the go backend's buckets) need 400 GiB.
	_, err = Open(hfDir, Options{NoTokenizer: true, Workload: engine.MemoryWorkload{Batch: 1 << 20, Prompt: 255}})
	if err == nil {
		t.Fatalf("a 400 GiB KV cache opened with %d bytes available", avail.Bytes)
	}
	for _, want := range []string{"does not fit", "KV cache", "MemAvailable"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	m, err := Open(hfDir, Options{NoTokenizer: true, Workload: engine.MemoryWorkload{Batch: 2, Prompt: 8, NewTokens: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Memory.Need <= 0 || m.Memory.Need > m.Memory.Available.Bytes || m.Memory.Workload.Batch != 2 || m.Memory.Warning != "" {
		t.Errorf("plan %+v: want the small workload planned as asked, within the available memory", m.Memory)
	}
}
