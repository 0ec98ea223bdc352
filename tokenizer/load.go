package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
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
	model         *bpeModel
}

func load(data []byte) (*HFTokenizer, error) {
	var f fileJSON
	sc := &jsonScanner{data: data}
	err := sc.readObject(func(key string) error {
		if key == "model" {
			if f.model != nil {
				return errors.New(`field "model": given twice`)
			}
			m, err := readModel(sc)
			if err != nil {
				return fmt.Errorf("field \"model\": %w", err)
			}
			f.model = m
			return nil
		}
		raw, err := sc.skipValue()
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		var target any
		switch key {
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
	return assemble(f.model, &f)
}

// readModel parses the "model" object in place.
func readModel(sc *jsonScanner) (*bpeModel, error) {
	var vocab map[string]int
	var pairs []mergeStrings
	haveMerges := false
	rest := map[string]json.RawMessage{}
	err := sc.readObject(func(key string) error {
		var err error
		switch key {
		case "vocab":
			// Pre-size the map from the file size (about 100 bytes of
			// tokenizer.json per vocabulary entry in real files).
			vocab, err = readVocab(sc, min(len(sc.data)/100, 1<<20))
			if err != nil {
				return fmt.Errorf("vocab: %w", err)
			}
		case "merges":
			pairs, err = scanMerges(sc, 2*len(vocab))
			if err != nil {
				return fmt.Errorf("merges: %w", err)
			}
			haveMerges = true
		default:
			raw, err := sc.skipValue()
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
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
		if !haveMerges {
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
	if vocab == nil {
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
	if err := m.setVocab(vocab); err != nil {
		return nil, fmt.Errorf("vocab: %w", err)
	}
	if err := m.resolveMerges(pairs); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
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
const maxVocabID = 1 << 22

// readVocab reads the vocabulary object {"token": id, ...}.
func readVocab(sc *jsonScanner, sizeHint int) (map[string]int, error) {
	vocab := make(map[string]int, sizeHint)
	var arena stringArena
	err := sc.readObjectViews(func(view string) error {
		key := arena.copy(view)
		id, err := sc.readInt()
		if err != nil {
			return fmt.Errorf("token %q: %w", key, err)
		}
		if id >= maxVocabID {
			return fmt.Errorf("token %q: id %d is too large (limit %d)", key, id, maxVocabID)
		}
		vocab[key] = id
		return nil
	})
	return vocab, err
}

// stringArena copies many small strings into a few large blocks, so that a
// vocabulary costs a handful of allocations instead of one per token (which
// also spares the garbage collector hundreds of thousands of objects).
type stringArena struct{ block []byte }

const arenaBlockSize = 1 << 20

func (a *stringArena) copy(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > arenaBlockSize/8 {
		return strings.Clone(s)
	}
	if len(a.block)+len(s) > cap(a.block) {
		a.block = make([]byte, 0, arenaBlockSize)
	}
	start := len(a.block)
	a.block = append(a.block, s...)
	return unsafe.String(&a.block[start], len(s))
}

// setVocab installs the vocabulary and its inverse.
func (m *bpeModel) setVocab(vocab map[string]int) error {
	m.vocab = vocab
	maxID := -1
	for _, id := range vocab {
		maxID = max(maxID, id)
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

// mergeStrings is one parsed merge before its tokens are resolved.
type mergeStrings struct{ a, b string }

// resolveMerges turns merge strings into the pair table.
func (m *bpeModel) resolveMerges(pairs []mergeStrings) error {
	// Resolving tokens to ids is a few random map lookups per merge; spread
	// it over the available cores.
	keys := make([]uint64, len(pairs))
	vals := make([]uint64, len(pairs))
	workers := min(runtime.GOMAXPROCS(0), 8)
	chunk := (len(pairs) + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(pairs))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(w, lo, hi int) {
			defer wg.Done()
			var buf []byte
			for rank := lo; rank < hi; rank++ {
				p := pairs[rank]
				ia, ok := m.vocab[p.a]
				if !ok {
					errs[w] = fmt.Errorf("merge %d: token %q is not in the vocabulary", rank, p.a)
					return
				}
				ib, ok := m.vocab[p.b]
				if !ok {
					errs[w] = fmt.Errorf("merge %d: token %q is not in the vocabulary", rank, p.b)
					return
				}
				bTail := p.b
				if m.prefix != "" {
					bTail = strings.TrimPrefix(p.b, m.prefix)
				}
				buf = append(append(buf[:0], p.a...), bTail...)
				merged, ok := m.vocab[string(buf)]
				if !ok {
					errs[w] = fmt.Errorf("merge %d: merged token %q is not in the vocabulary", rank, buf)
					return
				}
				keys[rank] = pairKey(int32(ia), int32(ib))
				vals[rank] = uint64(rank)<<32 | uint64(merged)
			}
		}(w, lo, hi)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// In rank order, so that a repeated pair keeps its last rank as in
	// tokenizers (which collects the merges into a HashMap).
	m.merges = newPairTable(len(pairs))
	for i := range keys {
		m.merges.put(keys[i], vals[i])
	}
	return nil
}

// scanMerges reads the merges array: strings "a b" or pairs ["a", "b"]. The
// strings may point into data (see readStringView).
func scanMerges(sc *jsonScanner, sizeHint int) ([]mergeStrings, error) {
	pairs := make([]mergeStrings, 0, sizeHint)
	err := sc.readArray(func() error {
		rank := len(pairs)
		switch sc.peek() {
		case '"':
			s, err := sc.readStringView()
			if err != nil {
				return fmt.Errorf("merge %d: %w", rank, err)
			}
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return fmt.Errorf("merge %d: %q is not two tokens separated by a space", rank, s)
			}
			pairs = append(pairs, mergeStrings{a, b})
		case '[':
			var parts [2]string
			n := 0
			err := sc.readArray(func() error {
				s, err := sc.readStringView()
				if n < 2 {
					parts[n] = s
				}
				n++
				return err
			})
			if err != nil {
				return fmt.Errorf("merge %d: %w", rank, err)
			}
			if n != 2 {
				return fmt.Errorf("merge %d: expected a pair of tokens, got %d", rank, n)
			}
			pairs = append(pairs, mergeStrings{parts[0], parts[1]})
		default:
			return fmt.Errorf("merge %d: %w", rank, sc.fail(`a string "a b" or a pair ["a", "b"]`))
		}
		return nil
	})
	return pairs, err
}
