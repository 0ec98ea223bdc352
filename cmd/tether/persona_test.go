package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/probe"
	"tether/tokenizer"
	"tether/weights"
)

// personaTestConfig is a tiny random chat model for the persona command tests.
const personaTestConfig = `{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
  "max_position_embeddings": 1024, "rms_norm_eps": 1e-5, "rope_theta": 10000,
  "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 298, "eos_token_id": 299
}`

func writePersonaTestModel(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := weights.WriteRandomModel(dir, []byte(personaTestConfig), 2, weights.F32); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.WriteTestTokenizer(dir, 300); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPersonaRun: the command runs a small built-in subset, a second call resumes with nothing
// left to do, and bad input is reported.
func TestPersonaRun(t *testing.T) {
	model := writePersonaTestModel(t)
	out := filepath.Join(t.TempDir(), "run")
	args := []string{"persona", "run", "--model", model, "--out", out, "--roles-limit", "2", "--prompts-limit", "1",
		"--questions-limit", "2", "--max-tokens", "4", "--batch", "3", "--judge", "self"}
	if err := dispatch(args); err != nil {
		t.Fatal(err)
	}
	run, err := probe.OpenRun(out)
	if err != nil {
		t.Fatal(err)
	}
	// (1 default prompt + 2 roles x 1 prompt) x 2 questions.
	if n := len(run.Rollouts()); n != 6 || run.Manifest().Settings.Judge != "self" || run.Manifest().Dataset.Roles != 2 {
		t.Fatalf("%d rollouts, manifest %+v", n, run.Manifest())
	}
	if err := dispatch(args); err != nil {
		t.Fatalf("resume of a finished run: %v", err)
	}
	if again, _ := probe.OpenRun(out); len(again.Rollouts()) != 6 {
		t.Fatalf("resume changed the run: %d rollouts", len(again.Rollouts()))
	}

	badQuestions := filepath.Join(t.TempDir(), "q.jsonl")
	os.WriteFile(badQuestions, []byte("{\"question\": \"ok\", \"id\": 1}\n{\"question\": \"\"}\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown judge", []string{"--out", filepath.Join(t.TempDir(), "r"), "--judge", "no-such-org/no-such-judge"}, "no-such-judge"},
		{"bad questions line", []string{"--out", filepath.Join(t.TempDir(), "r"), "--questions", badQuestions}, "line 2"},
		{"other settings on resume", []string{"--out", out, "--max-tokens", "5"}, "other settings"},
		{"missing out", nil, "--out is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HF_HUB_CACHE", t.TempDir())
			a := append([]string{"persona", "run", "--model", model, "--roles-limit", "2", "--prompts-limit", "1",
				"--questions-limit", "2", "--max-tokens", "4", "--batch", "3"}, tc.args...)
			err := dispatch(a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
