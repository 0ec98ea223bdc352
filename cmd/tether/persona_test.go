package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// captureJobOut runs f with jobOut replaced and returns what was printed there.
func captureJobOut(t *testing.T, f func() error) string {
	t.Helper()
	var buf bytes.Buffer
	old := jobOut
	jobOut = &buf
	defer func() { jobOut = old }()
	if err := f(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestPersonaRunSaysWhatItWillCost: before starting, a run prints the rollouts to run (roles x
// prompts x questions x samples, less those a resumed run already has) and the most new tokens
// they can take (max tokens each); after the first batch, a time estimate for the rest.
func TestPersonaRunSaysWhatItWillCost(t *testing.T) {
	model := writePersonaTestModel(t)
	out := filepath.Join(t.TempDir(), "run")
	const roles, prompts, questions, samples, maxTokens, batch = 2, 1, 2, 2, 4, 3
	args := []string{"persona", "run", "--model", model, "--out", out, "--roles-limit", fmt.Sprint(roles),
		"--prompts-limit", fmt.Sprint(prompts), "--questions-limit", fmt.Sprint(questions), "--samples", fmt.Sprint(samples),
		"--max-tokens", fmt.Sprint(maxTokens), "--batch", fmt.Sprint(batch)}
	// The default role counts as one more role with its own prompts.
	total := (1 + roles) * prompts * questions * samples
	planRe := regexp.MustCompile(`persona run: (\d+) rollouts to run of (\d+) \((\d+) already done\); at most (\d+) new tokens to generate`)
	etaRe := regexp.MustCompile(`persona run: (\d+) rollouts in \S+; at that rate the other (\d+) take about \S+`)
	check := func(printed string, done, firstBatch int) {
		t.Helper()
		m := planRe.FindStringSubmatch(printed)
		if m == nil {
			t.Fatalf("no plan line in %q", printed)
		}
		want := []string{fmt.Sprint(total - done), fmt.Sprint(total), fmt.Sprint(done), fmt.Sprint((total - done) * maxTokens)}
		if !slices.Equal(m[1:], want) {
			t.Fatalf("plan %q, want to run, total, done, tokens = %v", m[0], want)
		}
		e := etaRe.FindStringSubmatch(printed)
		if e == nil || e[1] != fmt.Sprint(firstBatch) || e[2] != fmt.Sprint(total-done-firstBatch) {
			t.Fatalf("time estimate %q, want %d rollouts done and %d to go", e, firstBatch, total-done-firstBatch)
		}
		if strings.Index(printed, m[0]) > strings.Index(printed, e[0]) {
			t.Fatalf("the estimate comes before the plan: %q", printed)
		}
	}
	check(captureJobOut(t, func() error { return dispatch(args) }), 0, batch)

	// Keep 5 lines: the second batch (rollouts 3..5) misses one, which the resumed run's first
	// batch completes.
	path := filepath.Join(out, probe.RolloutsFileName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(path, bytes.Join(lines[:5], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	check(captureJobOut(t, func() error { return dispatch(args) }), 5, 1)
}
