package main

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/steer"
)

// steerTestModel is a tiny Llama-family model for command-line tests.
var steerTestModel = testmodels.Llama{Hidden: 64, Intermediate: 128, Layers: 6, Heads: 4, KVHeads: 2, Vocab: 320,
	MaxPositions: 512, BOS: 1, EOS: 2}

// steerFixture is a random tiny model with a test tokenizer (ChatML
// template), a random axis file for it and a control vector.
type steerFixture struct {
	model, axis, wrongAxis, gguf, dir string
	ax                                *axis.Axis
}

func newSteerFixture(t *testing.T) *steerFixture {
	t.Helper()
	f := &steerFixture{dir: t.TempDir()}
	f.model = testmodels.Write(t, filepath.Join(f.dir, "model"), steerTestModel, 3)
	rng := rand.New(rand.NewPCG(5, 5))
	mk := func(layers, hidden int) *axis.Axis {
		a := &axis.Axis{Model: "tiny", Layers: layers, Hidden: hidden, Percentiles: []float64{25, 50},
			Extra: map[string]string{"axis_layer": "2"}}
		for range layers {
			v, d := make([]float32, hidden), make([]float32, hidden)
			for i := range v {
				v[i], d[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
			}
			a.Axis = append(a.Axis, v)
			a.DefaultMean = append(a.DefaultMean, d)
		}
		for range a.Percentiles {
			row := make([]float32, layers)
			for i := range row {
				row[i] = -0.05
			}
			a.Tau = append(a.Tau, row)
		}
		return a
	}
	f.ax = mk(6, 64)
	f.axis = filepath.Join(f.dir, "axis.safetensors")
	if err := axis.Write(f.axis, f.ax); err != nil {
		t.Fatal(err)
	}
	f.wrongAxis = filepath.Join(f.dir, "wrong.safetensors")
	if err := axis.Write(f.wrongAxis, mk(6, 32)); err != nil {
		t.Fatal(err)
	}
	cv, err := steer.AxisControlVector(f.ax, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.gguf = filepath.Join(f.dir, "v.gguf")
	if err := steer.WriteControlVector(f.gguf, cv); err != nil {
		t.Fatal(err)
	}
	return f
}

// captureStdout runs f with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	ferr := f()
	w.Close()
	os.Stdout = old
	return string(<-done), ferr
}

// generateJSON runs `tether generate --json` greedily and decodes its output.
func generateJSON(t *testing.T, f *steerFixture, extra ...string) generateOutput {
	t.Helper()
	args := append([]string{"--model", f.model, "--prompt", "hello there", "-n", "8", "--temperature", "0", "--json"}, extra...)
	out, err := captureStdout(t, func() error { return runGenerate(args) })
	if err != nil {
		t.Fatalf("generate %v: %v", extra, err)
	}
	var g generateOutput
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("generate output %q: %v", out, err)
	}
	return g
}

func readTelemetry(t *testing.T, path string) []map[string]any {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var out []map[string]any
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatalf("telemetry line %q: %v", sc.Text(), err)
		}
		out = append(out, obj)
	}
	return out
}

func TestGenerateCapping(t *testing.T) {
	f := newSteerFixture(t)
	base := generateJSON(t, f)
	if base.Steering != nil {
		t.Fatalf("steering summary without steering flags: %+v", base.Steering)
	}
	// tau = -inf: the same tokens.
	open := generateJSON(t, f, "--axis", f.axis, "--cap-layers", "1:4", "--cap-tau", "-inf")
	if !slices.Equal(open.IDs, base.IDs) {
		t.Fatalf("cap at -inf changed the output: %v vs %v", open.IDs, base.IDs)
	}
	if open.Steering == nil || open.Steering.CappedTokens != 0 {
		t.Fatalf("cap at -inf: summary %+v", open.Steering)
	}
	// A very high tau acts at every token and every capped layer, and the
	// telemetry file says so: one line per token and layer, after >= tau.
	const tau = 5.0
	tel := filepath.Join(f.dir, "t.jsonl")
	capped := generateJSON(t, f, "--axis", f.axis, "--cap-layers", "1:4", "--cap-tau", "5", "--telemetry", tel)
	s := capped.Steering
	if s == nil || s.Tokens != len(capped.IDs) || s.CappedFraction != 1 || s.Layer != 2 {
		t.Fatalf("summary %+v for %d tokens (measure layer should be the axis file's axis_layer 2)", s, len(capped.IDs))
	}
	if math.Abs(s.MeanProjection-tau) > 1e-4 || s.MeanBefore >= tau {
		t.Fatalf("summary %+v: mean after cap should be tau %g, before below it", s, tau)
	}
	recs := readTelemetry(t, tel)
	if len(recs) != 3*len(capped.IDs) {
		t.Fatalf("%d telemetry lines for %d tokens x 3 layers", len(recs), len(capped.IDs))
	}
	for i, r := range recs {
		if int(r["token"].(float64)) != i/3 || int(r["layer"].(float64)) != 1+i%3 || r["capped"] != true || r["after"].(float64) < tau-1e-4 {
			t.Fatalf("telemetry line %d: %v", i, r)
		}
	}
	// The 25th percentile of the file works too; the projection is still measured at the axis
	// file's axis_layer (2), not at the capped layer (steer.DefaultMeasureLayer).
	pct := generateJSON(t, f, "--axis", f.axis, "--cap-layers", "3", "--cap-percentile", "25")
	if pct.Steering == nil || pct.Steering.Layer != 2 {
		t.Fatalf("percentile run summary %+v", pct.Steering)
	}
}

func TestGenerateSteeringAndAblation(t *testing.T) {
	f := newSteerFixture(t)
	base := generateJSON(t, f)
	// Coefficient 0: identical output, with a control vector or an axis.
	for _, extra := range [][]string{
		{"--steer", f.gguf, "--steer-coef", "0"},
		{"--steer", f.axis, "--steer-layers", "2,4", "--steer-coef", "0"},
		{"--steer", f.gguf, "--steer-layers", "3", "--steer-coef", "0", "--steer-norm-units"},
	} {
		g := generateJSON(t, f, extra...)
		if !slices.Equal(g.IDs, base.IDs) {
			t.Errorf("%v changed the output: %v vs %v", extra, g.IDs, base.IDs)
		}
	}
	// Ablation: the telemetry shows a zero projection after.
	// (A random model may sample EOS at once; take a layer where it does not.)
	tel := filepath.Join(f.dir, "abl.jsonl")
	var recs []map[string]any
	ablated := 0
	for ablated = 3; ablated < 6 && len(recs) == 0; ablated++ {
		generateJSON(t, f, "--axis", f.axis, "--ablate", strconv.Itoa(ablated), "--telemetry", tel)
		recs = readTelemetry(t, tel)
	}
	ablated--
	if len(recs) == 0 {
		t.Fatal("no telemetry for an ablation on any layer")
	}
	layers := map[int]bool{}
	for _, r := range recs {
		layers[int(r["layer"].(float64))] = true
		if int(r["layer"].(float64)) != ablated {
			continue // the measure layer (the axis file's axis_layer 2)
		}
		if math.Abs(r["after"].(float64)) > 1e-5 || r["capped"] != false {
			t.Fatalf("ablation telemetry %v", r)
		}
	}
	if !layers[ablated] || !layers[2] || len(layers) != 2 {
		t.Fatalf("telemetry layers %v, want the ablated layer %d and the measure layer 2", layers, ablated)
	}
	// A strong push along the axis moves the measured projection up.
	push := generateJSON(t, f, "--axis", f.axis, "--steer", f.axis, "--steer-layers", "1", "--steer-coef", "3", "--measure-layer", "1")
	free := generateJSON(t, f, "--axis", f.axis, "--measure-layer", "1", "--telemetry", filepath.Join(f.dir, "free.jsonl"))
	if push.Steering == nil || free.Steering == nil || push.Steering.MeanProjection < free.Steering.MeanProjection+2 {
		t.Fatalf("steering +3 along the axis: projection %+v vs unsteered %+v", push.Steering, free.Steering)
	}
}

func TestSteerFlagErrors(t *testing.T) {
	f := newSteerFixture(t)
	bad := filepath.Join(f.dir, "bad.gguf")
	os.WriteFile(bad, []byte("GGUF\x03\x00\x00\x00garbage"), 0o644)
	nanAxis := filepath.Join(f.dir, "nan.gguf")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--cap-layers", "1:3", "--cap-tau", "1"}, "give --axis"},
		{[]string{"--axis", f.axis, "--cap-layers", "1:3"}, "needs a threshold"},
		{[]string{"--axis", f.axis, "--cap-layers", "1:3", "--cap-percentile", "10"}, "percentile 10 is not calibrated"},
		{[]string{"--axis", f.axis, "--cap-layers", "4:9", "--cap-tau", "1"}, "out of range"},
		{[]string{"--axis", f.axis, "--cap-layers", "1:3", "--cap-tau", "1,2,3"}, "3 cap thresholds for 2 capped layers"},
		{[]string{"--axis", f.axis, "--cap-layers", "1:3", "--cap-tau", "nan"}, "expected a number"},
		{[]string{"--axis", f.axis, "--cap-layers", "1", "--cap-tau", "1", "--cap-percentile", "25"}, "exclusive"},
		{[]string{"--cap-tau", "1"}, "need --cap-layers"},
		{[]string{"--axis", f.wrongAxis, "--cap-layers", "1", "--cap-tau", "1"}, "hidden size 32 but the model has 64"},
		{[]string{"--steer-layers", "1"}, "need --steer"},
		{[]string{"--steer", bad}, "control vector"},
		{[]string{"--steer", f.axis}, "--steer-layers: needed when the vector is an axis file"},
		{[]string{"--steer", f.gguf, "--steer-layers", "0"}, "no direction for layer 0"},
		{[]string{"--ablate", "1"}, "give --axis"},
		{[]string{"--axis", f.axis, "--measure-layer", "6"}, "out of range"},
		{[]string{"--steer", nanAxis}, "no such file"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := append([]string{"--model", f.model, "--prompt", "x", "-n", "2", "--json"}, tc.args...)
			_, err := captureStdout(t, func() error { return runGenerate(args) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestAxisExportGGUF(t *testing.T) {
	f := newSteerFixture(t)
	out := filepath.Join(f.dir, "export.gguf")
	if _, err := captureStdout(t, func() error {
		return runAxisExportGGUF([]string{"--axis", f.axis, "--out", out, "--layers", "2:5", "--scale", "2.5"})
	}); err != nil {
		t.Fatal(err)
	}
	cv, err := steer.ReadControlVector(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cv.Layers(), []int{2, 3, 4}) || cv.Hidden != 64 {
		t.Fatalf("exported layers %v hidden %d", cv.Layers(), cv.Hidden)
	}
	for _, l := range cv.Layers() {
		u, _ := f.ax.Unit(l)
		for i := range u {
			if math.Abs(float64(cv.Directions[l][i])-2.5*float64(u[i])) > 1e-6 {
				t.Fatalf("layer %d value %d: %g, want 2.5 x %g", l, i, cv.Directions[l][i], u[i])
			}
		}
	}
	_, err = captureStdout(t, func() error {
		return runAxisExportGGUF([]string{"--axis", f.axis, "--out", out, "--layers", "0:2"})
	})
	if err == nil || !strings.Contains(err.Error(), "layer 0 cannot be exported") {
		t.Fatalf("exporting layer 0: %v", err)
	}
}

// TestSteerUnits: an add at layer 1 moves the projection on the unit axis there, at the first
// generated token (whose layer-1 input no add has touched), by coef x |axis[1]| with
// --steer-units raw (the reference's coefficient x axis[layer]) and by coef with unit; the
// units are recorded in the JSON summary.
func TestSteerUnits(t *testing.T) {
	f := newSteerFixture(t)
	var n2 float64
	for _, x := range f.ax.Axis[1] {
		n2 += float64(x) * float64(x)
	}
	first := func(path string) float64 {
		for _, r := range readTelemetry(t, path) {
			if r["token"].(float64) == 0 && r["layer"].(float64) == 1 {
				return r["before"].(float64)
			}
		}
		t.Fatalf("%s: no telemetry for token 0 at layer 1: %v", path, readTelemetry(t, path))
		return 0
	}
	freePath := filepath.Join(f.dir, "free.jsonl")
	// "hi" (unlike generateJSON's prompt) does not end at once on this model.
	generateJSON(t, f, "--prompt", "hi", "--axis", f.axis, "--measure-layer", "1", "--telemetry", freePath)
	free := first(freePath)
	const coef = 0.75
	for _, tc := range []struct {
		units string
		shift float64
	}{
		{"raw", coef * math.Sqrt(n2)},
		{"unit", coef},
	} {
		path := filepath.Join(f.dir, tc.units+".jsonl")
		g := generateJSON(t, f, "--prompt", "hi", "--axis", f.axis, "--steer", f.axis, "--steer-layers", "1", "--steer-coef", strconv.FormatFloat(coef, 'g', -1, 64),
			"--steer-units", tc.units, "--measure-layer", "1", "--telemetry", path)
		if got := first(path) - free; math.Abs(got-tc.shift) > 1e-3*math.Max(1, tc.shift) {
			t.Errorf("--steer-units %s: projection moved by %.6f, want %.6f", tc.units, got, tc.shift)
		}
		if g.Steering == nil || g.Steering.SteerUnits != tc.units || g.Steering.SteerCoef != coef {
			t.Errorf("--steer-units %s: summary %+v does not record the steering settings", tc.units, g.Steering)
		}
	}
	for _, bad := range [][]string{
		{"--steer", f.axis, "--steer-layers", "1", "--steer-units", "norm"},
		{"--steer", f.axis, "--steer-layers", "1", "--steer-units", "raw", "--steer-norm-units"},
		{"--steer-units", "unit"},
	} {
		args := append([]string{"--model", f.model, "--prompt", "hi", "-n", "1"}, bad...)
		if _, err := captureStdout(t, func() error { return runGenerate(args) }); err == nil {
			t.Errorf("%v: no error", bad)
		}
	}
}
