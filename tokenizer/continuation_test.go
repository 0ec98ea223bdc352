package tokenizer

import (
	"strings"
	"testing"
)

// continuationTokenizers are the real tokenizers of the continuation tests:
// stories260K's (tok512 converted to tokenizer.json: SentencePiece-style, its
// decoder strips the leading space of a decode), SmolLM2's and Llama 3's
// (byte-level BPE) and Gemma 3's (SentencePiece-style with byte fallback).
func continuationTokenizers(t *testing.T) map[string]Tokenizer {
	readTok512(t) // skips without ../shared
	stories, err := LoadDir(convertTok512(t))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Tokenizer{
		"stories260K": stories,
		"smollm2":     sharedTokenizer(t, "smollm2-135m-instruct"),
		"llama3":      sharedTokenizer(t, "llama3"),
		"gemma3":      sharedTokenizer(t, "gemma3"),
	}
}

// TestContinuationKeepsTheSeamSpace: a prompt and the text that continues
// it; the generated ids are what the whole text's encoding adds to the
// prompt's. The streamed text, the Continuation's Decode (what fills
// generate --json's text) and the continuation as written must agree: the
// first generated word keeps its space.
func TestContinuationKeepsTheSeamSpace(t *testing.T) {
	const prompt, cont = "Once upon a time", " there was a little cat named Tom."
	for name, tok := range continuationTokenizers(t) {
		t.Run(name, func(t *testing.T) {
			p, err := tok.Encode(prompt, true)
			if err != nil {
				t.Fatal(err)
			}
			whole, err := tok.Encode(prompt+cont, true)
			if err != nil {
				t.Fatal(err)
			}
			if len(whole) <= len(p) || !equalInts(whole[:len(p)], p) {
				t.Fatalf("the prompt's ids %v are not a prefix of the whole text's %v", p, whole)
			}
			gen := whole[len(p):]
			if alone, _ := tok.Decode(gen, true); name == "stories260K" && alone != strings.TrimPrefix(cont, " ") {
				t.Fatalf("decoded alone %q: expected the stripped %q (the reason for Continuation)", alone, strings.TrimPrefix(cont, " "))
			}
			got, err := NewContinuation(tok, p).Decode(gen, true)
			if err != nil {
				t.Fatal(err)
			}
			if got != cont {
				t.Errorf("Continuation.Decode = %q, want %q", got, cont)
			}
			if s := streamAll(t, NewContinuationDecoder(tok, p, true), gen); s != cont {
				t.Errorf("streamed %q, want %q", s, cont)
			}
		})
	}
}

// TestContinuationMatchesWholeDecode: over the corpus, split at several
// points, the streamed continuation and Continuation.Decode both equal
// Decode(prompt+generated) minus Decode(prompt), with and without special
// tokens.
func TestContinuationMatchesWholeDecode(t *testing.T) {
	corpus := readCorpus(t)
	for name, tok := range continuationTokenizers(t) {
		t.Run(name, func(t *testing.T) {
			for i, text := range corpus[:300] {
				ids, err := tok.Encode(text, true)
				if err != nil || len(ids) < 2 {
					continue
				}
				skip := i%2 == 0
				for _, k := range []int{1, len(ids) / 2, len(ids) - 1} {
					p, gen := ids[:k], ids[k:]
					head, _ := tok.Decode(p, skip)
					all, _ := tok.Decode(ids, skip)
					if !strings.HasPrefix(all, head) {
						continue // the seam changes the prompt's text (split inside a character)
					}
					want := all[len(head):]
					got, err := NewContinuation(tok, p).Decode(gen, skip)
					if err != nil || got != want {
						t.Fatalf("text %d split at %d: Continuation.Decode = %q, %v; want %q", i, k, got, err, want)
					}
					if s := streamAll(t, NewContinuationDecoder(tok, p, skip), gen); s != want {
						t.Fatalf("text %d split at %d: streamed %q, want %q", i, k, s, want)
					}
				}
			}
		})
	}
}

// streamAll pushes ids one by one and returns everything emitted.
func streamAll(t *testing.T, d *StreamDecoder, ids []int) string {
	t.Helper()
	var b strings.Builder
	for _, id := range ids {
		s, err := d.Push(id)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(s)
	}
	b.WriteString(d.Flush())
	return b.String()
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
