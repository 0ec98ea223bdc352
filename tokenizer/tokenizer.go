// Package tokenizer turns text into token ids and back exactly as the Python
// ecosystem (Hugging Face tokenizers, jinja2 chat templates) does.
//
// The rest of tether uses only the Tokenizer interface, so another
// implementation (for example a cgo binding to the Rust tokenizers library)
// can be plugged in without touching the engine or the probes.
//
// Implementations here:
//   - HFTokenizer (LoadDir, LoadFile, Load): a tokenizer.json with a BPE
//     model, byte-level (GPT-2, SmolLM2, Llama 3, Qwen) or SentencePiece-style
//     with byte fallback (Llama 2, Gemma), with the normalizers,
//     pre-tokenizers, added tokens, post-processors and decoders those use.
//     Its ids match Hugging Face tokenizers; testdata/PARITY.md records how
//     that was checked.
//   - Llama2cTokenizer (ReadLlama2cTokenizer): llama2.c's tokenizer.bin
//     format and encoder; ConvertLlama2cTokenizer writes an equivalent
//     tokenizer.json.
//
// StreamDecoder turns ids into text as they are generated; Open picks the
// right loader for a path; WriteTestTokenizer writes a small tokenizer for
// random test models. TokenizerConfig and LoadChatTemplates read
// tokenizer_config.json and a model's chat template sources; Message is one
// turn of a conversation. Rendering a conversation with a chat template is
// the sub-package tokenizer/chattemplate.
package tokenizer

// Tokenizer encodes and decodes text for one model.
type Tokenizer interface {
	// Encode splits text into ids. With addSpecial, the post-processor's
	// special tokens (e.g. BOS) are added as the model's tokenizer.json says.
	Encode(text string, addSpecial bool) ([]int, error)
	// Decode turns ids back into text; skipSpecial drops special tokens.
	// An id outside the vocabulary is an error.
	Decode(ids []int, skipSpecial bool) (string, error)
	// VocabSize is the number of ids, added tokens included.
	VocabSize() int
	// TokenID looks up the id of a token's exact string (e.g. "<|im_end|>").
	TokenID(token string) (int, bool)
	// Token returns the string of an id ("" and false when out of range).
	Token(id int) (string, bool)
	// IsSpecial reports whether id is a special added token.
	IsSpecial(id int) bool
}
