package testmodels

import "fmt"

// Llama is the shape of a small Llama-family config.json for random test
// models (SiLU, tied embeddings, RMS norm epsilon 1e-5).
type Llama struct {
	Hidden, Intermediate, Layers, Heads, KVHeads int
	// Vocab is vocab_size; the ChatML test tokenizer needs at least 260.
	Vocab int
	// MaxPositions is max_position_embeddings.
	MaxPositions int
	// BOS and EOS are bos_token_id and eos_token_id.
	BOS, EOS int
	// RopeTheta is rope_theta; 0 means 10000.
	RopeTheta float64
}

// TinyChat is a random 3-layer chat model (hidden 32, vocabulary 320, BOS
// 318, EOS 319) that the bench and probe tests share.
var TinyChat = Llama{Hidden: 32, Intermediate: 64, Layers: 3, Heads: 4, KVHeads: 2, Vocab: 320,
	MaxPositions: 512, BOS: 318, EOS: 319}

// JSON renders c as a config.json.
func (c Llama) JSON() []byte {
	theta := c.RopeTheta
	if theta == 0 {
		theta = 10000
	}
	return fmt.Appendf(nil, `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": %d, "intermediate_size": %d, "num_hidden_layers": %d,
  "num_attention_heads": %d, "num_key_value_heads": %d, "vocab_size": %d,
  "max_position_embeddings": %d, "rms_norm_eps": 1e-5, "rope_theta": %g,
  "hidden_act": "silu", "tie_word_embeddings": true,
  "bos_token_id": %d, "eos_token_id": %d
}`, c.Hidden, c.Intermediate, c.Layers, c.Heads, c.KVHeads, c.Vocab, c.MaxPositions, theta, c.BOS, c.EOS)
}
