package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/probe"
)

// personaTestModel is a tiny random chat model for the persona command tests.
var personaTestModel = testmodels.Llama{Hidden: 32, Intermediate: 64, Layers: 2, Heads: 4, KVHeads: 2, Vocab: 300,
	MaxPositions: 1024, BOS: 298, EOS: 299}

// writePersonaTestModel writes personaTestModel (seed 2, test tokenizer) into a temporary directory.
func writePersonaTestModel(t *testing.T) string {
	t.Helper()
	return testmodels.Write(t, t.TempDir(), personaTestModel, 2)
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
