package chattemplate

import (
	"strings"
	"testing"
	"time"

	"tether/tokenizer"
)

// fuzzTemplates parses every fixture template that is available, except
// the known-gap ones.
func fuzzTemplates(f *testing.F) []*Template {
	f.Helper()
	fx := loadTemplateFixtures(f)
	var out []*Template
	for name, info := range fx.Templates {
		if info.KnownGap != "" {
			continue // constructs where gonja is known to fail
		}
		src, ok := info.Template, true
		if info.Source != "inline" {
			src, ok = fixtureTemplateSource(f, info.Source)
		}
		if !ok {
			continue
		}
		tmpl, err := New(src, name)
		if err != nil {
			f.Fatalf("template %s: %v", name, err)
		}
		out = append(out, tmpl)
	}
	return out
}

// FuzzRenderMessages renders random conversations with every template: any
// result is fine except a panic inside the engine.
func FuzzRenderMessages(f *testing.F) {
	templates := fuzzTemplates(f)
	f.Add("user", "hello", "assistant", "<think>\nx\n</think>\n\nhi", true)
	f.Add("system", "", "user", "{{ '}}' }}", false)
	f.Add("tool", "\xff\xfe invalid utf-8", "ipython", "日本語 🤖", true)
	f.Add("", "{% endif %}", "user", "</think></think><think>", true)
	f.Fuzz(func(t *testing.T, role1, content1, role2, content2 string, gen bool) {
		msgs := []tokenizer.Message{{Role: role1, Content: content1}, {Role: role2, Content: content2}}
		for _, tmpl := range templates {
			for n := 0; n <= len(msgs); n++ {
				_, err := tmpl.Render(msgs[:n], Options{AddGenerationPrompt: gen, BOSToken: "<s>"})
				if err != nil && strings.Contains(err.Error(), internalPanicText) {
					t.Fatalf("template %s: %v", tmpl.Name(), err)
				}
			}
		}
	})
}

// FuzzChatTemplateSource feeds random template sources through the source
// rewrite (which must never panic: it runs unprotected) and then through
// New and Render, which must return, not panic. A panic inside
// gonja (it panics on "{{ 0%0 }}", for one) comes back as an error.
func FuzzChatTemplateSource(f *testing.F) {
	for _, s := range []string{
		"{{ 'a' + (b if c else d) }}",
		"{% if a %}{% elif (b if c) %}{% endif %}",
		"{{ x[-1][0].y.strip() }}",
		"{% for m in messages[::-1] if m %}{{ (m.content|trim).split()[0] }}{% endfor %}",
		"{%- set ns = namespace(a=1) -%}{{ ns.a }}",
		"{{ ((a if b else c) if d else e) }}",
		"{% raw %}{{{% endraw %}",
		"{{ A[][0%00)}}",
		"{% macro f(x) %}{{ f(x) }}{% endmacro %}{{ f(1) }}",
		"{% for x in [1] recursive %}{{ loop([x]) }}{% endfor %}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, source string) {
		if _, err := rewriteTemplate(source); err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			tmpl, err := New(source, "fuzz")
			if err != nil {
				return
			}
			_, _ = tmpl.Render([]tokenizer.Message{{Role: "user", Content: "hi"}}, Options{})
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("HANG %q", source)
		}
	})
}
