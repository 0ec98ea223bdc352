package steer

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](x T) *T { return &x }

// TestSpecValidate: every malformed spec is refused with a FieldError naming the field and
// saying what was expected; well-formed specs pass.
func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name  string
		spec  Spec
		field string // "" for a valid spec
		want  string
	}{
		{"empty spec", Spec{}, "", ""},
		{"cap at a percentile", Spec{Cap: &CapSpec{Layers: "46:54", Percentile: ptr(25.0)}}, "", ""},
		{"cap at -inf", Spec{Cap: &CapSpec{Layers: "1", Tau: []float64{math.Inf(-1)}}}, "", ""},
		{"cap without layers", Spec{Cap: &CapSpec{Tau: []float64{1}}}, "cap.layers", "expected a layer selection"},
		{"cap without threshold", Spec{Cap: &CapSpec{Layers: "1"}}, "cap", "needs a threshold"},
		{"cap with both thresholds", Spec{Cap: &CapSpec{Layers: "1", Percentile: ptr(25.0), Tau: []float64{1}}}, "cap", "exclusive"},
		{"percentile above 100", Spec{Cap: &CapSpec{Layers: "1", Percentile: ptr(120.0)}}, "cap.percentile", "0 to 100"},
		{"percentile NaN", Spec{Cap: &CapSpec{Layers: "1", Percentile: ptr(math.NaN())}}, "cap.percentile", "0 to 100"},
		{"empty tau list", Spec{Cap: &CapSpec{Layers: "1", Tau: []float64{}}}, "cap.tau", "one threshold"},
		{"NaN tau", Spec{Cap: &CapSpec{Layers: "1:3", Tau: []float64{1, math.NaN()}}}, "cap.tau[1]", "finite number"},
		{"+inf tau", Spec{Cap: &CapSpec{Layers: "1", Tau: []float64{math.Inf(1)}}}, "cap.tau[0]", "finite number"},
		{"experiment and cap", Spec{Cap: &CapSpec{Layers: "1", Tau: []float64{1}}, Experiment: &ExperimentSpec{ID: "x", CappingConfig: "c.pt"}}, "experiment", "excludes cap"},
		{"experiment without id", Spec{Experiment: &ExperimentSpec{CappingConfig: "c.pt"}}, "experiment.id", "experiment id"},
		{"experiment without config", Spec{Experiment: &ExperimentSpec{ID: "x"}}, "experiment.capping_config", "capping_config.pt"},
		{"add without vector", Spec{Add: &AddSpec{Coef: 1}}, "add.vector", "control vector"},
		{"add with NaN coef", Spec{Add: &AddSpec{Vector: "v.gguf", Coef: math.NaN()}}, "add.coef", "finite number"},
		{"add with unknown units", Spec{Add: &AddSpec{Vector: "v.gguf", Units: "norm"}}, "add.units", "expected raw or unit"},
		{"norm units with raw", Spec{Add: &AddSpec{Vector: "v.gguf", Units: UnitsRaw, NormUnits: true}}, "add.norm_units", "cannot be combined"},
		{"norm units with default units", Spec{Add: &AddSpec{Vector: "v.gguf", NormUnits: true}}, "", ""},
		{"ablate without layers", Spec{Ablate: &AblateSpec{}}, "ablate.layers", "layer selection"},
		{"ablate to infinity", Spec{Ablate: &AblateSpec{Layers: "1", Value: math.Inf(1)}}, "ablate.value", "finite number"},
		{"negative measure layer", Spec{MeasureLayer: ptr(-1)}, "measure_layer", ">= 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, tc.want) {
				t.Fatalf("error %v, want a FieldError on %q containing %q", err, tc.field, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "steer: "+tc.field+": ") {
				t.Fatalf("message %q does not start with the field", err)
			}
		})
	}
}

// TestSpecJSON: a request in the documented JSON form decodes into the Spec it describes, and
// encodes back to the same object.
func TestSpecJSON(t *testing.T) {
	const body = `{"cap":{"layers":"46:54","percentile":25},"add":{"vector":"v.gguf","layers":"10","coef":-2,"units":"unit"},` +
		`"ablate":{"layers":"3","value":0.5},"newest_only":true,"measure_layer":32,"telemetry":true,"allow_other_model":true}`
	want := Spec{Cap: &CapSpec{Layers: "46:54", Percentile: ptr(25.0)},
		Add:        &AddSpec{Vector: "v.gguf", Layers: "10", Coef: -2, Units: UnitsUnit},
		Ablate:     &AblateSpec{Layers: "3", Value: 0.5},
		NewestOnly: true, MeasureLayer: ptr(32), Telemetry: true, AllowOtherModel: true}
	var got Spec
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	back, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(back, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("re-encoded %s, want %s", back, body)
	}
}
