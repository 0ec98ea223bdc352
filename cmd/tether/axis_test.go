package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
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
	if _, err := captureStdout(t, func() error { return dispatch([]string{"axis", "build", "--run", run, "--out", out}) }); err != nil {
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
	if err != nil || !strings.Contains(text, "Assistant end:") || !strings.Contains(text, "tau p25") {
		t.Errorf("inspect: %v\n%s", err, text)
	}
	js, err := captureStdout(t, func() error { return dispatch([]string{"axis", "inspect", out, "--json", "--layer", "0"}) })
	var in probe.AxisInspection
	if err != nil || json.Unmarshal([]byte(js), &in) != nil || in.Layer != 0 || len(in.Roles) != 4 {
		t.Errorf("inspect --json: %v\n%s", err, js)
	}
	for _, bad := range [][]string{
		{"axis", "build", "--run", run},
		{"axis", "build", "--run", run, "--out", out, "--percentiles", "1,200"},
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
