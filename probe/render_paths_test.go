package probe

import (
	"slices"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/model"
	"tether/tokenizer"
)

// TestProbePathsMatchReference: the persona rollout prompt (Prompter.Prompt, also the judge's
// path), the capture span (Prompter.Span) and project (ConversationSpans) turn the fixture
// conversations into exactly the reference's token ids, and their spans hold the assistant
// turns' text.
func TestProbePathsMatchReference(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	f.EachModel(t, func(t *testing.T, name string, thinking *bool, m *model.Model) {
		p := NewPrompter(m)
		ref := func(c string) (testmodels.ChatFixtureCase, []int) {
			fc := f.Case(t, name, c, thinking)
			return fc, testmodels.ReferenceIDs(t, m, fc)
		}
		sys, sysIDs := ref("system_prompt")
		if got, err := p.Prompt(sys.Messages[0].Content, sys.Messages[1].Content); err != nil || !slices.Equal(got, sysIDs) {
			t.Errorf("rollout prompt with a system prompt: %v, %v\nwant %v", got, err, sysIDs)
		}
		user, userIDs := ref("user_prompt")
		if got, err := p.Prompt("", user.Messages[0].Content); err != nil || !slices.Equal(got, userIDs) {
			t.Errorf("rollout/judge prompt without a system prompt: %v, %v\nwant %v", got, err, userIDs)
		}
		for _, c := range []string{"system_full", "user_full"} {
			full, fullIDs := ref(c)
			conv := Conversation{Question: full.Messages[len(full.Messages)-2].Content, Response: full.Messages[len(full.Messages)-1].Content}
			if len(full.Messages) == 3 {
				conv.System = full.Messages[0].Content
			}
			s, err := p.Span(conv)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Tokens, fullIDs) {
				t.Errorf("%s: capture tokens %v\nwant %v", c, s.Tokens, fullIDs)
			}
			checkSpanText(t, m, s.Tokens, s.Start, s.End, conv.Response)
			ids, spans, err := ConversationSpans(m, full.Messages)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, s.Tokens) || len(spans) != 1 || spans[0].Start != s.Start || spans[0].End != s.End {
				t.Errorf("%s: project gives %d tokens, spans %+v; capture %d tokens, span [%d,%d)", c, len(ids), spans, len(s.Tokens), s.Start, s.End)
			}
		}
		multi, multiIDs := ref("multi_full")
		ids, spans, err := ConversationSpans(m, multi.Messages)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, multiIDs) {
			t.Errorf("project tokens %v\nwant %v", ids, multiIDs)
		}
		if len(spans) != 2 || spans[0].Turn != 2 || spans[1].Turn != 4 {
			t.Fatalf("spans %+v, want turns 2 and 4", spans)
		}
		for _, s := range spans {
			checkSpanText(t, m, ids, s.Start, s.End, multi.Messages[s.Turn].Content)
		}
	})
}

// checkSpanText checks that tokens[start:end] hold the assistant text (white space at its ends
// aside: a token straddling the content's edge counts as the span's).
func checkSpanText(t *testing.T, m *model.Model, tokens []int, start, end int, text string) {
	t.Helper()
	got, err := m.Continuation(tokens[:start], tokens[start:end])
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(got) != strings.TrimSpace(text) {
		t.Errorf("span [%d,%d) holds %q, want %q", start, end, got, strings.TrimSpace(text))
	}
}

// TestShortModelName: {model_name} becomes the reference pipeline's short name (its
// MODEL_CONFIGS entries and its inference rule in assistant_axis/models.py).
func TestShortModelName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"google/gemma-2-27b-it", "Gemma"},
		{"Qwen/Qwen3-32B", "Qwen"},
		{"meta-llama/Llama-3.3-70B-Instruct", "Llama"},
		{"mistralai/Mistral-7B-Instruct-v0.3", "Mistral"},
		{"Qwen3-8B", "Qwen"},
		{"HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM2"},
		{"microsoft/Phi-3-mini-4k-instruct", "Phi"},
		{"stories260K", "stories260K"},
	} {
		if got := ShortModelName(tc.name); got != tc.want {
			t.Errorf("ShortModelName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestFoldNeedsAUserTurn: a folded system prompt with no user turn after it is an error, not a
// silently dropped prompt.
func TestFoldNeedsAUserTurn(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	m := f.Model(t, "gemma2", nil)
	_, err := m.RenderChat([]tokenizer.Message{{Role: "system", Content: "Be brief."}, {Role: "assistant", Content: "Hi."}}, false)
	if err == nil || !strings.Contains(err.Error(), "no user message follows") {
		t.Fatalf("error %v, want one saying no user message follows the system prompt", err)
	}
}

// TestRunRecordsFolding: a run with a template that raises on a system message records the fold
// mode, that its system prompts were folded, and the default {model_name}.
func TestRunRecordsFolding(t *testing.T) {
	m := openTiny(t, 3, noSystemTemplate)
	dir := t.TempDir()
	if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(dir)); err != nil {
		t.Fatal(err)
	}
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := run.Manifest().Rendering
	if r == nil || r.FoldMode != model.FoldRaises || !r.SystemFolded || r.ModelName != ShortModelName(m.Name) || r.Format != model.FormatTemplate {
		t.Fatalf("rendering %+v", r)
	}
}

// TestAxisRenderingMismatch: an axis without a rendering record, or with the model's own, gives
// no warning; another rendering gives one naming both; a malformed record is an error naming
// the metadata key.
func TestAxisRenderingMismatch(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	off, on := false, true
	m := f.Model(t, "qwen3", &off)
	here, err := m.ChatRendering()
	if err != nil {
		t.Fatal(err)
	}
	other, err := f.Model(t, "qwen3", &on).ChatRendering()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, meta, warn, err string
		set                   bool
	}{
		{name: "not recorded"},
		{name: "same", meta: here.JSON(), set: true},
		{name: "other", meta: other.JSON(), set: true, warn: "enable_thinking=true"},
		{name: "malformed", meta: "{", set: true, err: `metadata "rendering"`},
	} {
		a := &axis.Axis{Model: "qwen3", Extra: map[string]string{}}
		if tc.set {
			a.Extra[axis.RenderingKey] = tc.meta
		}
		w, err := AxisRenderingMismatch(a, m)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one naming %s", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.warn == "" && w != "":
			t.Errorf("%s: warning %q", tc.name, w)
		case tc.warn != "" && (!strings.Contains(w, tc.warn) || !strings.Contains(w, "enable_thinking=false")):
			t.Errorf("%s: warning %q, want both settings named", tc.name, w)
		}
	}
}

// TestOpenRunModelThinking: the per-token calibration reopens the run's model with the run's
// enable_thinking, so it renders the rollouts as the run did.
func TestOpenRunModelThinking(t *testing.T) {
	dir := writeTinyModel(t, t.TempDir(), 1, "")
	on := true
	for _, tc := range []struct {
		rendering *RunRendering
		want      bool
	}{
		{nil, false},
		{&RunRendering{Rendering: model.Rendering{Format: model.FormatTemplate, FoldMode: model.FoldNone}}, false},
		{&RunRendering{Rendering: model.Rendering{Format: model.FormatTemplate, FoldMode: model.FoldNone, EnableThinking: &on}}, true},
	} {
		m, err := openRunModel(Manifest{Rendering: tc.rendering}, dir, testmodels.Backend())
		if err != nil {
			t.Fatal(err)
		}
		got := m.EnableThinking
		m.Close()
		if got != tc.want {
			t.Errorf("rendering %+v: EnableThinking %v, want %v", tc.rendering, got, tc.want)
		}
	}
}
