package chattemplate

import (
	"os"
	"path/filepath"
	"testing"

	"tether/tokenizer"
)

// TestOptionsFor renders a template that prints every special-token variable:
// the values must be the tokenizer_config.json's, and unk_token, which the
// file does not set, must stay undefined (it prints as "").
func TestOptionsFor(t *testing.T) {
	cfg, err := tokenizer.ParseTokenizerConfig([]byte(`{"chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}|{{ pad_token }}|{{ unk_token }}",
		"bos_token": "<s>", "eos_token": {"content": "</s>"}, "pad_token": "<pad>"}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := New(cfg.ChatTemplates[tokenizer.DefaultChatTemplateName], tokenizer.DefaultChatTemplateName)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tmpl.Render([]tokenizer.Message{{Role: "user", Content: "hi"}}, OptionsFor(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s>hi</s>|<pad>|"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

// TestSharedDefaultTemplatesParse parses the default chat template of every
// real tokenizer_config.json in ../shared.
func TestSharedDefaultTemplatesParse(t *testing.T) {
	for _, dir := range []string{"qwen3", "llama3", "gemma3"} {
		t.Run(dir, func(t *testing.T) {
			path := filepath.Join(sharedTokenizersDir, dir, "tokenizer_config.json")
			if _, err := os.Stat(path); err != nil {
				t.Skipf("%s not found: ../shared is absent", path)
			}
			cfg, err := tokenizer.LoadTokenizerConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			src, ok := cfg.ChatTemplates[tokenizer.DefaultChatTemplateName]
			if !ok {
				t.Fatalf("%s has no default chat template", path)
			}
			if _, err := NewFile(src, tokenizer.DefaultChatTemplateName, path); err != nil {
				t.Error(err)
			}
		})
	}
}
