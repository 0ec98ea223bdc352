package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/axis"
	"tether/bench"
	"tether/consistency"
)

// writeDriftTestAxis writes an axis for the persona test model (2 layers,
// hidden 32): a random unit direction per layer, tau 0.25 at percentile 25,
// axis_layer 1.
func writeDriftTestAxis(t *testing.T) string {
	t.Helper()
	const L, H = 2, 32
	rng := rand.New(rand.NewPCG(5, 6))
	mat := func(random bool) [][]float32 {
		m := make([][]float32, L)
		for l := range m {
			m[l] = make([]float32, H)
			if random {
				for i := range m[l] {
					m[l][i] = float32(rng.NormFloat64())
				}
			}
		}
		return m
	}
	ax := &axis.Axis{Model: "tiny", Layers: L, Hidden: H, Axis: mat(true), DefaultMean: mat(false),
		RoleNames: []string{"r"}, RoleMeans: [][][]float32{mat(false)},
		Percentiles: []float64{25}, Tau: [][]float32{{0.25, 0.25}}, Extra: map[string]string{"axis_layer": "1"}}
	path := filepath.Join(t.TempDir(), "axis.safetensors")
	if err := axis.Write(path, ax); err != nil {
		t.Fatal(err)
	}
	return path
}

// readDriftReport reads OUT/report.json of a drift run.
func readDriftReport(t *testing.T, out string) bench.DriftReport {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.DriftReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestBenchDrift: the command runs a small subset of the built-in scenarios
// with a judge, takes its cap threshold from the axis file's percentile, a
// second call resumes with nothing left to do, and bad input is reported.
func TestBenchDrift(t *testing.T) {
	model := writePersonaTestModel(t)
	ax := writeDriftTestAxis(t)
	out := filepath.Join(t.TempDir(), "drift")
	base := []string{"bench", "drift", "--model", model, "--axis", ax, "--cap-layers", "1", "--cap-percentile", "25",
		"--seeds", "2", "--turns", "2", "--max-tokens", "4", "--domains", "coding,emotional", "--scenarios-limit", "1"}
	args := append(append([]string(nil), base...), "--out", out, "--judge", "self")
	printed := captureJobOut(t, func() error { return dispatch(args) })
	// 2 scenarios x 2 arms x 2 seeds, each of 2 assistant turns and 2 x 3 diagnostic answers
	// (after turns 0 and 1) of at most 4 tokens; a group (one scenario and arm, all seeds) runs
	// first.
	for _, want := range []string{
		"bench drift: 8 conversations to run of 8 (0 already done); at most 256 new tokens to generate",
		"bench drift: 2 conversations in ",
		"; at that rate the other 6 take about ",
	} {
		if !strings.Contains(printed, want) {
			t.Fatalf("printed %q, want %q in it", printed, want)
		}
	}
	rep := readDriftReport(t, out)
	// 2 scenarios (one per domain) x 2 arms x 2 seeds x 2 turns.
	if len(rep.Turns) != 16 || len(rep.Scenarios) != 2 {
		t.Fatalf("%d turns, %d scenarios", len(rep.Turns), len(rep.Scenarios))
	}
	s := rep.Settings
	if s.CapPercentile != 25 || len(s.CapTaus) != 1 || s.CapTaus[0] != 0.25 || s.ProjectionLayer != 1 || s.Judge != "self" {
		t.Fatalf("settings %+v", s)
	}
	// Every turn's line is judged against the prompt; with 2 turns the diagnostic questions
	// are asked after turns 0 and 1 (first, middle = 0, last). Per arm, 2 scenarios x 2 seeds
	// = 4 conversations, each with 2 prompt-to-line, 1 line-to-line and, per question, 2
	// answers against the prompt and 1 against the earlier answer.
	nq := len(s.DiagnosticQuestions)
	for _, rec := range rep.Turns {
		if len(rec.Consistency) == 0 || len(rec.Diagnostics) != nq {
			t.Fatalf("turn %d: %d judgements, %d diagnostic answers (want %d)", rec.Turn, len(rec.Consistency), len(rec.Diagnostics), nq)
		}
	}
	if rep.Consistency == nil || len(rep.Consistency.Overall) != 6 {
		t.Fatalf("consistency summary %+v", rep.Consistency)
	}
	want := map[string]int{consistency.PromptToLine: 8, consistency.LineToLine: 4, consistency.QA: 4 * 3 * nq}
	for _, c := range rep.Consistency.Overall {
		if c.N+c.Unparseable != want[c.Metric] {
			t.Errorf("%s %s: %d parseable + %d unparseable judgements, want %d", c.Arm, c.Metric, c.N, c.Unparseable, want[c.Metric])
		}
	}
	if rep.Capability == nil || rep.Capability.PerplexityUncapped <= 0 {
		t.Fatalf("capability %+v", rep.Capability)
	}
	// Capped at the projection layer: every capped turn's projection >= tau.
	for _, rec := range rep.Turns {
		if rec.Arm == bench.ArmCapped && rec.Projection < 0.25-1e-4 {
			t.Fatalf("capped projection %g below tau 0.25", rec.Projection)
		}
	}
	var resumeErr error
	printed = captureJobOut(t, func() error { resumeErr = dispatch(args); return nil })
	if resumeErr != nil {
		t.Fatalf("resume of a finished run: %v", resumeErr)
	}
	if want := "bench drift: 0 conversations to run of 8 (8 already done); at most 0 new tokens to generate"; !strings.Contains(printed, want) {
		t.Fatalf("resume printed %q, want %q in it", printed, want)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"steering flag", []string{"--out", filepath.Join(t.TempDir(), "r"), "--ablate", "1"}, "not a drift benchmark option"},
		{"other settings on resume", []string{"--out", out, "--judge", "self", "--max-tokens", "5"}, "settings"},
		{"judge prompts without judge", []string{"--out", filepath.Join(t.TempDir(), "r"), "--judge-prompts", t.TempDir()}, "need --judge"},
		{"missing judge prompts", []string{"--out", filepath.Join(t.TempDir(), "r"), "--judge", "self", "--judge-prompts", "/no/such/prompts"}, "/no/such/prompts"},
		{"negative Q&A turn", []string{"--out", filepath.Join(t.TempDir(), "r"), "--judge", "self", "--qa-turns", "-1"}, "out of range"},
		{"unknown domain", []string{"--out", filepath.Join(t.TempDir(), "r"), "--domains", "cooking"}, "no scenario"},
		{"projection layer", []string{"--out", filepath.Join(t.TempDir(), "r"), "--projection-layer", "2"}, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := append(append([]string(nil), base...), tc.args...)
			err := dispatch(a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	noCap := []string{"bench", "drift", "--model", model, "--axis", ax, "--out", filepath.Join(t.TempDir(), "r")}
	if err := dispatch(noCap); err == nil || !strings.Contains(err.Error(), "--cap-layers is required") {
		t.Fatalf("without --cap-layers: %v", err)
	}
}

// TestBenchDriftSimulatedUser: with a simulated user the conversation has
// --turns turns, the first one scripted.
func TestBenchDriftSimulatedUser(t *testing.T) {
	model := writePersonaTestModel(t)
	ax := writeDriftTestAxis(t)
	out := filepath.Join(t.TempDir(), "drift")
	args := []string{"bench", "drift", "--model", model, "--axis", ax, "--cap-layers", "0:2", "--cap-tau", "0.5",
		"--seeds", "1", "--turns", "3", "--max-tokens", "3", "--domains", "writing", "--scenarios-limit", "1",
		"--simulated-user", "self", "--no-capability", "--out", out}
	if err := dispatch(args); err != nil {
		t.Fatal(err)
	}
	rep := readDriftReport(t, out)
	scs, err := bench.BuiltinScenarios()
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, s := range scs {
		if s.Domain == "writing" {
			first = s.UserTurns[0]
			break
		}
	}
	if len(rep.Turns) != 6 || rep.Turns[0].User != first || rep.Settings.SimulatedUser != "self" || rep.Capability != nil {
		t.Fatalf("%d turns, first user turn %q (want %q), settings %+v", len(rep.Turns), rep.Turns[0].User, first, rep.Settings)
	}
	if !rep.CapCheck.Held || rep.CapCheck.Tokens == 0 {
		t.Fatalf("cap check %+v", rep.CapCheck)
	}
}
