package chattemplate

import (
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
			src, ok := fixtureTemplateSource(t, "shared:"+dir+"/tokenizer_config.json")
			if !ok {
				t.Skipf("%s/%s not found: ../shared is absent", sharedTokenizersDir, dir)
			}
			if _, err := NewFile(src, tokenizer.DefaultChatTemplateName, dir+"/tokenizer_config.json"); err != nil {
				t.Error(err)
			}
		})
	}
}
