package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/axis"
)

// refFixture is a file written by axis/testdata/refpt/make_fixtures.py in
// the reference project's structure.
func refFixture(name string) string {
	return filepath.Join("..", "..", "axis", "testdata", "refpt", name)
}

func TestAxisImportCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "imported.safetensors")
	stdout, err := captureStdout(t, func() error { return runAxisImport([]string{refFixture("axis.pt"), "--out", out}) })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, "4 layers x 8") || !strings.Contains(stdout, "tau") {
		t.Errorf("output %q: want the shape and what the file lacks", stdout)
	}
	want, err := axis.ImportReference(refFixture("axis.pt"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := axis.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Imported() || got.Extra[axis.MetaSourceSHA256] != want.Extra[axis.MetaSourceSHA256] || !slices.Equal(got.Axis[3], want.Axis[3]) {
		t.Errorf("written axis differs from the import: %+v", got.Extra)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{refFixture("axis.pt")}, "--out"},
		{[]string{"--out", out}, "exactly one"},
		{[]string{refFixture("axis_rank1.pt"), "--out", out}, "[layers, hidden]"},
	} {
		if err := runAxisImport(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("axis import %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestCapExperimentFlags runs generate with a reference capping config made
// for the test model: the "floor10" experiment caps at -10 along each of its
// vectors v (the reference keeps <h, v/|v|> <= -10), "open" caps at 1e30
// (never acts).
func TestCapExperimentFlags(t *testing.T) {
	f := newSteerFixture(t)
	cfg := refFixture("capping_config_h64.pt")
	base := generateJSON(t, f)
	open := generateJSON(t, f, "--cap-experiment", "open", "--capping-config", cfg)
	if !slices.Equal(open.IDs, base.IDs) {
		t.Errorf("a cap that never acts changed the output: %v vs %v", open.IDs, base.IDs)
	}
	tel := filepath.Join(f.dir, "exp.jsonl")
	capped := generateJSON(t, f, "--cap-experiment", "floor10", "--capping-config", cfg, "--telemetry", tel)
	s := capped.Steering
	if s == nil || s.Layer != 2 || s.CappedFraction != 1 {
		t.Fatalf("summary %+v: want every token capped, measured at layer 2 (middle of 1..3)", s)
	}
	if tc := generateJSON(t, f, "--cap-experiment", "floor10_tensor", "--capping-config", cfg); !slices.Equal(tc.IDs, capped.IDs) {
		t.Errorf("caps stored as 0-d tensors gave %v, as floats %v", tc.IDs, capped.IDs)
	}
	recs := readTelemetry(t, tel)
	if len(recs) != 3*len(capped.IDs) {
		t.Fatalf("%d telemetry lines for %d tokens x 3 capped layers", len(recs), len(capped.IDs))
	}
	// The telemetry is the projection on the cap direction u = -v/|v|: the
	// reference's ceiling <h, v/|v|> <= -10 reads as after >= 10.
	for i, r := range recs {
		if r["capped"] != true || r["after"].(float64) < 10-1e-3 || r["before"].(float64) >= 10 {
			t.Fatalf("telemetry line %d: %v", i, r)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cap-experiment", "floor10"}, "go together"},
		{[]string{"--capping-config", cfg}, "go together"},
		{[]string{"--cap-experiment", "floor10", "--capping-config", cfg, "--axis", f.axis, "--cap-layers", "1"}, "drop --cap-layers"},
		{[]string{"--cap-experiment", "nope", "--capping-config", cfg}, `no experiment "nope"`},
		{[]string{"--cap-experiment", "layers_1:3-p0.25", "--capping-config", refFixture("capping_config.pt")}, "hidden size is 64"},
		{[]string{"--cap-experiment", "floor10", "--capping-config", refFixture("axis.pt")}, `"vectors" is missing`},
		{[]string{"--cap-experiment", "floor10", "--capping-config", cfg, "--measure-layer", "5"}, "capped layer"},
	} {
		args := append([]string{"--model", f.model, "--prompt", "hi", "-n", "2"}, tc.args...)
		if _, err := captureStdout(t, func() error { return runGenerate(args) }); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("generate %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}
