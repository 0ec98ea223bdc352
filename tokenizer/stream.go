package tokenizer

import (
	"fmt"
	"strings"
)

// StreamDecoder turns ids into text one at a time, as a model generates
// them. It never emits a broken UTF-8 sequence: text is held back while the
// decoded tail is incomplete (ends in U+FFFD or in a byte-fallback token),
// and the concatenation of everything Push and Flush return equals Decode of
// all the ids pushed.
//
// It decodes a small window of recent ids (the last emitted tokens plus the
// pending ones) and emits the difference, as Hugging Face's streaming
// decoders do, so each Push costs time proportional to the window, not to
// the whole sequence. A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	tok         Tokenizer
	skipSpecial bool
	ids         []int
	prefix      int // start of the window
	read        int // ids before this were emitted
}

// NewStreamDecoder returns a StreamDecoder for t; skipSpecial drops special
// tokens as in Decode.
func NewStreamDecoder(t Tokenizer, skipSpecial bool) *StreamDecoder {
	return &StreamDecoder{tok: t, skipSpecial: skipSpecial}
}

// NewContinuationDecoder returns a StreamDecoder for ids generated after
// prompt: what it emits is the text they add to the decoded prompt,
// Decode(prompt+generated) minus Decode(prompt). Decoding the generated ids
// alone differs at the seam: a SentencePiece-style decoder strips the
// leading space of a decode, which would glue the first generated word to
// the prompt. The prompt is decoded (twice) until the first text is
// emitted; after that each Push costs what it costs in NewStreamDecoder's.
func NewContinuationDecoder(t Tokenizer, prompt []int, skipSpecial bool) *StreamDecoder {
	ids := append([]int(nil), prompt...)
	return &StreamDecoder{tok: t, skipSpecial: skipSpecial, ids: ids, read: len(ids)}
}

// Push adds one id and returns the text that became final (often "").
func (d *StreamDecoder) Push(id int) (string, error) {
	if _, ok := d.tok.Token(id); !ok {
		return "", fmt.Errorf("tokenizer: stream decode: id %d is not in the vocabulary (size %d)", id, d.tok.VocabSize())
	}
	d.ids = append(d.ids, id)
	if tokStr, _ := d.tok.Token(id); isByteToken(tokStr) {
		// A byte-fallback run must be decoded as a whole.
		return "", nil
	}
	prev, text, err := d.window()
	if err != nil {
		return "", err
	}
	if len(text) <= len(prev) || strings.HasSuffix(text, "\uFFFD") || !strings.HasPrefix(text, prev) {
		return "", nil
	}
	d.compact()
	d.prefix, d.read = d.read, len(d.ids)
	return text[len(prev):], nil
}

// Flush returns whatever is still held back (possibly with U+FFFD for an
// incomplete sequence, exactly as Decode would render it) and resets the
// decoder.
func (d *StreamDecoder) Flush() string {
	prev, text, err := d.window()
	d.ids, d.prefix, d.read = d.ids[:0], 0, 0
	if err != nil || len(text) <= len(prev) || !strings.HasPrefix(text, prev) {
		return ""
	}
	return text[len(prev):]
}

// window decodes the emitted part of the window and the whole window.
func (d *StreamDecoder) window() (prev, text string, err error) {
	prev, err = d.tok.Decode(d.ids[d.prefix:d.read], d.skipSpecial)
	if err != nil {
		return "", "", err
	}
	text, err = d.tok.Decode(d.ids[d.prefix:], d.skipSpecial)
	return prev, text, err
}

// compact drops ids before the window so that memory stays bounded.
func (d *StreamDecoder) compact() {
	if d.prefix < 1024 {
		return
	}
	n := copy(d.ids, d.ids[d.prefix:])
	d.ids = d.ids[:n]
	d.read -= d.prefix
	d.prefix = 0
}

// Continuation decodes ids generated after a prompt as the text they add to
// the decoded prompt (see NewContinuationDecoder). Its Decode has the
// signature of Tokenizer.Decode, so it can stand for the tokenizer where
// generated ids alone are decoded (the engine's Detokenizer, which fills
// Result.Text). A Continuation is not safe for concurrent use.
type Continuation struct {
	tok    Tokenizer
	prompt []int
	buf    []int
	heads  map[bool]string
}

// NewContinuation returns a Continuation of prompt for t.
func NewContinuation(t Tokenizer, prompt []int) *Continuation {
	return &Continuation{tok: t, prompt: append([]int(nil), prompt...), heads: map[bool]string{}}
}

// Decode returns Decode(prompt+ids) minus Decode(prompt), or Decode(ids)
// in the rare case where the generated ids change the prompt's own text (a
// byte sequence completed across the seam). It costs a decode of the prompt
// and the ids.
func (c *Continuation) Decode(ids []int, skipSpecial bool) (string, error) {
	head, ok := c.heads[skipSpecial]
	if !ok {
		var err error
		if head, err = c.tok.Decode(c.prompt, skipSpecial); err != nil {
			return "", err
		}
		c.heads[skipSpecial] = head
	}
	c.buf = append(append(c.buf[:0], c.prompt...), ids...)
	whole, err := c.tok.Decode(c.buf, skipSpecial)
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(whole, head) {
		return c.tok.Decode(ids, skipSpecial)
	}
	return whole[len(head):], nil
}

// isByteToken recognizes SentencePiece byte-fallback tokens "<0xHH>".
func isByteToken(s string) bool {
	_, ok := parseByteToken(s)
	return ok
}
