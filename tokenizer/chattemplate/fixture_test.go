package chattemplate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/tokenizer"
)

// templateFixtures is testdata/fixtures.json, written by gen.py
// with Python's jinja2 configured like transformers.
type templateFixtures struct {
	FixedNow  string `json:"fixed_now"`
	Templates map[string]struct {
		Source   string `json:"source"`
		Template string `json:"template"`
		KnownGap string `json:"known_gap"`
		BOSToken string `json:"bos_token"`
		EOSToken string `json:"eos_token"`
	} `json:"templates"`
	Cases []struct {
		Template            string           `json:"template"`
		Name                string           `json:"name"`
		Messages            []map[string]any `json:"messages"`
		AddGenerationPrompt bool             `json:"add_generation_prompt"`
		Extra               map[string]any   `json:"extra"`
		Output              *string          `json:"output"`
		Error               *string          `json:"error"`
		ErrorKind           string           `json:"error_kind"`
	} `json:"cases"`
}

const sharedTokenizersDir = "../../../shared/tokenizers"

func loadTemplateFixtures(t testing.TB) *templateFixtures {
	t.Helper()
	data, err := os.ReadFile("testdata/fixtures.json")
	if err != nil {
		t.Fatalf("reading fixtures: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var f templateFixtures
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("decoding fixtures: %v", err)
	}
	return &f
}

// fixtureTemplateSource reads a template named in fixtures.json:
// "testdata:FILE" (a tokenizer_config.json or a .jinja file kept here) or
// "shared:DIR/tokenizer_config.json" under ../shared/tokenizers.
func fixtureTemplateSource(t testing.TB, where string) (string, bool) {
	t.Helper()
	kind, rel, _ := strings.Cut(where, ":")
	var path string
	switch kind {
	case "testdata":
		path = filepath.Join("testdata", rel)
	case "shared":
		path = filepath.Join(sharedTokenizersDir, rel)
		if _, err := os.Stat(path); err != nil {
			return "", false
		}
	default:
		t.Fatalf("fixture source %q: unknown kind", where)
	}
	if strings.HasSuffix(path, ".jinja") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data), true
	}
	cfg, err := tokenizer.LoadTokenizerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	src, ok := cfg.ChatTemplates[tokenizer.DefaultChatTemplateName]
	if !ok {
		t.Fatalf("%s: no default chat template", path)
	}
	return src, true
}

// TestChatTemplateFixtures renders every fixture case and requires the exact
// bytes Python's jinja2 produced, or an error where jinja2 raised one
// (containing the template's own message for raise_exception).
func TestChatTemplateFixtures(t *testing.T) {
	f := loadTemplateFixtures(t)
	now, err := time.Parse("2006-01-02T15:04:05", f.FixedNow)
	if err != nil {
		t.Fatalf("fixed_now %q: %v", f.FixedNow, err)
	}
	templates := map[string]*Template{}
	for name, info := range f.Templates {
		src, ok := info.Template, true
		if info.Source != "inline" {
			src, ok = fixtureTemplateSource(t, info.Source)
		}
		if !ok {
			t.Logf("skipping template %s: %s not found (../shared is absent)", name, info.Source)
			continue
		}
		tmpl, err := New(src, name)
		if err != nil {
			t.Errorf("template %s: %v", name, err)
			continue
		}
		templates[name] = tmpl
	}
	if len(templates) < len(f.Templates) {
		t.Logf("only %d of %d templates available", len(templates), len(f.Templates))
	}
	for _, c := range f.Cases {
		tmpl, ok := templates[c.Template]
		if !ok {
			continue
		}
		t.Run(c.Template+"/"+c.Name, func(t *testing.T) {
			info := f.Templates[c.Template]
			msgs := make([]tokenizer.Message, len(c.Messages))
			for i, m := range c.Messages {
				msgs[i] = tokenizer.Message{Role: m["role"].(string), Content: m["content"].(string)}
			}
			opts := Options{
				AddGenerationPrompt: c.AddGenerationPrompt,
				BOSToken:            info.BOSToken,
				EOSToken:            info.EOSToken,
				Now:                 func() time.Time { return now },
			}
			extra := map[string]any{}
			for k, v := range c.Extra {
				if k == "enable_thinking" {
					b := v.(bool)
					opts.EnableThinking = &b
					continue
				}
				extra[k] = v
			}
			opts.Extra = extra
			got, err := tmpl.Render(msgs, opts)
			switch {
			case c.Output != nil:
				if err != nil && info.KnownGap != "" {
					t.Skipf("known gap (%s): error %v", info.KnownGap, err)
				}
				if err != nil {
					t.Fatalf("render error %v; want %q", err, *c.Output)
				}
				if got != *c.Output && info.KnownGap != "" {
					t.Skipf("known gap (%s): got %q, jinja2 %q", info.KnownGap, got, *c.Output)
				}
				if got != *c.Output {
					t.Fatalf("output differs from jinja2\n got: %q\nwant: %q", got, *c.Output)
				}
			case c.Error != nil:
				if err == nil {
					t.Fatalf("rendered %q; jinja2 raised %q", got, *c.Error)
				}
				if c.ErrorKind == "raise_exception" {
					var te *Error
					if !errors.As(err, &te) || te.Message != *c.Error {
						t.Fatalf("error %v; want a Error with message %q", err, *c.Error)
					}
					if !strings.Contains(err.Error(), *c.Error) {
						t.Fatalf("error %q does not contain %q", err, *c.Error)
					}
				}
			default:
				t.Fatal("fixture has neither output nor error")
			}
		})
	}
}
