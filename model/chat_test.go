package model_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/model"
	"tether/tokenizer"
)

// TestRenderChatMatchesReference: RenderChat gives, byte for byte, what the Python reference
// (jinja2 plus the reference pipeline's system-prompt test and enable_thinking, gen.py) renders
// for a template that takes a system prompt and enable_thinking (Qwen 3), one that raises on a
// system prompt (Gemma 2), one that silently drops it, and no template (stories260K); ChatPrompt
// gives the reference's token ids.
func TestRenderChatMatchesReference(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	for _, c := range f.Cases {
		name := c.Model + "/" + c.Name
		if c.EnableThinking != nil {
			name += map[bool]string{false: "/thinking_off", true: "/thinking_on"}[*c.EnableThinking]
		}
		t.Run(name, func(t *testing.T) {
			m := f.Model(t, c.Model, c.EnableThinking)
			text, err := m.RenderChat(c.Messages, c.AddGenerationPrompt)
			if err != nil {
				t.Fatal(err)
			}
			if text != c.Text {
				t.Fatalf("rendered\n%q\nreference\n%q", text, c.Text)
			}
			ids, err := m.ChatPrompt(c.Messages, c.AddGenerationPrompt)
			if err != nil {
				t.Fatal(err)
			}
			if want := testmodels.ReferenceIDs(t, m, c); !slices.Equal(ids, want) {
				t.Fatalf("ids %v\nwant %v", ids, want)
			}
		})
	}
}

// TestSystemFoldAndRendering: the fold mode each fixture model was built to show, and the
// rendering record derived from it.
func TestSystemFoldAndRendering(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	off, on := false, true
	for _, tc := range []struct {
		model    string
		thinking *bool
		fold     string
		format   string
		// wantThinking is the recorded enable_thinking (nil: the template does not read it).
		wantThinking *bool
	}{
		{"qwen3", &off, model.FoldNone, model.FormatTemplate, &off},
		{"qwen3", &on, model.FoldNone, model.FormatTemplate, &on},
		{"gemma2", nil, model.FoldRaises, model.FormatTemplate, nil},
		{"drops_system", nil, model.FoldDrops, model.FormatTemplate, nil},
		{"plain", nil, model.FoldNoTemplate, model.FormatPlain, nil},
	} {
		m := f.Model(t, tc.model, tc.thinking)
		fold, err := m.SystemFold()
		if err != nil || fold != tc.fold {
			t.Errorf("%s: SystemFold = %q, %v; want %q", tc.model, fold, err, tc.fold)
			continue
		}
		r, err := m.ChatRendering()
		if err != nil {
			t.Fatal(err)
		}
		if r.Format != tc.format || r.FoldMode != tc.fold || (r.EnableThinking == nil) != (tc.wantThinking == nil) ||
			(r.EnableThinking != nil && *r.EnableThinking != *tc.wantThinking) {
			t.Errorf("%s: rendering %+v", tc.model, r)
		}
		if (r.TemplateSHA256 == "") != (tc.format == model.FormatPlain) {
			t.Errorf("%s: template sha256 %q", tc.model, r.TemplateSHA256)
		}
		back, err := model.ParseRendering(r.JSON(), "test")
		if err != nil || !back.Equal(r) {
			t.Errorf("%s: rendering JSON %s reads back as %+v, %v", tc.model, r.JSON(), back, err)
		}
	}
	qOff, qOn := f.Model(t, "qwen3", &off), f.Model(t, "qwen3", &on)
	rOff, _ := qOff.ChatRendering()
	rOn, _ := qOn.ChatRendering()
	if rOff.Equal(rOn) {
		t.Error("renderings with enable_thinking false and true compare equal")
	}
	if !strings.Contains(rOff.String(), "enable_thinking=false") || !strings.Contains(rOn.String(), "enable_thinking=true") {
		t.Errorf("descriptions %q / %q do not name the enable_thinking setting", rOff, rOn)
	}
}

// TestParseRenderingErrors: a malformed rendering record names the field and what was expected.
func TestParseRenderingErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{`not json`, "expected a JSON object"},
		{`{"format": "jinja", "fold_mode": "none"}`, `format "jinja"`},
		{`{"format": "plain", "fold_mode": "sometimes"}`, `fold_mode "sometimes"`},
	} {
		if _, err := model.ParseRendering(tc.text, "axis.safetensors"); err == nil || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "axis.safetensors") {
			t.Errorf("ParseRendering(%s) error %v, want one naming the source and %q", tc.text, err, tc.want)
		}
	}
}

// TestPlainChatStop: in the plain format a turn stops at "\nUser:" and the assistant text is cut
// there; with a chat template there is no stop string.
func TestPlainChatStop(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	m := f.Model(t, "plain", nil)
	if got := m.ChatStopStrings(); !slices.Equal(got, []string{"\nUser:"}) {
		t.Fatalf("plain stop strings %q", got)
	}
	prompt, err := m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: "Hi"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := m.Tokenizer.Encode("User: Hi\nAssistant: Hello there.\nUser: more", true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole[:len(prompt)], prompt) {
		t.Fatalf("the prompt %v is not a prefix of the whole %v", prompt, whole)
	}
	if text, err := m.AssistantText(prompt, whole[len(prompt):]); err != nil || text != " Hello there." {
		t.Fatalf("assistant text %q, %v; want the text before the next user turn", text, err)
	}
	q := f.Model(t, "drops_system", nil)
	if got := q.ChatStopStrings(); got != nil {
		t.Fatalf("template stop strings %q, want none", got)
	}
}

// writeBrokenTemplateModel writes a tiny model whose chat template does not parse.
func writeBrokenTemplateModel(t *testing.T) string {
	t.Helper()
	dir := testmodels.Write(t, t.TempDir(), testmodels.TinyChat, 1)
	testmodels.SetChatTemplate(t, dir, "{% for m in messages %}{{ m.content }")
	return dir
}

// TestBrokenTemplateIsLazy: a chat template that does not parse does not stop a model from
// opening or encoding a plain prompt; the first chat rendering fails with an error naming the
// template's file.
func TestBrokenTemplateIsLazy(t *testing.T) {
	dir := writeBrokenTemplateModel(t)
	m := testmodels.OpenWith(t, dir, model.Options{NoWeights: true})
	if _, err := m.PlainPrompt("Once upon a time"); err != nil {
		t.Fatalf("plain prompt with a broken chat template: %v", err)
	}
	if !m.HasChatTemplate() {
		t.Fatal("a broken template should still count as a template (no silent plain fallback)")
	}
	_, err := m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: "Hi"}}, true)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "tokenizer_config.json")) {
		t.Fatalf("chat prompt error %v, want one naming %s", err, filepath.Join(dir, "tokenizer_config.json"))
	}
	if _, err := m.ChatRendering(); err == nil {
		t.Fatal("ChatRendering of a broken template succeeded")
	}
}

// TestAssistantTurnDropsPlainStop: in the plain format the ids of the next "User:" turn are not
// part of the assistant turn; with a chat template the generated ids are kept as they are.
func TestAssistantTurnDropsPlainStop(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	m := f.Model(t, "plain", nil)
	prompt, err := m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: "Hi"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := m.Tokenizer.Encode("User: Hi\nAssistant: Hello there.", true)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := m.Tokenizer.Encode("User: Hi\nAssistant: Hello there.\nUser: more", true)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(whole[:len(answer)], answer) {
		t.Fatalf("the answer's ids %v are not a prefix of the whole %v", answer, whole)
	}
	ids, text, err := m.AssistantTurn(prompt, whole[len(prompt):])
	if err != nil || text != " Hello there." || !slices.Equal(ids, answer[len(prompt):]) {
		t.Fatalf("assistant turn %v %q, %v; want %v %q", ids, text, err, answer[len(prompt):], " Hello there.")
	}
	q := f.Model(t, "drops_system", nil)
	gen := []int{1, 2, 3}
	if ids, _, err := q.AssistantTurn(nil, gen); err != nil || !slices.Equal(ids, gen) {
		t.Fatalf("template model: ids %v, %v; want them unchanged", ids, err)
	}
}
