package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// DefaultChatTemplateName is the name of the chat template used when a model
// ships a single one (chat_template as a plain string) or a list with an
// entry named "default".
const DefaultChatTemplateName = "default"

// TokenizerConfig is the part of a Hugging Face tokenizer_config.json that
// matters for prompting: chat templates and special tokens.
type TokenizerConfig struct {
	// ChatTemplates maps template names to Jinja sources. A chat_template
	// given as a plain string is stored under DefaultChatTemplateName; a list
	// of {"name", "template"} objects keeps its names.
	ChatTemplates map[string]string
	// BOSToken, EOSToken, PadToken and UnkToken are the tokens' text; each
	// may be written as a string or as an AddedToken object {"content": ...}
	// in the file. Empty when absent or null.
	BOSToken, EOSToken, PadToken, UnkToken string
	// AddBOSToken and AddEOSToken are add_bos_token / add_eos_token; nil
	// when the file does not set them.
	AddBOSToken, AddEOSToken *bool
	// ModelMaxLength is model_max_length; 0 when absent. Values too large
	// for an int (transformers writes 1e30 for "no limit") are clamped to
	// math.MaxInt.
	ModelMaxLength int
	// Raw holds every top-level field of the file, for anything else
	// (added_tokens_decoder, tokenizer_class, ...).
	Raw map[string]json.RawMessage
}

// LoadTokenizerConfig reads and parses a tokenizer_config.json file.
func LoadTokenizerConfig(path string) (*TokenizerConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: reading tokenizer config: %w", err)
	}
	return ParseTokenizerConfig(data, path)
}

// ParseTokenizerConfig parses the contents of a tokenizer_config.json;
// source names it in errors (usually its path).
func ParseTokenizerConfig(data []byte, source string) (*TokenizerConfig, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: not a JSON object: %w", source, err)
	}
	if raw == nil {
		return nil, fmt.Errorf("tokenizer: %s: expected a JSON object, got null", source)
	}
	cfg := &TokenizerConfig{Raw: raw, ChatTemplates: map[string]string{}}
	if msg, ok := raw["chat_template"]; ok {
		templates, err := parseChatTemplateField(msg)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: field \"chat_template\": %w", source, err)
		}
		cfg.ChatTemplates = templates
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"bos_token", &cfg.BOSToken}, {"eos_token", &cfg.EOSToken},
		{"pad_token", &cfg.PadToken}, {"unk_token", &cfg.UnkToken},
	} {
		msg, ok := raw[f.name]
		if !ok {
			continue
		}
		text, err := parseSpecialToken(msg)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: field %q: %w", source, f.name, err)
		}
		*f.dst = text
	}
	for _, f := range []struct {
		name string
		dst  **bool
	}{{"add_bos_token", &cfg.AddBOSToken}, {"add_eos_token", &cfg.AddEOSToken}} {
		msg, ok := raw[f.name]
		if !ok || tokconfigIsNull(msg) {
			continue
		}
		var b bool
		if err := json.Unmarshal(msg, &b); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: field %q: expected true or false, got %s", source, f.name, tokconfigAbbrev(msg))
		}
		*f.dst = &b
	}
	if msg, ok := raw["model_max_length"]; ok && !tokconfigIsNull(msg) {
		var f float64
		if err := json.Unmarshal(msg, &f); err != nil || f < 0 || f != math.Trunc(f) {
			return nil, fmt.Errorf("tokenizer: %s: field \"model_max_length\": expected a non-negative integer, got %s", source, tokconfigAbbrev(msg))
		}
		if f >= math.MaxInt {
			cfg.ModelMaxLength = math.MaxInt
		} else {
			cfg.ModelMaxLength = int(f)
		}
	}
	return cfg, nil
}

// parseChatTemplateField reads chat_template: a string, a list of
// {"name": ..., "template": ...}, or null (no template).
func parseChatTemplateField(msg json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	if tokconfigIsNull(msg) {
		return out, nil
	}
	var s string
	if err := json.Unmarshal(msg, &s); err == nil {
		out[DefaultChatTemplateName] = s
		return out, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(msg, &list); err != nil {
		return nil, fmt.Errorf("expected a string or a list of {\"name\", \"template\"} objects, got %s", tokconfigAbbrev(msg))
	}
	for i, item := range list {
		var entry struct {
			Name     *string `json:"name"`
			Template *string `json:"template"`
		}
		if err := json.Unmarshal(item, &entry); err != nil {
			return nil, fmt.Errorf("entry %d: expected {\"name\": string, \"template\": string}, got %s", i, tokconfigAbbrev(item))
		}
		if entry.Name == nil || entry.Template == nil {
			return nil, fmt.Errorf("entry %d: expected both \"name\" and \"template\" strings, got %s", i, tokconfigAbbrev(item))
		}
		if _, dup := out[*entry.Name]; dup {
			return nil, fmt.Errorf("entry %d: duplicate template name %q", i, *entry.Name)
		}
		out[*entry.Name] = *entry.Template
	}
	return out, nil
}

// parseSpecialToken reads a special token: a string, an AddedToken object
// {"content": ..., ...} (optionally tagged "__type": "AddedToken"), or null.
func parseSpecialToken(msg json.RawMessage) (string, error) {
	if tokconfigIsNull(msg) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(msg, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(msg, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("expected a string or an object with a string \"content\", got %s", tokconfigAbbrev(msg))
	}
	return *obj.Content, nil
}

// LoadChatTemplates collects the chat templates of a model directory the way
// transformers does: those in tokenizer_config.json, then a separate
// chat_template.jinja (the default template) or chat_template.json
// ({"chat_template": ...} as in tokenizer_config.json), which newer exports
// use and which take precedence, and templates in additional_chat_templates/
// NAME.jinja. A directory without any template gives an empty map and no
// error.
func LoadChatTemplates(dir string) (map[string]string, error) {
	out := map[string]string{}
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	if _, err := os.Stat(cfgPath); err == nil {
		cfg, err := LoadTokenizerConfig(cfgPath)
		if err != nil {
			return nil, err
		}
		for k, v := range cfg.ChatTemplates {
			out[k] = v
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: %w", cfgPath, err)
	}

	jsonPath := filepath.Join(dir, "chat_template.json")
	if data, err := os.ReadFile(jsonPath); err == nil {
		var wrapper map[string]json.RawMessage
		if err := json.Unmarshal(data, &wrapper); err != nil {
			return nil, fmt.Errorf("tokenizer: %s: not a JSON object: %w", jsonPath, err)
		}
		msg, ok := wrapper["chat_template"]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: missing field \"chat_template\"", jsonPath)
		}
		templates, err := parseChatTemplateField(msg)
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: field \"chat_template\": %w", jsonPath, err)
		}
		for k, v := range templates {
			out[k] = v
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: %w", jsonPath, err)
	}

	jinjaPath := filepath.Join(dir, "chat_template.jinja")
	if data, err := os.ReadFile(jinjaPath); err == nil {
		out[DefaultChatTemplateName] = string(data)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: %w", jinjaPath, err)
	}

	extraDir := filepath.Join(dir, "additional_chat_templates")
	entries, err := os.ReadDir(extraDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %s: %w", extraDir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".jinja" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(extraDir, name))
		if err != nil {
			return nil, fmt.Errorf("tokenizer: %s: %w", filepath.Join(extraDir, name), err)
		}
		out[name[:len(name)-len(".jinja")]] = string(data)
	}
	return out, nil
}

func tokconfigIsNull(msg json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(msg), []byte("null"))
}

// tokconfigAbbrev returns a JSON value for an error message, cut to 80 bytes.
func tokconfigAbbrev(msg json.RawMessage) string {
	s := string(bytes.TrimSpace(msg))
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
