package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"

	"tether/internal/atomicfile"
)

// tokenizerFileSpec is what writeTokenizerJSON needs to write a BPE
// tokenizer.json.
type tokenizerFileSpec struct {
	addedTokens   []addedTokenSpec
	normalizer    any // JSON-marshalable or nil
	preTokenizer  any
	postProcessor any
	decoder       any
	model         map[string]any // BPE options besides vocab and merges
	vocab         []string       // token of each id
	merges        [][2]string
}

type addedTokenSpec struct {
	ID      int
	Content string
	Special bool
}

// writeTokenizerJSON writes spec to path in the layout Hugging Face
// tokenizers saves (vocab in id order, merges as pairs).
func writeTokenizerJSON(path string, spec *tokenizerFileSpec) error {
	var b bytes.Buffer
	var encErr error
	enc := func(v any) {
		data, err := json.Marshal(v)
		if err != nil && encErr == nil {
			encErr = err
		}
		b.Write(data)
	}
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [")
	for i, a := range spec.addedTokens {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n    ")
		enc(map[string]any{"id": a.ID, "content": a.Content, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": a.Special})
	}
	b.WriteString("\n  ],\n  \"normalizer\": ")
	enc(spec.normalizer)
	b.WriteString(",\n  \"pre_tokenizer\": ")
	enc(spec.preTokenizer)
	b.WriteString(",\n  \"post_processor\": ")
	enc(spec.postProcessor)
	b.WriteString(",\n  \"decoder\": ")
	enc(spec.decoder)
	b.WriteString(",\n  \"model\": {\n    \"type\": \"BPE\"")
	for _, k := range []string{"dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk", "byte_fallback", "ignore_merges"} {
		fmt.Fprintf(&b, ",\n    %q: ", k)
		enc(spec.model[k])
	}
	b.WriteString(",\n    \"vocab\": {")
	for id, tok := range spec.vocab {
		if id > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		enc(tok)
		fmt.Fprintf(&b, ": %d", id)
	}
	b.WriteString("\n    },\n    \"merges\": [")
	for i, m := range spec.merges {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("\n      ")
		enc(m)
	}
	b.WriteString("\n    ]\n  }\n}\n")
	if encErr != nil {
		return fmt.Errorf("tokenizer: %s: %w", path, encErr)
	}
	return writeFileAtomic(path, b.Bytes())
}

// writeJSONFile writes v as indented JSON.
func writeJSONFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic writes data to path atomically (atomicfile.Write), so that
// a reader never sees a half-written file.
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	return nil
}
