package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadDir loads dir/tokenizer.json.
func LoadDir(dir string) (*HFTokenizer, error) {
	return LoadFile(filepath.Join(dir, "tokenizer.json"))
}

// LoadFile loads a Hugging Face tokenizer.json.
func LoadFile(path string) (*HFTokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Load(data, path)
}

// Load parses the contents of a tokenizer.json; source names it in errors.
func Load(data []byte, source string) (*HFTokenizer, error) {
	t, err := load(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", source, err)
	}
	t.source = source
	return t, nil
}

// fileJSON is the top level of a tokenizer.json, with the model kept raw.
type fileJSON struct {
	AddedTokens   []addedTokenJSON
	Normalizer    *componentJSON
	PreTokenizer  *componentJSON
	PostProcessor *componentJSON
	Decoder       *componentJSON
	model         []byte
}

func load(data []byte) (*HFTokenizer, error) {
	var f fileJSON
	sc := &jsonScanner{data: data}
	err := sc.readObject(func(key string) error {
		raw, err := sc.skipValue()
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		var target any
		switch key {
		case "model":
			f.model = raw
			return nil
		case "added_tokens":
			target = &f.AddedTokens
		case "normalizer":
			target = &f.Normalizer
		case "pre_tokenizer":
			target = &f.PreTokenizer
		case "post_processor":
			target = &f.PostProcessor
		case "decoder":
			target = &f.Decoder
		default:
			return nil
		}
		if err := json.Unmarshal(raw, target); err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !sc.atEnd() {
		return nil, fmt.Errorf("%w: unexpected data after the top-level object at offset %d", errJSON, sc.pos)
	}
	if f.model == nil {
		return nil, errors.New(`field "model": missing`)
	}
	model, err := loadModel(f.model)
	if err != nil {
		return nil, fmt.Errorf(`field "model": %w`, err)
	}
	return assemble(model, &f)
}

// loadModel parses the "model" object.
func loadModel(data []byte) (*bpeModel, error) {
	var vocabRaw, mergesRaw []byte
	rest := map[string]json.RawMessage{}
	sc := &jsonScanner{data: data}
	err := sc.readObject(func(key string) error {
		raw, err := sc.skipValue()
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		switch key {
		case "vocab":
			vocabRaw = raw
		case "merges":
			mergesRaw = raw
		default:
			rest[key] = raw
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var mj modelJSON
	if raw, ok := rest["type"]; ok {
		if err := json.Unmarshal(raw, &mj.Type); err != nil {
			return nil, fmt.Errorf("type: %w", err)
		}
	}
	if mj.Type == "" {
		// Old files omit the type; merges identify a BPE model.
		if mergesRaw == nil {
			return nil, errors.New(`type: missing, and no "merges" to identify a BPE model`)
		}
		mj.Type = "BPE"
	}
	if mj.Type != "BPE" {
		return nil, fmt.Errorf("type: unsupported model type %q (only BPE is supported)", mj.Type)
	}
	restJSON, _ := json.Marshal(rest)
	if err := json.Unmarshal(restJSON, &mj); err != nil {
		return nil, err
	}
	if mj.Dropout != nil && *mj.Dropout != 0 {
		return nil, fmt.Errorf("dropout: %v is not supported (expected null: encoding must be deterministic)", *mj.Dropout)
	}
	if vocabRaw == nil {
		return nil, errors.New("vocab: missing")
	}
	m := &bpeModel{
		fuseUnk:      mj.FuseUnk,
		byteFallback: mj.ByteFallback,
		ignoreMerges: mj.IgnoreMerges,
		unkID:        -1,
	}
	if mj.ContinuingSubwordPrefix != nil {
		m.prefix = *mj.ContinuingSubwordPrefix
	}
	if mj.EndOfWordSuffix != nil {
		m.suffix = *mj.EndOfWordSuffix
	}
	if err := m.parseVocab(vocabRaw); err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	if mergesRaw != nil {
		if err := m.parseMerges(mergesRaw); err != nil {
			return nil, fmt.Errorf("merges: %w", err)
		}
	} else {
		m.merges = map[uint64]uint64{}
	}
	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token: %q is not in the vocabulary", *mj.UnkToken)
		}
		m.unkID = id
	}
	m.init()
	return m, nil
}

// maxVocabID bounds ids so that a malformed file cannot make us allocate
// huge tables.
const maxVocabID = 1 << 24

func (m *bpeModel) parseVocab(data []byte) error {
	sc := &jsonScanner{data: data}
	m.vocab = make(map[string]int, len(data)/16)
	maxID := -1
	err := sc.readObject(func(key string) error {
		id, err := sc.readInt()
		if err != nil {
			return fmt.Errorf("token %q: %w", key, err)
		}
		if id >= maxVocabID {
			return fmt.Errorf("token %q: id %d is too large (limit %d)", key, id, maxVocabID)
		}
		m.vocab[key] = id
		if id > maxID {
			maxID = id
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.tokens = make([]string, maxID+1)
	for tok, id := range m.vocab {
		if m.tokens[id] != "" && m.tokens[id] != tok {
			return fmt.Errorf("id %d is used by both %q and %q", id, m.tokens[id], tok)
		}
		m.tokens[id] = tok
	}
	return nil
}

func (m *bpeModel) parseMerges(data []byte) error {
	sc := &jsonScanner{data: data}
	m.merges = make(map[uint64]uint64, len(data)/12)
	rank := 0
	var buf []byte
	err := sc.readArray(func() error {
		var a, b string
		switch sc.peek() {
		case '"':
			s, err := sc.readString()
			if err != nil {
				return fmt.Errorf("merge %d: %w", rank, err)
			}
			var ok bool
			a, b, ok = strings.Cut(s, " ")
			if !ok {
				return fmt.Errorf("merge %d: %q is not two tokens separated by a space", rank, s)
			}
		case '[':
			var parts []string
			err := sc.readArray(func() error {
				s, err := sc.readString()
				parts = append(parts, s)
				return err
			})
			if err != nil {
				return fmt.Errorf("merge %d: %w", rank, err)
			}
			if len(parts) != 2 {
				return fmt.Errorf("merge %d: expected a pair of tokens, got %d", rank, len(parts))
			}
			a, b = parts[0], parts[1]
		default:
			return fmt.Errorf("merge %d: %w", rank, sc.fail(`a string "a b" or a pair ["a", "b"]`))
		}
		ia, ok := m.vocab[a]
		if !ok {
			return fmt.Errorf("merge %d: token %q is not in the vocabulary", rank, a)
		}
		ib, ok := m.vocab[b]
		if !ok {
			return fmt.Errorf("merge %d: token %q is not in the vocabulary", rank, b)
		}
		bTail := b
		if m.prefix != "" {
			bTail = strings.TrimPrefix(b, m.prefix)
		}
		buf = append(append(buf[:0], a...), bTail...)
		merged, ok := m.vocab[string(buf)]
		if !ok {
			return fmt.Errorf("merge %d: merged token %q is not in the vocabulary", rank, buf)
		}
		m.merges[pairKey(int32(ia), int32(ib))] = uint64(rank)<<32 | uint64(merged)
		rank++
		return nil
	})
	return err
}
