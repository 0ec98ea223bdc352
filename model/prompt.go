package model

import (
	"fmt"

	"tether/tokenizer"
)

// PlainPrompt encodes text the way Hugging Face does for a plain prompt: with
// the tokenizer's special tokens (e.g. BOS) added. An empty text gives just
// BOS, as llama2.c does; a model with no BOS then has nothing to start from,
// which is an error.
func (m *Model) PlainPrompt(text string) ([]int, error) {
	ids, err := m.Tokenizer.Encode(text, true)
	if err != nil {
		return nil, fmt.Errorf("model %s: encode prompt: %w", m.Name, err)
	}
	if len(ids) == 0 {
		if m.Config == nil || m.Config.BOSTokenID < 0 {
			return nil, fmt.Errorf("model %s: empty prompt and the model has no BOS token to start from", m.Name)
		}
		ids = []int{m.Config.BOSTokenID}
	}
	return ids, nil
}

// StopTokens is the set of ids that end generation: the config's EOS ids plus
// the tokenizer config's eos token (chat models often end turns with a token
// such as <|im_end|> or <end_of_turn> that only tokenizer_config.json names).
func (m *Model) StopTokens() []int {
	seen := map[int]bool{}
	var out []int
	add := func(id int) {
		if id >= 0 && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if m.Config != nil {
		for _, id := range m.Config.EOSTokenIDs {
			add(id)
		}
	}
	if m.TokenizerConfig != nil && m.TokenizerConfig.EOSToken != "" && m.Tokenizer != nil {
		if id, ok := m.Tokenizer.TokenID(m.TokenizerConfig.EOSToken); ok {
			add(id)
		}
	}
	return out
}

// Continuation is the text that generated ids add after a prompt, as it
// appears in the decoded whole (decode(prompt+generated) minus
// decode(prompt)). Decoding the generated ids alone can differ at the seam:
// SentencePiece-style decoders strip the leading space of a decode.
func (m *Model) Continuation(prompt, generated []int) (string, error) {
	return tokenizer.NewContinuation(m.Tokenizer, prompt).Decode(generated, false)
}
