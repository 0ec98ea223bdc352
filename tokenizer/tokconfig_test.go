package tokenizer

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokenizerConfig(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name      string
		json      string
		templates map[string]string
		bos, eos  string
		pad, unk  string
		addBOS    *bool
		addEOS    *bool
		maxLen    int
	}{
		{
			name:      "string template and plain tokens",
			json:      `{"chat_template": "{{ x }}", "bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true, "model_max_length": 2048}`,
			templates: map[string]string{"default": "{{ x }}"},
			bos:       "<s>", eos: "</s>", addBOS: &yes, maxLen: 2048,
		},
		{
			name: "list of named templates and AddedToken objects",
			json: `{"chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}],
			        "bos_token": {"__type": "AddedToken", "content": "<|begin|>", "lstrip": false},
			        "pad_token": {"content": "<pad>"}, "unk_token": null, "add_eos_token": false}`,
			templates: map[string]string{"default": "A", "tool_use": "B"},
			bos:       "<|begin|>", pad: "<pad>", addEOS: &no,
		},
		{
			name:      "no template, huge model_max_length clamps",
			json:      `{"model_max_length": 1000000000000000019884624838656, "add_bos_token": null}`,
			templates: map[string]string{},
			maxLen:    math.MaxInt,
		},
		{
			name:      "null chat_template",
			json:      `{"chat_template": null, "eos_token": "<eos>"}`,
			templates: map[string]string{},
			eos:       "<eos>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseTokenizerConfig([]byte(tc.json), "test.json")
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.ChatTemplates) != len(tc.templates) {
				t.Fatalf("templates %v, want %v", cfg.ChatTemplates, tc.templates)
			}
			for k, v := range tc.templates {
				if cfg.ChatTemplates[k] != v {
					t.Errorf("template %q = %q, want %q", k, cfg.ChatTemplates[k], v)
				}
			}
			if cfg.BOSToken != tc.bos || cfg.EOSToken != tc.eos || cfg.PadToken != tc.pad || cfg.UnkToken != tc.unk {
				t.Errorf("tokens bos=%q eos=%q pad=%q unk=%q, want %q %q %q %q",
					cfg.BOSToken, cfg.EOSToken, cfg.PadToken, cfg.UnkToken, tc.bos, tc.eos, tc.pad, tc.unk)
			}
			if !equalBoolPtr(cfg.AddBOSToken, tc.addBOS) || !equalBoolPtr(cfg.AddEOSToken, tc.addEOS) {
				t.Errorf("add_bos %v add_eos %v, want %v %v", cfg.AddBOSToken, cfg.AddEOSToken, tc.addBOS, tc.addEOS)
			}
			if cfg.ModelMaxLength != tc.maxLen {
				t.Errorf("model_max_length %d, want %d", cfg.ModelMaxLength, tc.maxLen)
			}
			if cfg.Raw == nil {
				t.Error("Raw is nil")
			}
		})
	}
}

func equalBoolPtr(a, b *bool) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func TestParseTokenizerConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		want []string // substrings of the error
	}{
		{"not json", `{`, []string{"cfg.json", "not a JSON object"}},
		{"array", `[]`, []string{"cfg.json"}},
		{"template number", `{"chat_template": 3}`, []string{"cfg.json", `"chat_template"`, "expected a string or a list"}},
		{"template entry without name", `{"chat_template": [{"template": "x"}]}`, []string{"cfg.json", "entry 0", `"name"`}},
		{"duplicate template name", `{"chat_template": [{"name": "a", "template": "x"}, {"name": "a", "template": "y"}]}`, []string{"duplicate", `"a"`}},
		{"token number", `{"bos_token": 1}`, []string{"cfg.json", `"bos_token"`, "expected a string"}},
		{"token object without content", `{"eos_token": {"lstrip": true}}`, []string{`"eos_token"`, "content"}},
		{"add_bos string", `{"add_bos_token": "yes"}`, []string{`"add_bos_token"`, "true or false"}},
		{"negative max length", `{"model_max_length": -1}`, []string{`"model_max_length"`, "non-negative integer"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTokenizerConfig([]byte(tc.json), "cfg.json")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadSharedTokenizerConfigs reads the real tokenizer_config.json files
// and checks fields against what the files say (read independently here
// with plain string matching).
func TestLoadSharedTokenizerConfigs(t *testing.T) {
	tests := []struct {
		dir                string
		bos, eos, pad, unk string
		addBOS             *bool
		maxLen             int
		templateStart      string
	}{
		{dir: "qwen3", eos: "<|im_end|>", pad: "<|endoftext|>", addBOS: new(bool), maxLen: 131072, templateStart: "{%- if tools %}"},
		{dir: "llama3", bos: "<|begin_of_text|>", eos: "<|end_of_text|>", maxLen: math.MaxInt, templateStart: "{% set loop_messages = messages %}"},
		{dir: "gemma3", bos: "<bos>", eos: "<end_of_turn>", pad: "<pad>", unk: "<unk>", addBOS: ptrTo(true), maxLen: 32768, templateStart: "{{ bos_token }}"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			path := filepath.Join(sharedTokenizersDir, tc.dir, "tokenizer_config.json")
			if _, err := os.Stat(path); err != nil {
				t.Skipf("%s not found: ../shared is absent", path)
			}
			cfg, err := LoadTokenizerConfig(path)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.BOSToken != tc.bos || cfg.EOSToken != tc.eos || cfg.PadToken != tc.pad || cfg.UnkToken != tc.unk {
				t.Errorf("tokens bos=%q eos=%q pad=%q unk=%q", cfg.BOSToken, cfg.EOSToken, cfg.PadToken, cfg.UnkToken)
			}
			if !equalBoolPtr(cfg.AddBOSToken, tc.addBOS) {
				t.Errorf("add_bos_token %v, want %v", cfg.AddBOSToken, tc.addBOS)
			}
			if cfg.ModelMaxLength != tc.maxLen {
				t.Errorf("model_max_length %d, want %d", cfg.ModelMaxLength, tc.maxLen)
			}
			if !strings.HasPrefix(cfg.ChatTemplates[DefaultChatTemplateName], tc.templateStart) {
				t.Errorf("default template starts %q", cfg.ChatTemplates[DefaultChatTemplateName][:40])
			}
			dirTemplates, err := LoadChatTemplates(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			if dirTemplates[DefaultChatTemplateName] != cfg.ChatTemplates[DefaultChatTemplateName] {
				t.Error("LoadChatTemplates disagrees with LoadTokenizerConfig")
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestLoadChatTemplates(t *testing.T) {
	write := func(t *testing.T, dir, name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  map[string]string
		err   string
	}{
		{name: "empty directory", files: nil, want: map[string]string{}},
		{
			name:  "config only",
			files: map[string]string{"tokenizer_config.json": `{"chat_template": "CFG"}`},
			want:  map[string]string{"default": "CFG"},
		},
		{
			name: "jinja file wins over config",
			files: map[string]string{
				"tokenizer_config.json": `{"chat_template": [{"name": "default", "template": "CFG"}, {"name": "rag", "template": "RAG"}]}`,
				"chat_template.jinja":   "JINJA\n",
			},
			want: map[string]string{"default": "JINJA\n", "rag": "RAG"},
		},
		{
			name: "json file and additional templates",
			files: map[string]string{
				"chat_template.json":                       `{"chat_template": "JSON"}`,
				"additional_chat_templates/tool_use.jinja": "TOOLS",
				"additional_chat_templates/notes.txt":      "ignored",
			},
			want: map[string]string{"default": "JSON", "tool_use": "TOOLS"},
		},
		{
			name:  "bad json file",
			files: map[string]string{"chat_template.json": `{"chat_template": 5}`},
			err:   "chat_template.json",
		},
		{
			name:  "json file without the field",
			files: map[string]string{"chat_template.json": `{}`},
			err:   `missing field "chat_template"`,
		},
		{
			name:  "bad config",
			files: map[string]string{"tokenizer_config.json": `{"chat_template": true}`},
			err:   "tokenizer_config.json",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tc.files {
				write(t, dir, name, text)
			}
			got, err := LoadChatTemplates(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%q = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
