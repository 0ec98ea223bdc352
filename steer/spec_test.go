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
		{"cap at a percentile", Spec{Cap: []CapSpec{{Layers: "46:54", Percentile: ptr(25.0)}}}, "", ""},
		{"cap at -inf", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{math.Inf(-1)}}}}, "", ""},
		{"cap without layers", Spec{Cap: []CapSpec{{Tau: []float64{1}}}}, "cap[0].layers", "expected a layer selection"},
		{"cap without threshold", Spec{Cap: []CapSpec{{Layers: "1"}}}, "cap[0]", "needs a threshold"},
		{"cap with both thresholds", Spec{Cap: []CapSpec{{Layers: "1", Percentile: ptr(25.0), Tau: []float64{1}}}}, "cap[0]", "exclusive"},
		{"percentile above 100", Spec{Cap: []CapSpec{{Layers: "1", Percentile: ptr(120.0)}}}, "cap[0].percentile", "0 to 100"},
		{"percentile NaN", Spec{Cap: []CapSpec{{Layers: "1", Percentile: ptr(math.NaN())}}}, "cap[0].percentile", "0 to 100"},
		{"empty tau list", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{}}}}, "cap[0].tau", "one threshold"},
		{"NaN tau", Spec{Cap: []CapSpec{{Layers: "1:3", Tau: []float64{1, math.NaN()}}}}, "cap[0].tau[1]", "finite number"},
		{"+inf tau", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{math.Inf(1)}}}}, "cap[0].tau[0]", "finite number"},
		{"experiment and cap", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{1}}}, Experiment: &ExperimentSpec{ID: "x", CappingConfig: "c.pt"}}, "experiment", "excludes cap"},
		{"experiment without id", Spec{Experiment: &ExperimentSpec{CappingConfig: "c.pt"}}, "experiment.id", "experiment id"},
		{"experiment without config", Spec{Experiment: &ExperimentSpec{ID: "x"}}, "experiment.capping_config", "capping_config.pt"},
		{"add without vector", Spec{Add: []AddSpec{{Coef: 1}}}, "add[0].vector", "control vector"},
		{"add with NaN coef", Spec{Add: []AddSpec{{Vector: "v.gguf", Coef: math.NaN()}}}, "add[0].coef", "finite number"},
		{"add with unknown units", Spec{Add: []AddSpec{{Vector: "v.gguf", Units: "norm"}}}, "add[0].units", "expected raw or unit"},
		{"norm units with raw", Spec{Add: []AddSpec{{Vector: "v.gguf", Units: UnitsRaw, NormUnits: true}}}, "add[0].norm_units", "cannot be combined"},
		{"norm units with default units", Spec{Add: []AddSpec{{Vector: "v.gguf", NormUnits: true}}}, "", ""},
		{"ablate without layers", Spec{Ablate: []AblateSpec{{}}}, "ablate[0].layers", "layer selection"},
		{"ablate to infinity", Spec{Ablate: []AblateSpec{{Layers: "1", Value: math.Inf(1)}}}, "ablate[0].value", "finite number"},
		{"negative measure layer", Spec{MeasureLayer: ptr(-1)}, "measure_layer", ">= 0"},
		// Several entries: the index names the entry at fault.
		{"second cap without layers", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{1}}, {Axis: "b", Tau: []float64{1}}}}, "cap[1].layers", "layer selection"},
		{"third cap's NaN tau", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{1}}, {Layers: "2", Percentile: ptr(25.0)}, {Layers: "1:3", Tau: []float64{0, math.NaN()}}}}, "cap[2].tau[1]", "finite number"},
		{"second add's units", Spec{Add: []AddSpec{{Vector: "a", Coef: 1}, {Vector: "b", Units: "furlongs"}}}, "add[1].units", "furlongs"},
		{"second ablation to infinity", Spec{Ablate: []AblateSpec{{Layers: "1"}, {Vector: "b", Layers: "2", Value: math.Inf(-1)}}}, "ablate[1].value", "finite number"},
		{"several of each", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{1}}, {Axis: "b", Layers: "2", Percentile: ptr(25.0)}},
			Add: []AddSpec{{Vector: "a", Coef: 1}, {Vector: "b", Coef: -1}}, Ablate: []AblateSpec{{Layers: "1"}, {Vector: "b", Layers: "3"}}}, "", ""},
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

// oldSpecJSON is a Spec as the code before lists wrote it (json.Marshal of a Spec with one cap,
// one add and one ablation as objects), kept literally.
const oldSpecJSON = `{"cap":{"layers":"46:54","percentile":25},"add":{"vector":"v.gguf","layers":"10","coef":-2,"units":"unit"},` +
	`"ablate":{"layers":"3","value":0.5},"newest_only":true,"measure_layer":32,"telemetry":true,"allow_other_model":true}`

// TestSpecJSON: the documented JSON forms decode into the Spec they describe and encode back to
// the same bytes: a Spec written before the lists (one object per kind) reads as one-entry
// lists and writes again unchanged, so settings saved then compare equal; lists of several
// entries, with their axes, round-trip as lists; a one-entry list is written as its object.
func TestSpecJSON(t *testing.T) {
	old := Spec{Cap: []CapSpec{{Layers: "46:54", Percentile: ptr(25.0)}},
		Add:        []AddSpec{{Vector: "v.gguf", Layers: "10", Coef: -2, Units: UnitsUnit}},
		Ablate:     []AblateSpec{{Layers: "3", Value: 0.5}},
		NewestOnly: true, MeasureLayer: ptr(32), Telemetry: true, AllowOtherModel: true}
	const lists = `{"cap":[{"axis":"a","layers":"1","tau":[1]},{"layers":"2:4","percentile":25}],` +
		`"add":[{"vector":"a","layers":"1","coef":2,"units":"unit"},{"vector":"v.gguf","coef":-1}],` +
		`"ablate":[{"vector":"b","layers":"3"},{"layers":"-1","value":0.5}],"projections":{"axis":"a","layers":"1:3"}}`
	multi := Spec{Cap: []CapSpec{{Axis: "a", Layers: "1", Tau: []float64{1}}, {Layers: "2:4", Percentile: ptr(25.0)}},
		Add:         []AddSpec{{Vector: "a", Layers: "1", Coef: 2, Units: UnitsUnit}, {Vector: "v.gguf", Coef: -1}},
		Ablate:      []AblateSpec{{Vector: "b", Layers: "3"}, {Layers: "-1", Value: 0.5}},
		Projections: &ProjectionSpec{Axis: "a", Layers: "1:3"}}
	for _, tc := range []struct {
		name, body string
		want       Spec
	}{{"written before lists", oldSpecJSON, old}, {"lists", lists, multi}} {
		t.Run(tc.name, func(t *testing.T) {
			var got Spec
			if err := json.Unmarshal([]byte(tc.body), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("decoded %+v, want %+v", got, tc.want)
			}
			back, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if string(back) != tc.body {
				t.Fatalf("re-encoded\n%s\nwant\n%s", back, tc.body)
			}
		})
	}
	var one Spec
	if err := json.Unmarshal([]byte(`{"cap":[{"layers":"1","tau":[2]}]}`), &one); err != nil {
		t.Fatal(err)
	}
	if back, _ := json.Marshal(one); len(one.Cap) != 1 || string(back) != `{"cap":{"layers":"1","tau":[2]}}` {
		t.Fatalf("a one-entry list decoded to %+v and encoded as %s, want one cap written as its object", one, back)
	}
	for _, bad := range []string{`{"cap":5}`, `{"add":"v.gguf"}`, `{"ablate":[3]}`, `{"cap":{"layers":7}}`} {
		if err := json.Unmarshal([]byte(bad), &one); err == nil {
			t.Errorf("%s decoded without an error", bad)
		}
	}
}
