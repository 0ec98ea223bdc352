package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runChatCaptured runs `tether chat` with the given stdin and returns the
// JSON objects it printed, one per answer.
func runChatCaptured(t *testing.T, stdin string, args ...string) []chatTurnOutput {
	t.Helper()
	var out bytes.Buffer
	oldIn, oldOut := chatStdin, chatStdout
	chatStdin, chatStdout = strings.NewReader(stdin), &out
	defer func() { chatStdin, chatStdout = oldIn, oldOut }()
	if err := runChat(args); err != nil {
		t.Fatalf("chat %v: %v", args, err)
	}
	var turns []chatTurnOutput
	dec := json.NewDecoder(&out)
	for dec.More() {
		var turn chatTurnOutput
		if err := dec.Decode(&turn); err != nil {
			t.Fatalf("chat output: %v", err)
		}
		turns = append(turns, turn)
	}
	return turns
}

func writeScript(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChatScript(t *testing.T) {
	f := newSteerFixture(t)
	common := []string{"--model", f.model, "--temperature", "0", "-n", "6", "--json",
		"--axis", f.axis, "--cap-layers", "1:4", "--cap-tau", "5"}
	script := writeScript(t, f.dir, "conv.json", `[
	  {"role": "system", "content": "You are a helpful assistant."},
	  {"role": "user", "content": "hello"},
	  {"role": "assistant", "content": "an old answer that is regenerated"},
	  {"role": "user", "content": "tell me more"}]`)
	tel := filepath.Join(f.dir, "chat.jsonl")
	turns := runChatCaptured(t, "", append(common, "--script", script, "--telemetry", tel)...)
	if len(turns) != 2 || turns[0].User != "hello" || turns[1].User != "tell me more" || turns[1].Turn != 1 {
		t.Fatalf("turns %+v", turns)
	}
	for _, turn := range turns {
		s := turn.Steering
		if s == nil || s.Layer != 2 || s.Tokens != turn.Tokens || (turn.Tokens > 0 && s.CappedFraction != 1) {
			t.Fatalf("turn %d summary %+v for %d tokens", turn.Turn, s, turn.Tokens)
		}
	}
	recs := readTelemetry(t, tel)
	if len(recs) != 3*(turns[0].Tokens+turns[1].Tokens) {
		t.Fatalf("%d telemetry lines for %d+%d tokens x 3 layers", len(recs), turns[0].Tokens, turns[1].Tokens)
	}
	if turns[1].Tokens > 0 && recs[len(recs)-1]["turn"].(float64) != 1 {
		t.Fatalf("last telemetry line %v should belong to turn 1", recs[len(recs)-1])
	}
	// The script's assistant text is not used: another one gives the same run.
	script2 := writeScript(t, f.dir, "conv2.json", `{"messages": [
	  {"role": "system", "content": "You are a helpful assistant."},
	  {"role": "user", "content": "hello"},
	  {"role": "assistant", "content": "something else entirely"},
	  {"role": "user", "content": "tell me more"}]}`)
	again := runChatCaptured(t, "", append(common, "--script", script2)...)
	if len(again) != 2 || again[1].Assistant != turns[1].Assistant || again[0].Assistant != turns[0].Assistant {
		t.Fatalf("replay depends on the script's assistant turns: %+v vs %+v", again, turns)
	}
}

func TestChatInteractive(t *testing.T) {
	f := newSteerFixture(t)
	args := []string{"--model", f.model, "--temperature", "0", "-n", "6", "--json", "--axis", f.axis}
	turns := runChatCaptured(t, "hello\n\n/reset\nhello\nmore\n/exit\nnever read\n", args...)
	if len(turns) != 3 {
		t.Fatalf("%d answers, want 3 (the empty line is skipped, /exit ends): %+v", len(turns), turns)
	}
	if turns[0].Assistant != turns[1].Assistant {
		t.Fatalf("after /reset the same question got another answer: %q vs %q", turns[0].Assistant, turns[1].Assistant)
	}
	if turns[0].Steering == nil || turns[0].Steering.Layer != 2 {
		t.Fatalf("summary %+v, want the axis file's axis_layer 2", turns[0].Steering)
	}
	// Text mode prints each answer and its summary line.
	var out bytes.Buffer
	oldIn, oldOut := chatStdin, chatStdout
	chatStdin, chatStdout = strings.NewReader("hi\n"), &out
	defer func() { chatStdin, chatStdout = oldIn, oldOut }()
	if err := runChat([]string{"--model", f.model, "--temperature", "0", "-n", "4", "--axis", f.axis, "--cap-layers", "3", "--cap-tau", "9"}); err != nil {
		t.Fatal(err)
	}
	// The projection is reported at the axis file's axis_layer 2, not at the capped layer 3
	// (steer.DefaultMeasureLayer); the cap at layer 3 still acts on every token.
	if !strings.Contains(out.String(), "[axis projection at layer 2: mean") || !strings.Contains(out.String(), "cap acted on 4 of 4 tokens") {
		t.Fatalf("text output lacks the projection summary: %q", out.String())
	}
}

func TestChatScriptErrors(t *testing.T) {
	f := newSteerFixture(t)
	tests := []struct{ content, want string }{
		{`not json`, "expected a JSON list"},
		{`[{"role": "system", "content": "x"}]`, "no user message"},
		{`[{"role": "tool", "content": "x"}]`, "role \"tool\""},
	}
	for _, tc := range tests {
		p := writeScript(t, f.dir, "bad.json", tc.content)
		err := runChat([]string{"--model", f.model, "--script", p})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("script %s: error %v, want one containing %q", tc.content, err, tc.want)
		}
	}
}
