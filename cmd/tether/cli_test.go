package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"tether/bench"
	"tether/bundled"
	"tether/tokenizer"
)

// captureOutput runs f with os.Stdout and os.Stderr redirected and returns
// what it wrote to each.
func captureOutput(t *testing.T, f func() error) (stdout, stderr string, err error) {
	t.Helper()
	stderrR, stderrW, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	old := os.Stderr
	os.Stderr = stderrW
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(stderrR); done <- b }()
	stdout, err = captureStdout(t, f)
	stderrW.Close()
	os.Stderr = old
	return stdout, string(<-done), err
}

// TestFlagRanges runs commands through dispatch with numeric flags outside
// their valid range: each is refused before any model is opened, as a usage
// error (exit status 2) naming the command, the flag, the value and the
// range. Values on the edge of each range are accepted (the command then
// fails to open the missing model instead).
func TestFlagRanges(t *testing.T) {
	scs, err := bench.BuiltinScenarios()
	if err != nil {
		t.Fatal(err)
	}
	shortest := len(scs[0].UserTurns)
	for _, s := range scs {
		shortest = min(shortest, len(s.UserTurns))
	}
	dir := t.TempDir()
	noModel := filepath.Join(dir, "no-such-model")
	gen := []string{"generate", "--model", noModel}
	drift := []string{"bench", "drift", "--model", noModel, "--axis", "a", "--cap-layers", "1", "--out", filepath.Join(dir, "drift")}
	persona := []string{"persona", "run", "--model", noModel, "--out", filepath.Join(dir, "run")}
	tests := []struct {
		args []string
		want []string // in the error, besides the value's "--flag V"
	}{
		{append(gen, "--top-p", "0"), []string{"generate:", "0 < x <= 1", "1 = off"}},
		{append(gen, "--top-p", "1.5"), []string{"0 < x <= 1"}},
		{append(gen, "--repetition-penalty", "0"), []string{"> 0", "1 = off"}},
		{append(gen, "--repetition-penalty", "-1"), []string{"> 0"}},
		{append(gen, "--temperature", "-0.5"), []string{">= 0", "0 = greedy"}},
		{append(gen, "--temperature", "NaN"), []string{"finite number >= 0"}},
		{append(gen, "--temperature", "+Inf"), []string{"finite number >= 0"}},
		{append(gen, "--top-k", "-1"), []string{"integer >= 0"}},
		{append(gen, "--min-p", "1"), []string{"0 <= x < 1"}},
		{append(gen, "--min-p", "-0.1"), []string{"0 <= x < 1"}},
		{append(gen, "-n", "0"), []string{"--max-tokens 0", "integer >= 1"}},
		{append(gen, "--measure-layer", "-2"), []string{"integer >= 0"}},
		{append(gen, "--cap-percentile", "101"), []string{"0 <= x <= 100"}},
		{append(gen, "--steer-coef", "+Inf"), []string{"a finite number"}},
		{[]string{"chat", "--model", noModel, "--top-p", "0"}, []string{"chat:", "0 < x <= 1"}},
		{append(persona, "--roles-limit", "-3"), []string{"persona run:", "integer >= 0", "0 = all"}},
		{append(persona, "--prompts-limit", "-1"), []string{"integer >= 0"}},
		{append(persona, "--questions-limit", "-1"), []string{"integer >= 0"}},
		{append(persona, "--samples", "0"), []string{"integer >= 1"}},
		{append(persona, "--batch", "0"), []string{"integer >= 1"}},
		{append(persona, "--max-tokens", "-5"), []string{"integer >= 1"}},
		{append(drift, "--seeds", "0"), []string{"bench drift:", "integer >= 1"}},
		{append(drift, "--turns", "-1"), []string{"integer >= 0"}},
		{append(drift, "--turns", fmt.Sprint(shortest+42)), []string{fmt.Sprintf("0 <= x <= %d (0 = every scripted turn; scenario", shortest), fmt.Sprintf("scripts %d user turns; --simulated-user writes more", shortest)}},
		{append(drift, "--max-tokens", "0"), []string{"integer >= 1"}},
		{append(drift, "--temperature", "-1"), []string{">= 0"}},
		{append(drift, "--top-p", "0"), []string{"0 < x <= 1"}},
		{append(drift, "--scenarios-limit", "-2"), []string{"integer >= 0"}},
		{append(drift, "--projection-layer", "-1"), []string{"integer >= 0"}},
		{[]string{"bench", "perf", "--model", noModel, "--prefill", "0"}, []string{"bench perf:", "integer >= 1"}},
		{[]string{"bench", "perf", "--model", noModel, "--decode", "-1"}, []string{"integer >= 1"}},
		{[]string{"bench", "perf", "--model", noModel, "--repeats", "0"}, []string{"integer >= 1"}},
		{[]string{"bench", "steer", "--model", noModel, "--prompt", "0"}, []string{"bench steer:", "integer >= 1"}},
		{[]string{"bench", "persona", "--model", noModel, "--batches", "1,0"}, []string{"bench persona:", "--batches 0", "integer >= 1"}},
		{[]string{"axis", "build", "--run", dir, "--out", "a.safetensors", "--min-score", "4"}, []string{"axis build:", "0 <= x <= 3"}},
		{[]string{"axis", "build", "--run", dir, "--out", "a.safetensors", "--layer", "-1"}, []string{"integer >= 0"}},
		{[]string{"axis", "inspect", "a.safetensors", "--top", "0"}, []string{"axis inspect:", "integer >= 1"}},
		{[]string{"axis", "export-gguf", "--axis", "a", "--out", "b.gguf", "--scale", "NaN"}, []string{"axis export-gguf:", "a finite number"}},
		{[]string{"project", "--model", noModel, "--axis", "a", "--conversation", "c", "--layer", "-3"}, []string{"project:", "integer >= 0"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := captureOutput(t, func() error { return dispatch(tc.args) })
			if err == nil {
				t.Fatal("accepted")
			}
			flag, value := tc.args[len(tc.args)-2], tc.args[len(tc.args)-1]
			if flag == "-n" {
				flag = "--max-tokens"
			}
			want := append([]string{flag + " " + value, "out of range: expected"}, tc.want...)
			if flag == "--batches" {
				want = want[1:]
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if code := exitStatus(err, io.Discard); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
		})
	}
	// The edges of every sampling range are valid: generate gets as far as
	// opening the (missing) model.
	edges := append(gen, "--top-p", "1", "--min-p", "0", "--repetition-penalty", "1", "--temperature", "0", "--top-k", "0", "-n", "1",
		"--cap-percentile", "0", "--measure-layer", "0")
	_, _, err = captureOutput(t, func() error { return dispatch(edges) })
	if err == nil || strings.Contains(err.Error(), "out of range") || !strings.Contains(err.Error(), "no-such-model") {
		t.Fatalf("edge values: error %v, want the missing model's", err)
	}
	if code := exitStatus(err, io.Discard); code != 1 {
		t.Errorf("missing model: exit status %d, want 1", code)
	}
}

// flagLine matches a flag line of --help: the flag, then its value's type
// name (pflag takes a `quoted` word of the usage string as that name).
var flagLine = regexp.MustCompile(`^\s+(?:-\w, )?--([\w-]+)(?:\[=[^\]]*\])? ?(.*?)\s{2,}`)

// TestHelp: every command's --help, and `tether help CMD`, print the same
// usage on stdout with an example, exit 0, and name each flag's value by a
// pflag type; bare tether prints the list on stderr and exits 2.
func TestHelp(t *testing.T) {
	types := []string{"", "string", "int", "uint", "float", "stringArray", "ints", "strings"}
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			args := append(strings.Fields(name), "--help")
			out, errOut, err := captureOutput(t, func() error { return dispatch(args) })
			if !errors.Is(err, pflag.ErrHelp) || exitStatus(err, io.Discard) != 0 {
				t.Fatalf("--help: error %v", err)
			}
			if errOut != "" || !strings.HasPrefix(out, "Usage: tether "+name+" ") || !regexp.MustCompile(`\nExample:\n  .*tether `+name).MatchString(out) {
				t.Fatalf("--help wrote stdout %q, stderr %q", out, errOut)
			}
			for _, line := range strings.Split(out, "\n") {
				if m := flagLine.FindStringSubmatch(line); m != nil && !slices.Contains(types, m[2]) {
					t.Errorf("flag --%s shows %q as its type: %q", m[1], m[2], line)
				}
			}
			again, _, err := captureOutput(t, func() error { return dispatch(append([]string{"help"}, strings.Fields(name)...)) })
			if !errors.Is(err, pflag.ErrHelp) || again != out {
				t.Fatalf("help %s: error %v, output %q", name, err, again)
			}
		})
	}
	out, errOut, err := captureOutput(t, func() error { return dispatch(nil) })
	if exitStatus(err, io.Discard) != 2 || out != "" || !strings.Contains(errOut, "Usage: tether <command>") {
		t.Fatalf("bare tether: error %v, stdout %q, stderr %q", err, out, errOut)
	}
	out, _, err = captureOutput(t, func() error { return dispatch([]string{"help"}) })
	if err != nil || !strings.Contains(out, "  generate ") {
		t.Fatalf("tether help: error %v, stdout %q", err, out)
	}
	for _, args := range [][]string{{"nosuchcommand"}, {"bench"}, {"generate", "--no-such-flag"}, {"generate", "stray"}, {"generate"}} {
		_, _, err := captureOutput(t, func() error { return dispatch(args) })
		if exitStatus(err, io.Discard) != 2 {
			t.Errorf("%v: error %v, want a usage error (exit status 2)", args, err)
		}
	}
}

// TestVersion: both spellings print the build's version line; the line
// carries the VCS revision and state when the build has them.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		out, _, err := captureOutput(t, func() error { return dispatch([]string{arg}) })
		if err != nil || !strings.HasPrefix(out, "tether ") {
			t.Fatalf("%s: %q, %v", arg, out, err)
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "tether", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-30T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	if got, want := formatVersion(bi), "tether (devel) revision abc123+modified (2026-11-30T12:00:00Z), go1.26.8"; got != want {
		t.Fatalf("formatVersion = %q, want %q", got, want)
	}
}

// TestOutputsCheckedFirst: an output path that cannot be written is refused
// before the model is opened (the model here does not exist), naming the
// flag, the path and what was expected.
func TestOutputsCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	noModel := filepath.Join(dir, "no-such-model")
	blocked := filepath.Join(file, "t.jsonl") // its directory is a file
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"generate", "--model", noModel, "--telemetry", blocked}, "--telemetry " + blocked + ": cannot create directory " + file},
		{[]string{"chat", "--model", noModel, "--telemetry", blocked}, "--telemetry " + blocked},
		{[]string{"axis", "build", "--run", dir, "--out", dir}, "--out " + dir + " is a directory; expected a file path such as " + filepath.Join(dir, "axis.safetensors")},
		{[]string{"axis", "export-gguf", "--axis", "a", "--out", dir}, "--out " + dir + " is a directory; expected a file path"},
		{[]string{"persona", "run", "--model", noModel, "--out", file}, "--out " + file + " is a file; expected a directory"},
		{[]string{"bench", "drift", "--model", noModel, "--axis", "a", "--cap-layers", "1", "--out", blocked}, "--out " + blocked},
		{[]string{"testmodel", "--config", "c.json", "--out", file}, "is a file; expected a directory"},
		{[]string{"convert", "llama2c", "--model", "m", "--tokenizer", "t", "--out", blocked}, "--out " + blocked},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args[:2], " "), func(t *testing.T) {
			_, _, err := captureOutput(t, func() error { return dispatch(tc.args) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestGenerateContinuesThePrompt: on the real stories260K model, the
// streamed text and --json's text are both what the generated ids add to
// the decoded prompt; when the first generated token starts a word (its
// SentencePiece piece begins with U+2581), the text begins with a space.
func TestGenerateContinuesThePrompt(t *testing.T) {
	dir := t.TempDir()
	ckpt, tok, err := bundled.ExtractStories260K(filepath.Join(dir, "llama2c"))
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "stories260K")
	if err := convertLlama2c(ckpt, tok, model); err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.LoadDir(model)
	if err != nil {
		t.Fatal(err)
	}
	words := 0
	for _, prompt := range []string{"The cat", "Once upon a time there was a", "Tom had a red ball"} {
		args := []string{"--model", model, "--prompt", prompt, "-n", "8", "--temperature", "0"}
		streamed, _, err := captureOutput(t, func() error { return runGenerate(args) })
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := captureOutput(t, func() error { return runGenerate(append(args, "--json")) })
		if err != nil {
			t.Fatal(err)
		}
		var g generateOutput
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			t.Fatal(err)
		}
		head, _ := tk.Decode(g.PromptIDs, true)
		whole, _ := tk.Decode(append(append([]int(nil), g.PromptIDs...), g.IDs...), true)
		want := strings.TrimPrefix(whole, head)
		if g.Text != want || streamed != want+"\n" {
			t.Fatalf("prompt %q: --json text %q, streamed %q; Decode(prompt+generated) minus Decode(prompt) is %q", prompt, g.Text, streamed, want)
		}
		if first, _ := tk.Token(g.IDs[0]); strings.HasPrefix(first, "\u2581") {
			words++
			if !strings.HasPrefix(g.Text, " ") {
				t.Fatalf("prompt %q: first generated piece %q starts a word but the text %q has no leading space", prompt, first, g.Text)
			}
		}
	}
	if words == 0 {
		t.Fatal("no prompt's continuation started with a new word: the test checked nothing about the seam")
	}
}

// TestEveryNumericFlagHasARange: every int or float flag of every command
// (as its --help lists them) refuses an absurd value as out of range, so a
// numeric flag added without a declared range fails here. (Seeds are uint:
// pflag itself refuses a negative one.)
func TestEveryNumericFlagHasARange(t *testing.T) {
	absurd := map[string]string{"int": "-999999", "ints": "-999999", "float": "NaN"}
	checked := 0
	for name := range commands {
		out, _, _ := captureOutput(t, func() error { return dispatch(append(strings.Fields(name), "--help")) })
		for _, line := range strings.Split(out, "\n") {
			m := flagLine.FindStringSubmatch(line)
			if m == nil || absurd[m[2]] == "" {
				continue
			}
			args := append(strings.Fields(name), "--"+m[1], absurd[m[2]])
			_, _, err := captureOutput(t, func() error { return dispatch(args) })
			if err == nil || !strings.Contains(err.Error(), "--"+m[1]+" ") || !strings.Contains(err.Error(), "out of range") || exitStatus(err, io.Discard) != 2 {
				t.Errorf("tether %s: error %v, want a usage error: out of range", strings.Join(args, " "), err)
			}
			checked++
		}
	}
	if checked < 40 {
		t.Fatalf("only %d numeric flags found in the commands' --help", checked)
	}
}

// TestFlagCombinationExitStatus: flags that do not go together are usage
// errors (exit status 2); a well-formed command line whose work fails (an
// uncalibrated percentile of the axis file) exits 1.
func TestFlagCombinationExitStatus(t *testing.T) {
	f := newSteerFixture(t)
	gen := []string{"generate", "--model", f.model, "--prompt", "x", "-n", "2", "--json"}
	tests := []struct {
		args []string
		code int
	}{
		{append(gen, "--cap-tau", "1"), 2},
		{append(gen, "--steer-layers", "1"), 2},
		{append(gen, "--cap-layers", "1:3", "--cap-tau", "1"), 2},
		{append(gen, "--axis", f.axis, "--cap-layers", "1", "--cap-tau", "1", "--cap-percentile", "25"), 2},
		{append(gen, "--ablate-value", "1"), 2},
		{[]string{"tokenize", "--model", f.model, "--tokenizer", "t.json"}, 2},
		{[]string{"tokenize"}, 2},
		{[]string{"testmodel", "--config", "c.json", "--out", t.TempDir(), "--dtype", "f8"}, 2},
		{[]string{"bench", "drift", "--model", f.model, "--axis", f.axis, "--cap-layers", "1", "--out", t.TempDir(), "--steer", f.gguf}, 2},
		{append(gen, "--axis", f.axis, "--cap-layers", "1:3", "--cap-percentile", "10"), 1},
		{append(gen, "--weights-dtype", "f8"), 2},
		{append(gen, "--cache-dtype", "f8"), 2},
		{append(gen, "--backend", "go", "--cache-dtype", "bf16"), 1},
		{[]string{"bench", "perf", "--model", f.model, "--weights-dtype", "f32,q4"}, 2},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, _, err := captureOutput(t, func() error { return dispatch(tc.args) })
			if code := exitStatus(err, io.Discard); code != tc.code {
				t.Fatalf("error %v: exit status %d, want %d", err, code, tc.code)
			}
		})
	}
}
