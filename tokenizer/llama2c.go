package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"unicode/utf8"
)

// Llama2cTokenizer is a tokenizer in Karpathy's llama2.c format (a
// SentencePiece BPE vocabulary with a score per token), encoding with
// llama2.c's own algorithm: a dummy prefix space, one token per code point
// (or its bytes as <0xHH> tokens, ids byte+3), then repeatedly merging the
// adjacent pair whose concatenation is the best-scoring token (leftmost on
// ties). Ids 0, 1, 2 are <unk>, <s> (BOS) and </s> (EOS).
type Llama2cTokenizer struct {
	source      string
	maxTokenLen int
	tokens      []string
	scores      []float32
	ids         map[string]int
	spaceID     int // the dummy prefix " "
}

var _ Tokenizer = (*Llama2cTokenizer)(nil)

// Special ids of the llama2.c format.
const (
	llama2cUNK = 0
	llama2cBOS = 1
	llama2cEOS = 2
)

// ReadLlama2cTokenizer reads a llama2.c tokenizer file (e.g. tokenizer.bin,
// tok512.bin).
func ReadLlama2cTokenizer(path string) (*Llama2cTokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return ParseLlama2cTokenizer(data, path)
}

// ParseLlama2cTokenizer parses the llama2.c tokenizer format: int32
// max_token_length, then per token float32 score, int32 byte length and the
// bytes, little-endian, until the end of the data. source names it in errors.
func ParseLlama2cTokenizer(data []byte, source string) (*Llama2cTokenizer, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("tokenizer: %s: llama2.c tokenizer: %s", source, fmt.Sprintf(format, args...))
	}
	if len(data) < 4 {
		return nil, fail("%d bytes: expected at least the int32 max_token_length", len(data))
	}
	t := &Llama2cTokenizer{source: source, ids: map[string]int{}, spaceID: -1}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen <= 0 || maxLen > 1<<16 {
		return nil, fail("max_token_length %d: expected 1..65536", maxLen)
	}
	t.maxTokenLen = int(maxLen)
	p := 4
	for p < len(data) {
		id := len(t.tokens)
		if p+8 > len(data) {
			return nil, fail("token %d at offset %d: truncated header (expected float32 score and int32 length)", id, p)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[p:]))
		n := int32(binary.LittleEndian.Uint32(data[p+4:]))
		p += 8
		if n < 0 || int(n) > len(data)-p {
			return nil, fail("token %d at offset %d: length %d runs past the end of the data", id, p-4, n)
		}
		if int(n) > t.maxTokenLen {
			return nil, fail("token %d: length %d exceeds max_token_length %d", id, n, t.maxTokenLen)
		}
		tok := string(data[p : p+int(n)])
		p += int(n)
		switch id {
		case llama2cUNK:
			tok = "<unk>"
		case llama2cBOS:
			tok = "<s>"
		case llama2cEOS:
			tok = "</s>"
		}
		t.tokens = append(t.tokens, tok)
		t.scores = append(t.scores, score)
		if _, dup := t.ids[tok]; !dup {
			t.ids[tok] = id
		}
	}
	if len(t.tokens) < 3+256 {
		return nil, fail("%d tokens: expected at least <unk>, <s>, </s> and the 256 byte tokens", len(t.tokens))
	}
	for b := 0; b < 256; b++ {
		if want := fmt.Sprintf("<0x%02X>", b); t.tokens[b+3] != want {
			return nil, fail("token %d is %q, expected the byte token %q", b+3, t.tokens[b+3], want)
		}
	}
	if id, ok := t.ids[" "]; ok {
		t.spaceID = id
	} else {
		return nil, fail(`no " " token for the dummy prefix`)
	}
	return t, nil
}

// Encode implements Tokenizer with llama2.c's algorithm; addSpecial puts
// BOS first (llama2.c's generate never adds EOS).
func (t *Llama2cTokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	var syms []int
	if addSpecial {
		syms = append(syms, llama2cBOS)
	}
	start := len(syms)
	if text != "" {
		syms = append(syms, t.spaceID)
	}
	for i := 0; i < len(text); {
		// A code point: a lead byte and at most 3 continuation bytes.
		j := i + 1
		for j < len(text) && text[j]&0xC0 == 0x80 && j-i < 4 {
			j++
		}
		if id, ok := t.ids[text[i:j]]; ok && id > llama2cEOS {
			syms = append(syms, id)
		} else {
			for k := i; k < j; k++ {
				syms = append(syms, int(text[k])+3)
			}
		}
		i = j
	}
	body := syms[start:]
	var buf []byte
	for {
		bestScore, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(body); i++ {
			buf = append(append(buf[:0], t.tokens[body[i]]...), t.tokens[body[i+1]]...)
			id, ok := t.ids[string(buf)]
			if ok && id > llama2cEOS && t.scores[id] > bestScore {
				bestScore, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			break
		}
		body[bestIdx] = bestID
		body = append(body[:bestIdx+1], body[bestIdx+2:]...)
	}
	return syms[:start+len(body)], nil
}

// Decode implements Tokenizer. It renders text exactly as the tokenizer.json
// written by ConvertLlama2cTokenizer does: byte tokens are joined into UTF-8
// (one U+FFFD per byte of an invalid run), and one leading space (the dummy
// prefix) is removed from the result.
func (t *Llama2cTokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	var toks []string
	for i, id := range ids {
		if id < 0 || id >= len(t.tokens) {
			return "", fmt.Errorf("tokenizer: %s: decode: id %d at position %d is not in the vocabulary (size %d)", t.source, id, i, len(t.tokens))
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		toks = append(toks, t.tokens[id])
	}
	out := strings.Join(byteFallbackDecoder{}.decodeChain(toks), "")
	return strings.TrimPrefix(out, " "), nil
}

// VocabSize implements Tokenizer.
func (t *Llama2cTokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the id Encode with addSpecial puts first (always 1, <s>).
func (t *Llama2cTokenizer) BOS() (int, bool) { return llama2cBOS, true }

// TokenID implements Tokenizer.
func (t *Llama2cTokenizer) TokenID(token string) (int, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// Token implements Tokenizer.
func (t *Llama2cTokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) {
		return "", false
	}
	return t.tokens[id], true
}

// IsSpecial implements Tokenizer: <unk>, <s> and </s>.
func (t *Llama2cTokenizer) IsSpecial(id int) bool { return id >= 0 && id <= llama2cEOS }

// Score returns the SentencePiece score of a token (0 for an unknown id).
func (t *Llama2cTokenizer) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// errInvalidToken reports a token that cannot be written to tokenizer.json.
var errInvalidToken = errors.New("token is not valid UTF-8")

// checkTokensUTF8 verifies that every token can be a JSON string key.
func (t *Llama2cTokenizer) checkTokensUTF8() error {
	for id, tok := range t.tokens {
		if !utf8.ValidString(tok) {
			return fmt.Errorf("token %d %q: %w", id, tok, errInvalidToken)
		}
	}
	return nil
}
