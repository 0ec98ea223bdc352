package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchText is English prose plus code and some other scripts, about 300 kB.
func benchText(b *testing.B) string {
	b.Helper()
	corpus := readCorpus(b)
	var sb strings.Builder
	for sb.Len() < 300_000 {
		for _, line := range corpus {
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

func benchmarkEncode(b *testing.B, dir string) {
	tok := sharedTokenizer(b, dir)
	text := benchText(b)
	// Split into paragraphs so that the BPE cache sees realistic reuse.
	docs := strings.SplitAfter(text, "\n")
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, d := range docs {
			if _, err := tok.Encode(d, false); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkEncodeSmolLM2(b *testing.B) { benchmarkEncode(b, "smollm2-135m-instruct") }
func BenchmarkEncodeQwen3(b *testing.B)   { benchmarkEncode(b, "qwen3") }
func BenchmarkEncodeLlama3(b *testing.B)  { benchmarkEncode(b, "llama3") }
func BenchmarkEncodeGemma3(b *testing.B)  { benchmarkEncode(b, "gemma3") }

func benchmarkLoad(b *testing.B, dir string) {
	path := filepath.Join(sharedDir, "tokenizers", dir, "tokenizer.json")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skipf("shared test data not found: %v", err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Load(data, path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadSmolLM2(b *testing.B) { benchmarkLoad(b, "smollm2-135m-instruct") }
func BenchmarkLoadQwen3(b *testing.B)   { benchmarkLoad(b, "qwen3") }
func BenchmarkLoadLlama3(b *testing.B)  { benchmarkLoad(b, "llama3") }
func BenchmarkLoadGemma3(b *testing.B)  { benchmarkLoad(b, "gemma3") }

// BenchmarkEncodeColdCache empties the BPE cache before every pass, so
// every distinct word goes through the merge loop once per pass.
func BenchmarkEncodeColdCacheLlama3(b *testing.B) {
	tok := sharedTokenizer(b, "llama3")
	text := benchText(b)
	docs := strings.SplitAfter(text, "\n")
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok.model.cache.mu.Lock()
		clear(tok.model.cache.entries)
		tok.model.cache.mu.Unlock()
		for _, d := range docs {
			if _, err := tok.Encode(d, false); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEncodeGemma3OneDocument encodes the whole text as one string:
// Gemma's pre-tokenizer leaves it as a single BPE word of ~300k symbols.
func BenchmarkEncodeGemma3OneDocument(b *testing.B) {
	tok := sharedTokenizer(b, "gemma3")
	text := benchText(b)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tok.Encode(text, false); err != nil {
			b.Fatal(err)
		}
	}
}
