package chattemplate

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"tether/tokenizer"
)

func TestNewChatTemplateSyntaxErrors(t *testing.T) {
	tests := []struct {
		name, source string
	}{
		{"unclosed if", "{% if true %}x"},
		{"unclosed tag", "{{ messages "},
		{"unknown tag", "{% frobnicate %}"},
		{"unclosed string", "{{ 'abc }}"},
		{"unclosed comment", "{# note"},
		{"raw without endraw", "{% raw %}x"},
		{"dangling operator", "{{ 1 + }}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.source, "my-template")
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), `"my-template"`) {
				t.Errorf("error %q does not name the template", err)
			}
		})
	}
}

func TestRenderRaiseException(t *testing.T) {
	tmpl, err := New(`{% for m in messages %}{% if m.role == 'bad' %}{{ raise_exception('role ' + m.role + ' not allowed') }}{% endif %}{{ m.content }}{% endfor %}`, "strict")
	if err != nil {
		t.Fatal(err)
	}
	out, err := tmpl.Render([]tokenizer.Message{{Role: "user", Content: "hi"}}, Options{})
	if err != nil || out != "hi" {
		t.Fatalf("good input: %q, %v", out, err)
	}
	_, err = tmpl.Render([]tokenizer.Message{{Role: "user", Content: "hi"}, {Role: "bad", Content: "x"}}, Options{})
	var te *Error
	if !errors.As(err, &te) {
		t.Fatalf("error %v is not a *Error", err)
	}
	if te.Message != "role bad not allowed" || te.Template != "strict" {
		t.Errorf("Error %+v", te)
	}
	if !strings.Contains(err.Error(), "role bad not allowed") {
		t.Errorf("error text %q lacks the message", err)
	}
}

func TestRenderOptionsVariables(t *testing.T) {
	tmpl, err := New(
		"{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ enable_thinking is defined }}|{{ custom }}|{{ strftime_now('%d %B %Y') }}",
		"vars")
	if err != nil {
		t.Fatal(err)
	}
	fixed := func() time.Time { return time.Date(2024, time.December, 25, 8, 0, 0, 0, time.UTC) }
	off := false
	tests := []struct {
		opts Options
		want string
	}{
		{Options{Now: fixed}, "||False|False||25 December 2024"},
		{Options{BOSToken: "<s>", EOSToken: "</s>", AddGenerationPrompt: true, EnableThinking: &off,
			Extra: map[string]any{"custom": "c"}, Now: fixed}, "<s>|</s>|True|True|c|25 December 2024"},
		// Extra overrides the named options.
		{Options{BOSToken: "<s>", Extra: map[string]any{"bos_token": "<B>"}, Now: fixed}, "<B>||False|False||25 December 2024"},
	}
	for _, tc := range tests {
		got, err := tmpl.Render(nil, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestStrftime(t *testing.T) {
	// Expected strings follow the C library's definitions of the directives.
	at := time.Date(2025, time.January, 5, 23, 7, 9, 0, time.UTC) // a Sunday
	tests := []struct{ format, want string }{
		{"%d %b %Y", "05 Jan 2025"},
		{"%-d %B %y", "5 January 25"},
		{"%A %a %e", "Sunday Sun  5"},
		{"%H:%M:%S %I%p", "23:07:09 11PM"},
		{"%j %m %%", "005 01 %"},
		{"%F %T", "2025-01-05 23:07:09"},
		{"%u %w", "7 0"},
		{"%Q stays", "%Q stays"},
		{"trailing %", "trailing %"},
	}
	for _, tc := range tests {
		if got := templateStrftime(at, tc.format); got != tc.want {
			t.Errorf("strftime(%q) = %q, want %q", tc.format, got, tc.want)
		}
	}
}

func TestRewriteTemplate(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain text and tags unchanged", "a {{ b }} {% if c %}d{% endif %} {# e #}", "a {{ b }} {% if c %}d{% endif %} {# e #}"},
		{"top-level conditional left to gonja", "{{ a if b else c }}", "{{ a if b else c }}"},
		{"dict key subscript unchanged", "{{ m['role'] }}", "{{ m['role'] }}"},
		{"slice unchanged", "{{ m[1:] }}{{ m[::-1] }}", "{{ m[1:] }}{{ m[::-1] }}"},
		{"conditional in parentheses", "x {{ 'a' + (p if q else '') }}",
			"x {%+ set _tether_cond_1 = p if q else '' %}{{ 'a' + (_tether_cond_1) }}"},
		{"whitespace control carried", "{{- (p if q) -}}", "{%- set _tether_cond_1 = p if q else _tether_undefined %}{{- (_tether_cond_1) -}}"},
		{"chained conditional", "{% set x = a if b else c if d else e %}",
			"{% set _tether_cond_1 = c if d else e %}{% set x = a if b else _tether_cond_1 %}"},
		{"set with empty value left for gonja", "{% set x = %}", "{% set x = %}"},
		{"set without else", "{% set x = a if b %}", "{% set x = a if b else _tether_undefined %}"},
		{"elif hoisted before its if", "{% if a %}1{% elif (b if c else d) %}2{% endif %}",
			"{% set _tether_cond_1 = b if c else d %}{% if a %}1{% elif (_tether_cond_1) %}2{% endif %}"},
		{"index", "{{ messages[-1].role }}", "{{ [messages|_tether_getitem(-1)][0].role }}"},
		{"method on parenthesised expression", "{{ (a|trim).upper() }}", "{{ [a|trim][0].upper() }}"},
		{"raw block untouched", "{% raw %}{{ x[0] }}{% endraw %}", "{% raw %}{{ x[0] }}{% endraw %}"},
		{"string with delimiters", "{{ '}}' + ('%}' if a else '{{') }}",
			"{%+ set _tether_cond_1 = '%}' if a else '{{' %}{{ '}}' + (_tether_cond_1) }}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rewriteTemplate(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("rewrite\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

// TestRenderConcurrent renders one template from many goroutines: the
// results must not interfere (each render has its own variables and clock).
func TestRenderConcurrent(t *testing.T) {
	tmpl, err := New("{% for m in messages %}{{ m.role }}={{ m.content }};{% endfor %}{{ raise_exception('stop') if messages|length > 3 }}", "concurrent")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			msgs := make([]tokenizer.Message, g%5)
			want := ""
			for i := range msgs {
				msgs[i] = tokenizer.Message{Role: "user", Content: strings.Repeat("x", g)}
				want += "user=" + strings.Repeat("x", g) + ";"
			}
			for rep := 0; rep < 20; rep++ {
				out, err := tmpl.Render(msgs, Options{})
				if len(msgs) > 3 {
					var te *Error
					if !errors.As(err, &te) || te.Message != "stop" {
						errs <- "expected raise_exception"
					}
					continue
				}
				if err != nil || out != want {
					errs <- out
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// BenchmarkRenderQwen3 renders a ten-turn conversation with the real Qwen 3
// template.
func BenchmarkRenderQwen3(b *testing.B) {
	cfg, err := tokenizer.LoadTokenizerConfig(sharedTokenizersDir + "/qwen3/tokenizer_config.json")
	if err != nil {
		b.Skipf("../shared is absent: %v", err)
	}
	tmpl, err := New(cfg.ChatTemplates[tokenizer.DefaultChatTemplateName], tokenizer.DefaultChatTemplateName)
	if err != nil {
		b.Fatal(err)
	}
	msgs := []tokenizer.Message{{Role: "system", Content: "Be brief."}}
	for i := 0; i < 5; i++ {
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: "Question?"}, tokenizer.Message{Role: "assistant", Content: "<think>\nhm\n</think>\n\nAnswer."})
	}
	opts := OptionsFor(cfg)
	opts.AddGenerationPrompt = true
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tmpl.Render(msgs, opts); err != nil {
			b.Fatal(err)
		}
	}
}
