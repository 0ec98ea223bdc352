package chattemplate

import "tether/tokenizer"

// OptionsFor returns the options apply_chat_template would render with for a
// tokenizer: bos_token and eos_token, and pad_token and unk_token as extra
// variables when its tokenizer_config.json sets them (transformers passes
// every special token to the template). Set AddGenerationPrompt and the rest
// on the result.
func OptionsFor(cfg *tokenizer.TokenizerConfig) Options {
	opts := Options{BOSToken: cfg.BOSToken, EOSToken: cfg.EOSToken, Extra: map[string]any{}}
	if cfg.PadToken != "" {
		opts.Extra["pad_token"] = cfg.PadToken
	}
	if cfg.UnkToken != "" {
		opts.Extra["unk_token"] = cfg.UnkToken
	}
	return opts
}
