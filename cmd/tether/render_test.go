package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/model"
	"tether/probe"
)

// TestCommandPathsMatchReference: generate --chat and chat turn the fixture conversations
// (model/testdata/chat, rendered by the Python reference) into exactly the reference's token
// ids, for every fixture template and the plain format; so do the probe and bench paths (their
// own tests), hence all of them give byte-identical ids.
func TestCommandPathsMatchReference(t *testing.T) {
	f := testmodels.LoadChatFixtures(t)
	f.EachModel(t, func(t *testing.T, name string, thinking *bool, m *model.Model) {
		for _, c := range []string{"system_prompt", "user_prompt"} {
			fc := f.Case(t, name, c, thinking)
			system := ""
			if len(fc.Messages) == 2 {
				system = fc.Messages[0].Content
			}
			text, ids, err := chatGeneratePrompt(m, system, fc.Messages[len(fc.Messages)-1].Content)
			if err != nil {
				t.Fatal(err)
			}
			if want := testmodels.ReferenceIDs(t, m, fc); text != fc.Text || !slices.Equal(ids, want) {
				t.Errorf("generate --chat %s: %q %v\nwant %q %v", c, text, ids, fc.Text, want)
			}
		}
		multi := f.Case(t, name, "multi_prompt", thinking)
		cs := &chatSession{m: m, messages: slices.Clone(multi.Messages[:3])}
		ids, err := cs.nextPrompt(multi.Messages[3].Content)
		if err != nil {
			t.Fatal(err)
		}
		if want := testmodels.ReferenceIDs(t, m, multi); !slices.Equal(ids, want) {
			t.Errorf("chat prompt %v\nwant %v", ids, want)
		}
	})
}

// TestChatPlainModel: chat and generate --chat run on a model without a chat template (the
// bundled stories260K) in the plain User/Assistant format, and an answer ends before the next
// "User:" turn.
func TestChatPlainModel(t *testing.T) {
	dir := testmodels.Stories260K(t)
	script := writeScript(t, t.TempDir(), "conv.json", `[
	  {"role": "system", "content": "Tell a story."},
	  {"role": "user", "content": "Who is Lily?"},
	  {"role": "user", "content": "What did she do?"}]`)
	turns := runChatCaptured(t, "", "--model", dir, "--script", script, "--temperature", "0", "-n", "24", "--json")
	if len(turns) != 2 {
		t.Fatalf("turns %+v", turns)
	}
	for _, turn := range turns {
		if turn.Tokens == 0 || strings.Contains(turn.Assistant, "User:") {
			t.Errorf("turn %d: %d tokens, answer %q", turn.Turn, turn.Tokens, turn.Assistant)
		}
	}
	js, err := captureStdout(t, func() error {
		return dispatch([]string{"generate", "--model", dir, "--chat", "--system", "Tell a story.", "--prompt", "Who is Lily?",
			"--temperature", "0", "-n", "8", "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var out generateOutput
	if err := json.Unmarshal([]byte(js), &out); err != nil {
		t.Fatal(err)
	}
	if out.Prompt != "User: Tell a story.\n\nWho is Lily?\nAssistant:" {
		t.Errorf("generate --chat prompt %q", out.Prompt)
	}
}

// writeTemplateModel writes personaTestModel (same weights and config.json for the same seed)
// with the given chat template in tokenizer_config.json.
func writeTemplateModel(t *testing.T, template string) string {
	t.Helper()
	dir := writePersonaTestModel(t)
	testmodels.SetChatTemplate(t, dir, template)
	return dir
}

// TestGenerateWithBrokenTemplate: a chat template that does not parse does not stop plain
// generation; generate --chat fails with an error naming the template's file.
func TestGenerateWithBrokenTemplate(t *testing.T) {
	dir := writeTemplateModel(t, "{% for m in messages %}{{ m.content }")
	if _, err := captureStdout(t, func() error {
		return dispatch([]string{"generate", "--model", dir, "--prompt", "hello", "-n", "3", "--json"})
	}); err != nil {
		t.Fatalf("plain generation with a broken chat template: %v", err)
	}
	_, err := captureStdout(t, func() error {
		return dispatch([]string{"generate", "--model", dir, "--chat", "--prompt", "hello", "-n", "3", "--json"})
	})
	if want := filepath.Join(dir, "tokenizer_config.json"); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("generate --chat with a broken template: %v, want an error naming %s", err, want)
	}
}

// TestPersonaRunRecordsRendering: persona run records how it rendered (and the {model_name} it
// used) in run.json, axis build copies that into the axis file, and project with a model that
// renders otherwise (another template, same config.json) warns naming both renderings.
func TestPersonaRunRecordsRendering(t *testing.T) {
	dir := writePersonaTestModel(t)
	tmp := t.TempDir()
	run := filepath.Join(tmp, "run")
	if err := dispatch([]string{"persona", "run", "--model", dir, "--out", run, "--roles-limit", "3", "--prompts-limit", "4",
		"--questions-limit", "1", "--max-tokens", "3", "--batch", "8", "--model-name", "Aria"}); err != nil {
		t.Fatal(err)
	}
	r, err := probe.OpenRun(run)
	if err != nil {
		t.Fatal(err)
	}
	rend := r.Manifest().Rendering
	if rend == nil || rend.ModelName != "Aria" || rend.Format != model.FormatTemplate || rend.FoldMode != model.FoldNone ||
		rend.SystemFolded || rend.TemplateSHA256 == "" {
		t.Fatalf("run.json rendering %+v", rend)
	}
	named := 0
	for _, ro := range r.Rollouts() {
		if strings.Contains(ro.System, "{model_name}") {
			t.Fatalf("rollout %s: system prompt %q keeps the placeholder", ro.ID, ro.System)
		}
		if strings.Contains(ro.System, "You are Aria,") {
			named++
		}
	}
	if named == 0 {
		t.Fatal("no rollout's system prompt names the --model-name")
	}
	// Resuming with another name is refused.
	err = dispatch([]string{"persona", "run", "--model", dir, "--out", run, "--roles-limit", "3", "--prompts-limit", "4",
		"--questions-limit", "1", "--max-tokens", "3", "--batch", "8"})
	if err == nil || !strings.Contains(err.Error(), "--model-name") {
		t.Fatalf("resume with another model name: %v", err)
	}

	axisPath := filepath.Join(tmp, "axis.safetensors")
	if _, err := captureStdout(t, func() error { return dispatch([]string{"axis", "build", "--run", run, "--out", axisPath}) }); err != nil {
		t.Fatal(err)
	}
	a, err := axis.Read(axisPath)
	if err != nil {
		t.Fatal(err)
	}
	fromAxis, err := model.ParseRendering(a.Extra[axis.RenderingKey], "axis")
	if err != nil || !fromAxis.Equal(rend.Rendering) {
		t.Fatalf("axis rendering %+v, %v; run.json %+v", fromAxis, err, rend.Rendering)
	}

	conv := filepath.Join(tmp, "conv.json")
	if err := os.WriteFile(conv, []byte(`[{"role":"user","content":"hi"},{"role":"assistant","content":"hello there"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	project := func(modelDir string) string {
		t.Helper()
		var warnings bytes.Buffer
		old := warnOut
		warnOut = &warnings
		defer func() { warnOut = old }()
		if _, err := captureStdout(t, func() error {
			return dispatch([]string{"project", "--model", modelDir, "--axis", axisPath, "--conversation", conv})
		}); err != nil {
			t.Fatal(err)
		}
		return warnings.String()
	}
	if w := project(dir); w != "" {
		t.Errorf("same rendering: warning %q", w)
	}
	other := writeTemplateModel(t, "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"+
		"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"+
		"{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
	w := project(other)
	if !strings.Contains(w, "warning") || !strings.Contains(w, "system prompt rendered by the template") ||
		!strings.Contains(w, "raises on a system message") {
		t.Errorf("other rendering: warning %q, want one naming both renderings", w)
	}
}
