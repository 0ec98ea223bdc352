package tokenizer

import (
	"fmt"
	"strings"
)

// HFTokenizer is a tokenizer loaded from a Hugging Face tokenizer.json (BPE
// models: byte-level like GPT-2, Llama 3 and Qwen, or SentencePiece-style
// with byte fallback like Llama 2 and Gemma). It is safe for concurrent use.
type HFTokenizer struct {
	source     string
	model      *bpeModel
	normalizer normalizer
	preTok     preTokenizer
	byteLevel  bool // the pre-tokenizer maps bytes to the byte-level alphabet
	decoder    decoder
	post       postProcessor
	bos        int // first special id the post-processor puts before the text, or -1

	addedByID      map[int]*addedToken
	addedByContent map[string]int
	rawAdded       *addedMatcher // added tokens matched on the raw text
	normAdded      *addedMatcher // added tokens matched on normalized text
	vocabSize      int
}

var _ Tokenizer = (*HFTokenizer)(nil)

// assemble builds the tokenizer from its parsed parts.
func assemble(model *bpeModel, f *fileJSON) (*HFTokenizer, error) {
	t := &HFTokenizer{
		model:          model,
		addedByID:      map[int]*addedToken{},
		addedByContent: map[string]int{},
		rawAdded:       newAddedMatcher(),
		normAdded:      newAddedMatcher(),
		vocabSize:      len(model.tokens),
		bos:            -1,
	}
	var err error
	if t.normalizer, err = buildNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.preTok, t.byteLevel, err = buildPreTokenizer(f.PreTokenizer, "pre_tokenizer"); err != nil {
		return nil, err
	}
	if t.decoder, err = buildDecoder(f.Decoder, "decoder"); err != nil {
		return nil, err
	}
	for i, a := range f.AddedTokens {
		field := fmt.Sprintf("added_tokens[%d]", i)
		if a.ID == nil || *a.ID < 0 || *a.ID >= maxVocabID {
			return nil, fmt.Errorf("%s.id: expected an id in [0, %d)", field, maxVocabID)
		}
		if a.Content == nil || *a.Content == "" {
			return nil, fmt.Errorf("%s.content: expected a non-empty string", field)
		}
		tok := &addedToken{id: *a.ID, content: *a.Content, singleWord: a.SingleWord, lstrip: a.LStrip,
			rstrip: a.RStrip, normalized: a.Normalized, special: a.Special}
		t.addedByID[tok.id] = tok
		if _, dup := t.addedByContent[tok.content]; !dup {
			t.addedByContent[tok.content] = tok.id
		}
		if tok.normalized {
			content := tok.content
			if t.normalizer != nil {
				content = t.normalizer.normalize(content)
			}
			t.normAdded.add(content, tok)
		} else {
			t.rawAdded.add(tok.content, tok)
		}
		if tok.id >= t.vocabSize {
			t.vocabSize = tok.id + 1
		}
	}
	if t.post, err = buildPostProcessor(f.PostProcessor, "post_processor"); err != nil {
		return nil, err
	}
	if tp, ok := t.post.(templateProcessor); ok && len(tp.before) > 0 {
		t.bos = tp.before[0]
	}
	if t.post != nil {
		for _, id := range t.post.process(nil) {
			if id < 0 || id >= t.vocabSize {
				return nil, fmt.Errorf("post_processor: special token id %d is out of range [0, %d)", id, t.vocabSize)
			}
		}
	}
	return t, nil
}

// Source is the path (or name) the tokenizer was loaded from.
func (t *HFTokenizer) Source() string { return t.source }

// BOS returns the id that Encode with addSpecial puts first (the
// post-processor's leading special token), if any.
func (t *HFTokenizer) BOS() (int, bool) { return t.bos, t.bos >= 0 }

// Encode implements Tokenizer.
func (t *HFTokenizer) Encode(text string, addSpecial bool) ([]int, error) {
	ids := make([]int, 0, len(text)/3+4)
	var one [1]piece
	bufs := pieceBufPool.Get().(*pieceBufs)
	defer pieceBufPool.Put(bufs)
	pieces := bufs.free[:0]
	defer func() { bufs.free = pieces[:0] }()
	t.rawAdded.split(text, func(seg string, id int, start int) {
		if id >= 0 {
			ids = append(ids, id)
			return
		}
		if t.normalizer != nil {
			seg = t.normalizer.normalize(seg)
		}
		t.normAdded.split(seg, func(seg2 string, id2 int, start2 int) {
			if id2 >= 0 {
				ids = append(ids, id2)
				return
			}
			one[0] = piece{seg2, start == 0 && start2 == 0}
			out := one[:]
			if t.preTok != nil {
				pieces = t.preTok.split(out, pieces[:0])
				out = pieces
			}
			for _, p := range out {
				ids = t.model.tokenize(p.text, t.byteLevel, ids)
			}
		})
	})
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids, nil
}

// Decode implements Tokenizer.
func (t *HFTokenizer) Decode(ids []int, skipSpecial bool) (string, error) {
	toks := make([]string, 0, len(ids))
	for i, id := range ids {
		tok, ok := t.Token(id)
		if !ok {
			return "", fmt.Errorf("tokenizer: %s: decode: id %d at position %d is not in the vocabulary (size %d)", t.source, id, i, t.vocabSize)
		}
		if skipSpecial && t.IsSpecial(id) {
			continue
		}
		toks = append(toks, tok)
	}
	return t.decodeTokens(toks), nil
}

// decodeTokens runs the decoder over token strings.
func (t *HFTokenizer) decodeTokens(toks []string) string {
	if t.decoder == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.decoder.decodeChain(toks), "")
}

// VocabSize implements Tokenizer.
func (t *HFTokenizer) VocabSize() int { return t.vocabSize }

// TokenID implements Tokenizer.
func (t *HFTokenizer) TokenID(token string) (int, bool) {
	if id, ok := t.addedByContent[token]; ok {
		return id, true
	}
	id, ok := t.model.vocab[token]
	return id, ok
}

// Token implements Tokenizer.
func (t *HFTokenizer) Token(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.content, true
	}
	if id < 0 || id >= len(t.model.tokens) {
		return "", false
	}
	tok := t.model.tokens[id]
	if tok == "" {
		return "", false
	}
	return tok, true
}

// IsSpecial implements Tokenizer.
func (t *HFTokenizer) IsSpecial(id int) bool {
	a, ok := t.addedByID[id]
	return ok && a.special
}
