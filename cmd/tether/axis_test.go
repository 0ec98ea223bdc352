package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/probe"
)

// TestAxisBuildMatchesNumpy: the command's axis file holds the numpy recomputation of the probe
// fixture run (probe/testdata/axis/expected.json, from check_axis.py), and the report and
// pictures are written beside it.
func TestAxisBuildMatchesNumpy(t *testing.T) {
	run := filepath.Join("..", "..", "probe", "testdata", "axis", "run")
	data, err := os.ReadFile(filepath.Join("..", "..", "probe", "testdata", "axis", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Axis [][]float64 `json:"axis"`
		Tau  [][]float64 `json:"tau"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "sub", "axis.safetensors")
	// The fixture's model is not on disk: calibrate on span means, as check_axis.py's first case.
	build := []string{"axis", "build", "--run", run, "--out", out, "--calibrate-on", "all", "--calibrate-unit", "rollout", "--min-role-rollouts", "1"}
	if _, err := captureStdout(t, func() error { return dispatch(build) }); err != nil {
		t.Fatal(err)
	}
	a, err := axis.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	for l := range want.Axis {
		for j, w := range want.Axis[l] {
			if math.Abs(float64(a.Axis[l][j])-w) > 1e-5 {
				t.Fatalf("axis[%d][%d] = %v, numpy %v", l, j, a.Axis[l][j], w)
			}
		}
		for i := range want.Tau {
			if math.Abs(float64(a.Tau[i][l])-want.Tau[i][l]) > 1e-5 {
				t.Fatalf("tau[%d][%d] = %v, numpy %v", i, l, a.Tau[i][l], want.Tau[i][l])
			}
		}
	}
	for _, f := range []string{probe.AxisReportFile, probe.PersonaSpacePlot, probe.VariancePlot, probe.PC1CosinePlot} {
		if _, err := os.Stat(filepath.Join(dir, "sub", f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	text, err := captureStdout(t, func() error { return dispatch([]string{"axis", "inspect", out, "--top", "2"}) })
	for _, want := range []string{"Assistant end:", "tau p25", "hidden_states[i+1]", "calibration (all, rollout units)", "axis layer (default for steering and projection): 1 (middle layer 2/2"} {
		if err != nil || !strings.Contains(text, want) {
			t.Errorf("inspect: %v: no %q in\n%s", err, want, text)
		}
	}
	// The reference's filter: 50 score-3 rollouts by default in a judged run, which this tiny
	// fixture (at most 4 per role) does not reach.
	if _, err := captureStdout(t, func() error { return dispatch(build[:len(build)-2]) }); err == nil || !strings.Contains(err.Error(), "no role has 50 or more kept rollouts") {
		t.Errorf("default --min-role-rollouts on a judged run: error %v", err)
	}
	// A minimum of 2 leaves out the roles with a single score-3 rollout, listed with their counts.
	two := filepath.Join(dir, "two", "axis.safetensors")
	text, err = captureStdout(t, func() error { return dispatch(append(build[:len(build)-1:len(build)-1], "2", "--out", two)) })
	if err != nil || !strings.Contains(text, "left out 3 roles with fewer than 2 kept rollouts: nurse (1 kept), sage (1 kept), villain (1 kept)") {
		t.Errorf("--min-role-rollouts 2: %v\n%s", err, text)
	}
	var rep struct {
		Dropped []probe.DroppedRole `json:"dropped_roles"`
		Min     int                 `json:"min_role_rollouts"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "two", probe.AxisReportFile)); err != nil || json.Unmarshal(data, &rep) != nil ||
		fmt.Sprint(rep.Dropped) != "[{nurse 1} {sage 1} {villain 1}]" || rep.Min != 2 {
		t.Errorf("report dropped roles %+v (min %d): %v", rep.Dropped, rep.Min, err)
	}
	text, err = captureStdout(t, func() error { return dispatch([]string{"axis", "inspect", two}) })
	if err != nil || !strings.Contains(text, "nurse (1 kept), sage (1 kept), villain (1 kept)") {
		t.Errorf("inspect of the filtered axis: %v\n%s", err, text)
	}
	js, err := captureStdout(t, func() error { return dispatch([]string{"axis", "inspect", out, "--json", "--layer", "0"}) })
	var in probe.AxisInspection
	if err != nil || json.Unmarshal([]byte(js), &in) != nil || in.Layer != 0 || len(in.Roles) != 4 {
		t.Errorf("inspect --json: %v\n%s", err, js)
	}
	for _, bad := range [][]string{
		{"axis", "build", "--run", run},
		{"axis", "build", "--run", run, "--out", out, "--percentiles", "1,200"},
		{"axis", "build", "--run", run, "--out", out, "--calibrate-on", "some"},
		{"axis", "build", "--run", run, "--out", out, "--calibrate-unit", "turn", "--min-role-rollouts", "1"},
		{"axis", "build", "--run", run, "--out", out, "--min-role-rollouts", "0"},
		{"axis", "build", "--run", run, "--out", out, "--min-role-rollouts", "1"}, // token units need the absent model
		{"axis", "build", "--run", run, "--out", out, "--axis-layer", "7", "--calibrate-unit", "rollout"},
		{"axis", "build", "--run", run, "--out", out, "--layer", "2"},
		{"axis", "build", "--run", filepath.Join(dir, "missing"), "--out", out},
		{"axis", "inspect"},
		{"axis", "inspect", out, "--layer", "5"},
		{"axis", "inspect", filepath.Join(dir, "missing.safetensors")},
	} {
		if _, err := captureStdout(t, func() error { return dispatch(bad) }); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}

// TestPersonaAxisProject runs the pipeline on a tiny random chat model: persona run, axis build,
// project; an axis of another model is refused.
func TestPersonaAxisProject(t *testing.T) {
	model := writePersonaTestModel(t)
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := dispatch([]string{"persona", "run", "--model", model, "--out", run, "--roles-limit", "3", "--prompts-limit", "1",
		"--questions-limit", "2", "--max-tokens", "4", "--batch", "4"}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "axis.safetensors")
	if _, err := captureStdout(t, func() error { return dispatch([]string{"axis", "build", "--run", run, "--out", out}) }); err != nil {
		t.Fatal(err)
	}
	checkTokenCalibration(t, dir)
	conv := filepath.Join(dir, "conv.json")
	body := `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello there"},{"role":"user","content":"and?"},{"role":"assistant","content":"more words"}]`
	if err := os.WriteFile(conv, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	js, err := captureStdout(t, func() error {
		return dispatch([]string{"project", "--model", model, "--axis", out, "--conversation", conv, "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var res probe.ConversationProjection
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Turns) != 2 || res.Turns[0].Turn != 1 || res.Turns[1].Turn != 3 || res.Layer != 1 || res.Turns[0].Tokens == 0 {
		t.Errorf("projection %+v", res)
	}

	// Another model of the same shape (other config.json) is refused unless asked for.
	otherModel := personaTestModel
	otherModel.RopeTheta = 20000
	other := testmodels.WriteWeights(t, writePersonaTestModel(t), otherModel, 3)
	args := []string{"project", "--model", other, "--axis", out, "--conversation", conv}
	if _, err := captureStdout(t, func() error { return dispatch(args) }); err == nil || !strings.Contains(err.Error(), "config sha256") {
		t.Errorf("axis of another model: error %v", err)
	}
	if _, err := captureStdout(t, func() error { return dispatch(append(args, "--allow-other-model")) }); err != nil {
		t.Errorf("--allow-other-model: %v", err)
	}
	// A token calibration with another model than the run's is refused.
	build := []string{"axis", "build", "--run", run, "--out", filepath.Join(dir, "o", "axis.safetensors"), "--model", other}
	if _, err := captureStdout(t, func() error { return dispatch(build) }); err == nil || !strings.Contains(err.Error(), "is not the run's model") {
		t.Errorf("axis build --model of another model: error %v", err)
	}
	// An axis of another hidden size.
	a, err := axis.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	wide := &axis.Axis{Model: "wide", Layers: a.Layers, Hidden: a.Hidden * 2}
	for l := 0; l < a.Layers; l++ {
		wide.Axis = append(wide.Axis, append(append([]float32{}, a.Axis[l]...), a.Axis[l]...))
		wide.DefaultMean = append(wide.DefaultMean, make([]float32, a.Hidden*2))
	}
	widePath := filepath.Join(dir, "wide.safetensors")
	if err := axis.Write(widePath, wide); err != nil {
		t.Fatal(err)
	}
	_, err = captureStdout(t, func() error {
		return dispatch([]string{"project", "--model", model, "--axis", widePath, "--conversation", conv})
	})
	if err == nil || !strings.Contains(err.Error(), "hidden size 64") {
		t.Errorf("axis of the wrong hidden size: error %v", err)
	}
}

// checkTokenCalibration: the default build re-ran the run's model over the default rollouts and
// calibrated on their tokens. The re-read tokens' mean reproduces each stored span mean (the
// same rendering, span and model as the run), and a floor at the p-th percentile of the tokens'
// projections acts on about p% of them (exactly, up to ties, by the definition of the percentile).
func checkTokenCalibration(t *testing.T, dir string) {
	t.Helper()
	var rep probe.AxisReport
	data, err := os.ReadFile(filepath.Join(dir, probe.AxisReportFile))
	if err != nil || json.Unmarshal(data, &rep) != nil {
		t.Fatalf("report: %v", err)
	}
	if rep.CalibrateOn != probe.CalibrateDefault || rep.CalibrateUnit != probe.UnitToken || rep.CalibrationTokens == 0 {
		t.Fatalf("calibration %s/%s over %d tokens, want default/token", rep.CalibrateOn, rep.CalibrateUnit, rep.CalibrationTokens)
	}
	if rep.TokenMeanDeviation > 1e-4 {
		t.Errorf("re-read tokens' mean differs from the stored span means by %g of their norm", rep.TokenMeanDeviation)
	}
	n := float64(rep.CalibrationTokens)
	for _, li := range rep.PerLayer {
		for _, p := range rep.Percentiles {
			key := strconv.FormatFloat(p, 'g', -1, 64)
			// numpy's linear percentile at h = (n-1)p/100 has floor(h) values strictly below it
			// (ceil(h) when it falls on a value), so the fraction lies in [floor(h), ceil(h)]/n.
			h := (n - 1) * p / 100
			if f := li.CapTokenFraction[key]; f < math.Floor(h)/n-1e-9 || f > math.Ceil(h)/n+1e-9 {
				t.Errorf("layer %d: tau p%s caps %.3f of %d calibration tokens, want %.0f..%.0f of them", li.Layer, key, f, rep.CalibrationTokens, math.Floor(h), math.Ceil(h))
			}
		}
	}
}
