package steer

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"tether/axis"
)

// handAxis is an axis of 6 layers of hidden size 8 whose axis at layer l is 3 e_l + 4 e_{l+1}
// (unit vector 0.6 e_l + 0.8 e_{l+1}), calibrated at percentiles 10 and 25 with tau = p/100 + l.
func handAxis(extra map[string]string) *axis.Axis {
	const L, H = 6, 8
	a := &axis.Axis{Model: "hand", Layers: L, Hidden: H, Percentiles: []float64{10, 25}, Extra: extra}
	for l := range L {
		v := make([]float32, H)
		v[l], v[l+1] = 3, 4
		a.Axis = append(a.Axis, v)
	}
	for _, p := range a.Percentiles {
		row := make([]float32, L)
		for l := range row {
			row[l] = float32(p/100) + float32(l)
		}
		a.Tau = append(a.Tau, row)
	}
	return a
}

var handModel = Model{Name: "hand", Layers: 6, Hidden: 8}

// TestResolveCapTaus: the taus of a percentile are the axis file's calibration at those layers
// (p/100 + layer, by construction), a single tau is repeated, one per layer is kept in order;
// every cap is a floor (Hi = +Inf) at its tau along the unit axis 0.6 e_l + 0.8 e_{l+1}.
func TestResolveCapTaus(t *testing.T) {
	ax := handAxis(map[string]string{axis.LayerKey: "1"})
	for _, tc := range []struct {
		name string
		cap  CapSpec
		want []LayerTau
		pct  float64
	}{
		{"percentile 25", CapSpec{Layers: "2:5", Percentile: ptr(25.0)}, []LayerTau{{2, 2.25}, {3, 3.25}, {4, 4.25}}, 25},
		{"percentile 10, last layers", CapSpec{Layers: "-2:", Percentile: ptr(10.0)}, []LayerTau{{4, 4.1}, {5, 5.1}}, 10},
		{"one tau", CapSpec{Layers: "0,3", Tau: []float64{-0.5}}, []LayerTau{{0, -0.5}, {3, -0.5}}, 0},
		{"a tau per layer", CapSpec{Layers: "1:3", Tau: []float64{7, -7}}, []LayerTau{{1, 7}, {2, -7}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resolve(t.Context(), Spec{Cap: []CapSpec{tc.cap}}, ax, handModel)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Caps, tc.want) || s.CapPercentile != tc.pct {
				t.Fatalf("caps %v (percentile %g), want %v (%g)", s.Caps, s.CapPercentile, tc.want, tc.pct)
			}
			for _, c := range tc.want {
				hk := s.Compiled.Hooks[c.Layer]
				if hk == nil || len(hk.Clamps) != 1 {
					t.Fatalf("layer %d: hook %+v, want one clamp", c.Layer, hk)
				}
				cl := hk.Clamps[0]
				if cl.Lo != c.Tau || !math.IsInf(float64(cl.Hi), 1) {
					t.Fatalf("layer %d: clamp [%g, %g], want a floor at %g", c.Layer, cl.Lo, cl.Hi, c.Tau)
				}
				for i, x := range cl.Dir {
					want := map[int]float64{c.Layer: 0.6, c.Layer + 1: 0.8}[i]
					if math.Abs(float64(x)-want) > 1e-7 {
						t.Fatalf("layer %d: direction %v, want 0.6 e_%d + 0.8 e_%d", c.Layer, cl.Dir, c.Layer, c.Layer+1)
					}
				}
			}
		})
	}
}

// TestResolveMeasureLayer: the one rule (DefaultMeasureLayer): a layer asked for; else the axis
// file's axis_layer, even when other layers are capped; else the middle layer; nothing without
// an axis. Monitors record the axis at the measure layer and at every intervened layer.
func TestResolveMeasureLayer(t *testing.T) {
	withLayer := handAxis(map[string]string{axis.LayerKey: "1"})
	plain := handAxis(nil)
	capped := []CapSpec{{Layers: "3:5", Tau: []float64{0}}}
	for _, tc := range []struct {
		name     string
		spec     Spec
		ax       *axis.Axis
		want     int
		reason   string
		monitors []int
	}{
		{"axis_layer metadata", Spec{}, withLayer, 1, "axis_layer", []int{1}},
		{"axis_layer, not the capped layers", Spec{Cap: capped}, withLayer, 1, "axis_layer", []int{1, 3, 4}},
		{"no metadata: the middle layer", Spec{Cap: capped}, plain, 3, "middle layer", []int{3, 4}},
		{"asked for", Spec{Cap: capped, MeasureLayer: ptr(5)}, withLayer, 5, "as asked", []int{3, 4, 5}},
		{"no axis", Spec{Telemetry: true}, nil, -1, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resolve(t.Context(), tc.spec, tc.ax, handModel)
			if err != nil {
				t.Fatal(err)
			}
			if s.MeasureLayer != tc.want || !strings.Contains(s.MeasureReason, tc.reason) || s.Reports != (tc.want >= 0) {
				t.Fatalf("measure layer %d (%s, reports %v), want %d (%s)", s.MeasureLayer, s.MeasureReason, s.Reports, tc.want, tc.reason)
			}
			if got := sortedKeys(s.Plan.Monitor); !slices.Equal(got, tc.monitors) {
				t.Fatalf("monitored layers %v, want %v", got, tc.monitors)
			}
			for _, l := range tc.monitors {
				if !slices.Equal(s.Plan.Monitor[l], tc.ax.Axis[l]) {
					t.Fatalf("monitor at layer %d is not the axis there", l)
				}
			}
			if got := s.Compiled.RecordedLayers(); !slices.Equal(got, tc.monitors) && tc.monitors != nil {
				t.Fatalf("recorded layers %v, want %v", got, tc.monitors)
			}
		})
	}
}

// TestResolveErrors: what only a model and an axis can tell is a FieldError naming the field.
func TestResolveErrors(t *testing.T) {
	ax := handAxis(nil)
	for _, tc := range []struct {
		name  string
		spec  Spec
		ax    *axis.Axis
		field string
		want  string
	}{
		{"invalid spec", Spec{Cap: []CapSpec{{Layers: "1"}}}, ax, "cap[0]", "needs a threshold"},
		{"cap without axis", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{1}}}}, nil, "cap[0]", "no axis file"},
		{"ablate without axis", Spec{Ablate: []AblateSpec{{Layers: "1"}}}, nil, "ablate[0]", "no axis file"},
		{"layers beyond the model", Spec{Cap: []CapSpec{{Layers: "4:9", Tau: []float64{1}}}}, ax, "cap[0].layers", "out of range"},
		{"uncalibrated percentile", Spec{Cap: []CapSpec{{Layers: "1", Percentile: ptr(50.0)}}}, ax, "cap[0].percentile", "percentile 50 is not calibrated"},
		{"tau count", Spec{Cap: []CapSpec{{Layers: "1:4", Tau: []float64{1, 2}}}}, ax, "cap[0].tau", "2 cap thresholds for 3 capped layers"},
		{"measure layer beyond the model", Spec{MeasureLayer: ptr(6)}, ax, "measure_layer", "out of range"},
		{"measure layer without axis", Spec{MeasureLayer: ptr(2)}, nil, "measure_layer", "needs an axis"},
		{"axis of another shape", Spec{}, &axis.Axis{Model: "other", Layers: 6, Hidden: 9, Axis: make([][]float32, 6)}, "axis", "hidden size 9 but the model has 8"},
		{"missing vector file", Spec{Add: []AddSpec{{Vector: "/nonexistent/v.gguf", Coef: 1}}}, ax, "add[0].vector", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(t.Context(), tc.spec, tc.ax, handModel)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, tc.want) {
				t.Fatalf("error %v, want a FieldError on %q containing %q", err, tc.field, tc.want)
			}
		})
	}
}

// TestResolveAddFromAxisFile: an axis file as the add's vector adds coef x axis[l] in raw units,
// coef x |default_mean[l]| x unit axis in norm units (here |default_mean| = 5, so 0.5 x 5 x
// (0.6, 0.8) = (1.5, 2)), and becomes the axis of the projections when no other is given.
func TestResolveAddFromAxisFile(t *testing.T) {
	a := handAxis(nil)
	for range a.Layers {
		dm := make([]float32, a.Hidden)
		dm[0], dm[1] = 4, 3
		a.DefaultMean = append(a.DefaultMean, dm)
	}
	path := t.TempDir() + "/axis.safetensors"
	if err := axis.Write(path, a); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		add   AddSpec
		units string
		want  [2]float32 // at components 2 and 3 of layer 2's add
	}{
		{"raw", AddSpec{Vector: path, Layers: "2", Coef: 2}, "raw", [2]float32{6, 8}},
		{"unit", AddSpec{Vector: path, Layers: "2", Coef: 2, Units: UnitsUnit}, "unit", [2]float32{1.2, 1.6}},
		{"norm", AddSpec{Vector: path, Layers: "2", Coef: 0.5, NormUnits: true}, "norm", [2]float32{1.5, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resolve(t.Context(), Spec{Add: []AddSpec{tc.add}}, nil, handModel)
			if err != nil {
				t.Fatal(err)
			}
			add := s.Compiled.Hooks[2].Add
			if math.Abs(float64(add[2]-tc.want[0])) > 1e-5 || math.Abs(float64(add[3]-tc.want[1])) > 1e-5 {
				t.Fatalf("add at layer 2 = %v, want %v at components 2, 3", add, tc.want)
			}
			if s.AddUnits != tc.units || s.AddCoef != tc.add.Coef || s.Axis == nil || s.MeasureLayer != 3 {
				t.Fatalf("setup units %q coef %g axis %v measure %d, want %q %g, the file's axis, middle layer 3",
					s.AddUnits, s.AddCoef, s.Axis != nil, s.MeasureLayer, tc.units, tc.add.Coef)
			}
		})
	}
	if _, err := Resolve(t.Context(), Spec{Add: []AddSpec{{Vector: path, Coef: 1}}}, nil, handModel); err == nil || !strings.Contains(err.Error(), "add[0].layers") {
		t.Fatalf("an axis file without add layers: %v", err)
	}
}

// TestResolveDefaultCap: cap.layers "default" takes the reference's capping setting of the
// axis's model from axis.KnownModels (a row planted for the hand axis's architecture and shape):
// its layers and, unless a threshold is given, its percentile; an axis of a model the reference
// has no setting for is refused with the field named.
func TestResolveDefaultCap(t *testing.T) {
	saved := axis.KnownModels
	t.Cleanup(func() { axis.KnownModels = saved })
	axis.KnownModels = append(slices.Clone(saved), axis.KnownModel{Name: "test/hand-6", Architecture: "HandForCausalLM",
		Layers: 6, Hidden: 8, AxisLayer: 3, CapLayers: "2:4", CapPercentile: 10})
	known := handAxis(map[string]string{axis.ArchitectureKey: "HandForCausalLM"})
	for _, tc := range []struct {
		name string
		cap  CapSpec
		want []LayerTau
		pct  float64
	}{
		// Taus are p/100 + layer by construction (handAxis).
		{"layers and percentile from the reference", CapSpec{Layers: DefaultCapLayers}, []LayerTau{{2, 2.1}, {3, 3.1}}, 10},
		{"reference layers, percentile given", CapSpec{Layers: DefaultCapLayers, Percentile: ptr(25.0)}, []LayerTau{{2, 2.25}, {3, 3.25}}, 25},
		{"reference layers, tau given", CapSpec{Layers: DefaultCapLayers, Tau: []float64{-1}}, []LayerTau{{2, -1}, {3, -1}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resolve(t.Context(), Spec{Cap: []CapSpec{tc.cap}}, known, handModel)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.Caps, tc.want) || s.CapPercentile != tc.pct {
				t.Fatalf("caps %v (percentile %g), want %v (%g)", s.Caps, s.CapPercentile, tc.want, tc.pct)
			}
			if !strings.Contains(s.Description, "test/hand-6") {
				t.Fatalf("description %q does not say where the layers came from", s.Description)
			}
		})
	}
	_, err := Resolve(t.Context(), Spec{Cap: []CapSpec{{Layers: DefaultCapLayers}}}, handAxis(nil), handModel)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "cap[0].layers" || !strings.Contains(err.Error(), "no capping setting") {
		t.Fatalf("unknown model: got %v, want a cap.layers error saying the reference has no setting", err)
	}
}
