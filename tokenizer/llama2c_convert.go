package tokenizer

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// sentencePieceSpace is U+2581, which SentencePiece vocabularies use for
// a space.
const sentencePieceSpace = "\u2581"

// ConvertLlama2cTokenizer reads a llama2.c tokenizer file and writes an
// equivalent Hugging Face tokenizer.json and tokenizer_config.json into
// outDir (created if needed): a SentencePiece-style BPE with byte fallback
// whose merges are derived from the token scores, so that the BPE algorithm
// produces the same ids as llama2.c's encoder (see Llama2cTokenizer).
func ConvertLlama2cTokenizer(tokBin, outDir string) error {
	t, err := ReadLlama2cTokenizer(tokBin)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	spec, err := t.tokenizerSpec()
	if err != nil {
		return fmt.Errorf("tokenizer: converting %s: %w", tokBin, err)
	}
	if err := writeTokenizerJSON(filepath.Join(outDir, "tokenizer.json"), spec); err != nil {
		return err
	}
	return writeJSONFile(filepath.Join(outDir, "tokenizer_config.json"), llamaTokenizerConfig())
}

// llamaTokenizerConfig is the tokenizer_config.json of a converted llama2.c
// tokenizer (no chat template: the stories models are base models).
func llamaTokenizerConfig() map[string]any {
	added := map[string]any{}
	for id, tok := range []string{"<unk>", "<s>", "</s>"} {
		added[fmt.Sprint(id)] = map[string]any{"content": tok, "lstrip": false, "normalized": false,
			"rstrip": false, "single_word": false, "special": true}
	}
	return map[string]any{
		"add_bos_token":                true,
		"add_eos_token":                false,
		"added_tokens_decoder":         added,
		"bos_token":                    "<s>",
		"eos_token":                    "</s>",
		"unk_token":                    "<unk>",
		"pad_token":                    nil,
		"clean_up_tokenization_spaces": false,
		"legacy":                       true,
		"tokenizer_class":              "LlamaTokenizer",
	}
}

// tokenizerSpec builds the tokenizer.json contents.
func (t *Llama2cTokenizer) tokenizerSpec() (*tokenizerFileSpec, error) {
	if err := t.checkTokensUTF8(); err != nil {
		return nil, err
	}
	vocab := make([]string, len(t.tokens))
	seen := map[string]int{}
	for id, tok := range t.tokens {
		if id > llama2cEOS {
			tok = strings.ReplaceAll(tok, " ", sentencePieceSpace)
		}
		if prev, dup := seen[tok]; dup {
			return nil, fmt.Errorf("tokens %d and %d are both %q once spaces are written as U+2581", prev, id, tok)
		}
		seen[tok] = id
		vocab[id] = tok
	}
	merges := t.derivedMerges(vocab, seen)
	return &tokenizerFileSpec{
		addedTokens: []addedTokenSpec{{0, "<unk>", true}, {1, "<s>", true}, {2, "</s>", true}},
		normalizer: map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": sentencePieceSpace},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": sentencePieceSpace},
		}},
		preTokenizer: nil,
		postProcessor: map[string]any{
			"type": "TemplateProcessing",
			"single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
			},
			"pair": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}},
				map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 1}},
				map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}},
			},
			"special_tokens": map[string]any{"<s>": map[string]any{"id": "<s>", "ids": []int{llama2cBOS}, "tokens": []string{"<s>"}}},
		},
		decoder: map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": sentencePieceSpace}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		model: map[string]any{"dropout": nil, "unk_token": "<unk>", "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false},
		vocab:  vocab,
		merges: merges,
	}, nil
}

// derivedMerges lists every split of a token into two tokens as a merge,
// ranked by the score of the merged token (best first; ties by id, then by
// the length of the left part). llama2.c merges the adjacent pair whose
// concatenation scores best, so BPE with these ranks makes the same choices.
func (t *Llama2cTokenizer) derivedMerges(vocab []string, ids map[string]int) [][2]string {
	type merge struct {
		left, right string
		result      int
	}
	var merges []merge
	for id := llama2cEOS + 1; id < len(vocab); id++ {
		tok := vocab[id]
		if isByteToken(tok) {
			continue
		}
		for cut := 1; cut < len(tok); cut++ {
			l, r := tok[:cut], tok[cut:]
			lid, lok := ids[l]
			rid, rok := ids[r]
			if lok && rok && lid > llama2cEOS && rid > llama2cEOS {
				merges = append(merges, merge{l, r, id})
			}
		}
	}
	slices.SortStableFunc(merges, func(a, b merge) int {
		if c := cmp.Compare(t.scores[b.result], t.scores[a.result]); c != 0 {
			return c
		}
		return cmp.Compare(a.result, b.result)
	})
	out := make([][2]string, len(merges))
	for i, m := range merges {
		out[i] = [2]string{m.left, m.right}
	}
	return out
}
