package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// expectedDecode is what decoding the encoding of text must give for each
// shared tokenizer: the text itself, up to the normalizer's documented
// changes (Qwen 3 applies NFC; Gemma 3 writes spaces as U+2581, so a literal
// U+2581 comes back as a space).
var expectedDecode = map[string]func(string) string{
	"smollm2": func(s string) string { return s },
	"llama3":  func(s string) string { return s },
	"qwen3":   func(s string) string { return unicodeNormalizer{norm.NFC}.normalize(s) },
	"gemma3":  func(s string) string { return strings.ReplaceAll(s, "\u2581", " ") },
}

func TestDecodeRoundTrip(t *testing.T) {
	corpus := readCorpus(t)
	for _, st := range sharedTokenizers {
		t.Run(st.name, func(t *testing.T) {
			tok := sharedTokenizer(t, st.dir)
			bad := 0
			for _, text := range corpus {
				ids, err := tok.Encode(text, false)
				if err != nil {
					t.Fatal(err)
				}
				got, err := tok.Decode(ids, false)
				if err != nil {
					t.Fatal(err)
				}
				if want := expectedDecode[st.name](text); got != want {
					bad++
					if bad <= 5 {
						t.Errorf("Decode(Encode(%q)) = %q", text, got)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d entries do not round-trip", bad, len(corpus))
			}
		})
	}
}

// checkStream pushes ids one at a time and checks the streaming contract.
func checkStream(t *testing.T, tok Tokenizer, ids []int, skipSpecial bool) {
	t.Helper()
	want, err := tok.Decode(ids, skipSpecial)
	if err != nil {
		t.Fatal(err)
	}
	d := NewStreamDecoder(tok, skipSpecial)
	var b strings.Builder
	for _, id := range ids {
		chunk, err := d.Push(id)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(chunk) {
			t.Fatalf("chunk %q is not valid UTF-8", chunk)
		}
		b.WriteString(chunk)
		// Whatever was emitted must be final: a prefix of the full decode.
		if !strings.HasPrefix(want, b.String()) {
			t.Fatalf("streamed %q is not a prefix of Decode %q (ids %v)", b.String(), want, ids)
		}
	}
	b.WriteString(d.Flush())
	if b.String() != want {
		t.Fatalf("streamed %q, Decode %q (ids %v)", b.String(), want, ids)
	}
}

func TestStreamDecoderMatchesDecode(t *testing.T) {
	corpus := readCorpus(t)
	for _, st := range sharedTokenizers {
		t.Run(st.name, func(t *testing.T) {
			tok := sharedTokenizer(t, st.dir)
			for i, text := range corpus {
				ids, _ := tok.Encode(text, true)
				checkStream(t, tok, ids, i%2 == 0)
			}
		})
	}
	t.Run("llama2c", func(t *testing.T) {
		tok := readTok512(t)
		for _, text := range corpus[:500] {
			ids, _ := tok.Encode(text, true)
			checkStream(t, tok, ids, false)
		}
	})
}

func TestStreamDecoderHoldsIncompleteCharacters(t *testing.T) {
	tok := sharedTokenizer(t, "gemma3")
	// Find a character that Gemma encodes with byte-fallback <0xHH> tokens.
	var text string
	var ids []int
	for _, r := range []rune{'\U0002A6A5', '\U000E0001', '\uE000', '\U0001FAE8', '\u2FFF'} {
		ids, _ = tok.Encode(string(r)+"x", false)
		s, _ := tok.Token(ids[0])
		if isByteToken(s) {
			text = string(r) + "x"
			break
		}
	}
	if text == "" {
		t.Fatal("no byte-fallback character found")
	}
	d := NewStreamDecoder(tok, false)
	var chunks []string
	for _, id := range ids {
		c, err := d.Push(id)
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
	chunks = append(chunks, d.Flush())
	if strings.Join(chunks, "") != text {
		t.Fatalf("chunks %q", chunks)
	}
	for _, c := range chunks {
		if strings.ContainsRune(c, utf8.RuneError) {
			t.Errorf("chunk %q contains U+FFFD", c)
		}
	}
	if _, err := d.Push(-1); err == nil {
		t.Error("Push(-1) succeeded, want an error")
	}
}

// Encode must be safe for concurrent use (the BPE cache is shared).
func TestEncodeConcurrent(t *testing.T) {
	tok := sharedTokenizer(t, "smollm2-135m-instruct")
	corpus := readCorpus(t)[:400]
	want := make([][]int, len(corpus))
	for i, s := range corpus {
		want[i], _ = tok.Encode(s, false)
	}
	done := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for i := len(corpus) - 1 - g; i >= 0; i -= 2 {
				got, _ := tok.Encode(corpus[i], false)
				if !slices.Equal(got, want[i]) {
					done <- corpus[i]
					return
				}
			}
			done <- ""
		}(g)
	}
	for g := 0; g < 4; g++ {
		if s := <-done; s != "" {
			t.Errorf("concurrent Encode(%q) differs", s)
		}
	}
}
