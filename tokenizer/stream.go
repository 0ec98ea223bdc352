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

// isByteToken recognizes SentencePiece byte-fallback tokens "<0xHH>".
func isByteToken(s string) bool {
	_, ok := parseByteToken(s)
	return ok
}
