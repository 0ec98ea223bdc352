package steer

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"tether/axis"
	"tether/engine"
)

// otherAxis is a second axis for handModel: at layer l, 2 e_{(l+3) mod 8} (unit e_{(l+3) mod 8},
// orthogonal to handAxis's 0.6 e_l + 0.8 e_{l+1}), calibrated at percentile 25 with
// tau = 0.25 - l.
func otherAxis() *axis.Axis {
	const L, H = 6, 8
	a := &axis.Axis{Model: "hand", Layers: L, Hidden: H, Percentiles: []float64{25}}
	a.Tau = [][]float32{make([]float32, L)}
	for l := range L {
		v := make([]float32, H)
		v[(l+3)%H] = 2
		a.Axis = append(a.Axis, v)
		a.Tau[0][l] = 0.25 - float32(l)
	}
	return a
}

// basis is x e_i in dimension 8.
func basis(i int, x float32) []float32 {
	v := make([]float32, 8)
	v[i] = x
	return v
}

// handUnit is handAxis's unit axis at layer l.
func handUnit(l int) []float32 {
	v := make([]float32, 8)
	v[l], v[l+1] = 0.6, 0.8
	return v
}

// multiSpec caps, ablates and adds along the default axis (handAxis) and "b" (otherAxis).
func multiSpec() Spec {
	return Spec{
		Cap:    []CapSpec{{Layers: "1:3", Tau: []float64{0.5}}, {Axis: "b", Layers: "2", Percentile: ptr(25.0)}},
		Ablate: []AblateSpec{{Vector: "b", Layers: "3", Value: 0.25}, {Layers: "3"}},
		Add:    []AddSpec{{Vector: "b", Layers: "2:4", Coef: 2, Units: UnitsUnit}, {Vector: "b", Layers: "3", Coef: -0.5}},
	}
}

// sameHooks compares hooks with a tolerance on vectors (the unit vectors are computed by
// normalising) and exactly on everything else.
func sameHooks(t *testing.T, got, want engine.Hooks) {
	t.Helper()
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		t.Fatalf("hooked layers %v, want %v", sortedKeys(got), sortedKeys(want))
	}
	near := func(a, b []float32) bool { return len(a) == len(b) && maxAbsDiff(a, b) <= 1e-6 }
	for l, w := range want {
		g := got[l]
		if (g.Add == nil) != (w.Add == nil) || (w.Add != nil && !near(g.Add, w.Add)) {
			t.Errorf("layer %d: add %v, want %v", l, g.Add, w.Add)
		}
		if g.Record != w.Record || g.NewestOnly != w.NewestOnly || len(g.Clamps) != len(w.Clamps) {
			t.Errorf("layer %d: record %v newest %v %d clamps, want %v %v %d", l, g.Record, g.NewestOnly, len(g.Clamps), w.Record, w.NewestOnly, len(w.Clamps))
			continue
		}
		for k := range w.Clamps {
			gc, wc := g.Clamps[k], w.Clamps[k]
			if !near(gc.Dir, wc.Dir) || gc.Lo != wc.Lo || gc.Hi != wc.Hi {
				t.Errorf("layer %d clamp %d: %v [%g, %g], want %v [%g, %g]", l, k, gc.Dir, gc.Lo, gc.Hi, wc.Dir, wc.Lo, wc.Hi)
			}
		}
	}
}

// TestResolveSeveralAxes: caps, ablations and adds along two axes resolve to the hooks written
// here from the formulas: on each layer the sum of the adds (2 x unit b + (-0.5) x raw b at
// layer 3: 2 e_6 - e_6 = e_6), then the caps in the order of the list, then the ablations in
// the order of theirs; the projection axis (the default one) is recorded first on every
// intervened layer and the measure layer, by an open clamp where the first clamp is along b.
func TestResolveSeveralAxes(t *testing.T) {
	inf := float32(math.Inf(1))
	s, err := ResolveAxes(t.Context(), multiSpec(), Axes{"": handAxis(nil), "b": otherAxis()}, handModel)
	if err != nil {
		t.Fatal(err)
	}
	want := engine.Hooks{
		1: {Clamps: []engine.Clamp{{Dir: handUnit(1), Lo: 0.5, Hi: inf}}, Record: true},
		2: {Add: basis(5, 2), Clamps: []engine.Clamp{{Dir: handUnit(2), Lo: 0.5, Hi: inf}, {Dir: basis(5, 1), Lo: 0.25 - 2, Hi: inf}}, Record: true},
		3: {Add: basis(6, 1), Clamps: []engine.Clamp{{Dir: handUnit(3), Lo: -inf, Hi: inf}, {Dir: basis(6, 1), Lo: 0.25, Hi: 0.25},
			{Dir: handUnit(3), Lo: 0, Hi: 0}}, Record: true},
	}
	sameHooks(t, s.Compiled.Hooks, want)
	if wantCaps := []LayerTau{{1, 0.5}, {2, 0.5}, {2, -1.75}}; !slices.Equal(s.Caps, wantCaps) {
		t.Errorf("caps %v, want %v", s.Caps, wantCaps)
	}
	if s.MeasureLayer != 3 || s.Axis == nil || s.Axis.Axis[1][1] != 3 || s.CapPercentile != 0 || s.AddCoef != 2 || s.AddUnits != UnitsUnit {
		t.Errorf("measure layer %d, axis %v, percentile %g, add %g %s: want 3, the default axis, 0 (the first cap has taus), 2 unit",
			s.MeasureLayer, s.Axis != nil, s.CapPercentile, s.AddCoef, s.AddUnits)
	}
	if !strings.Contains(s.Description, `on layers 2 at tau [-1.75] (percentile 25 of the axis file) on axis "b"`) {
		t.Errorf("description %q does not name axis b's cap", s.Description)
	}

	// Telemetry reads the first clamp of each layer, and Capped only from caps along the
	// projection axis: at layer 2 the second clamp (b's cap) acting is not a capped record.
	res := engine.Result{Telemetry: []map[int]engine.HookRecord{
		{1: {Before: []float32{1}, After: []float32{2}, Acted: []bool{true}},
			2: {Before: []float32{3, 4}, After: []float32{5, 6}, Acted: []bool{false, true}},
			3: {Before: []float32{7, 8, 9}, After: []float32{10, 11, 12}, Acted: []bool{false, true, true}}},
		{2: {Before: []float32{-1, -2}, After: []float32{0.5, 0}, Acted: []bool{true, false}}},
	}}
	wantRecs := []TelemetryRecord{{0, 1, 1, 2, true}, {0, 2, 3, 5, false}, {0, 3, 7, 10, false}, {1, 2, -1, 0.5, true}}
	if got := s.Compiled.Telemetry(res); !slices.Equal(got, wantRecs) {
		t.Errorf("telemetry %v, want %v", got, wantRecs)
	}
}

// TestResolveProjectionAxis: the projection axis is projections.axis when given (its layers
// recorded too), else the default axis, else the first cap's, else the first ablation's, else
// the first add's vector when it is an axis; a layer capped only along another axis records
// the projection axis by an open clamp put first.
func TestResolveProjectionAxis(t *testing.T) {
	a, b := handAxis(nil), otherAxis()
	both := Axes{"": a, "b": b}
	for _, tc := range []struct {
		name string
		spec Spec
		axes Axes
		want *axis.Axis
	}{
		{"projections.axis", Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{0}}}, Projections: &ProjectionSpec{Axis: "b"}}, both, b},
		{"the default axis", Spec{Cap: []CapSpec{{Axis: "b", Layers: "1", Tau: []float64{0}}}}, both, a},
		{"the first cap's", Spec{Cap: []CapSpec{{Axis: "b", Layers: "1", Tau: []float64{0}}}, Ablate: []AblateSpec{{Vector: "a", Layers: "2"}}}, Axes{"a": a, "b": b}, b},
		{"the first ablation's", Spec{Ablate: []AblateSpec{{Vector: "b", Layers: "2"}}, Add: []AddSpec{{Vector: "a", Layers: "1", Coef: 1}}}, Axes{"a": a, "b": b}, b},
		{"the first add's", Spec{Add: []AddSpec{{Vector: "b", Layers: "1", Coef: 1}, {Vector: "a", Layers: "1", Coef: 1}}}, Axes{"a": a, "b": b}, b},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ResolveAxes(t.Context(), tc.spec, tc.axes, handModel)
			if err != nil {
				t.Fatal(err)
			}
			if s.Axis != tc.want {
				t.Fatalf("projection axis %p, want %p", s.Axis, tc.want)
			}
		})
	}

	s, err := ResolveAxes(t.Context(), Spec{Cap: []CapSpec{{Layers: "1", Tau: []float64{0}}}, Projections: &ProjectionSpec{Axis: "b", Layers: "0"}}, both, handModel)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.ProjectionLayers, []int{0}) || !slices.Equal(s.Compiled.RecordedLayers(), []int{0, 1, 3}) {
		t.Fatalf("projection layers %v, recorded %v: want [0] and the projection, capped and measure layers [0 1 3]", s.ProjectionLayers, s.Compiled.RecordedLayers())
	}
	inf := float32(math.Inf(1))
	sameHooks(t, s.Compiled.Hooks, engine.Hooks{
		0: {Clamps: []engine.Clamp{{Dir: basis(3, 1), Lo: -inf, Hi: inf}}, Record: true},
		1: {Clamps: []engine.Clamp{{Dir: basis(4, 1), Lo: -inf, Hi: inf}, {Dir: handUnit(1), Lo: 0, Hi: inf}}, Record: true},
		3: {Clamps: []engine.Clamp{{Dir: basis(6, 1), Lo: -inf, Hi: inf}}, Record: true},
	})
}

// TestResolveMaxClamps: with Model.MaxClamps, a layer needing more clamps is refused naming the
// layers of the entry whose clamp is the first beyond the bound, counting the open clamp that
// records the projection axis; at the bound the spec resolves.
func TestResolveMaxClamps(t *testing.T) {
	axes := Axes{"": handAxis(nil), "b": otherAxis()}
	for _, tc := range []struct {
		bound int
		field string // "" resolves
	}{
		{1, "cap[1].layers"},    // layer 2: A's cap, b's cap
		{2, "ablate[1].layers"}, // layer 3: the open clamp along A, b's ablation, A's ablation
		{3, ""},
		{0, ""},
	} {
		m := handModel
		m.MaxClamps = tc.bound
		_, err := ResolveAxes(t.Context(), multiSpec(), axes, m)
		var fe *FieldError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("bound %d: %v", tc.bound, err)
		case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, "at most")):
			t.Errorf("bound %d: error %v, want a FieldError on %s", tc.bound, err, tc.field)
		}
	}
}

// TestResolveEntryErrors: errors about an entry name it with its index.
func TestResolveEntryErrors(t *testing.T) {
	a, b := handAxis(nil), otherAxis()
	cap0 := CapSpec{Layers: "1", Tau: []float64{0}}
	wide := &axis.Axis{Model: "other", Layers: 6, Hidden: 9, Axis: make([][]float32, 6)}
	for _, tc := range []struct {
		name  string
		spec  Spec
		axes  Axes
		field string
		want  string
	}{
		{"unknown cap axis", Spec{Cap: []CapSpec{cap0, {Axis: "c", Layers: "1", Tau: []float64{0}}}}, Axes{"": a, "b": b}, "cap[1].axis", `unknown axis "c": given: b`},
		{"no default axis", Spec{Cap: []CapSpec{{Axis: "b", Layers: "1", Tau: []float64{0}}, cap0}}, Axes{"b": b}, "cap[1]", "no axis file given"},
		{"uncalibrated percentile on b", Spec{Cap: []CapSpec{cap0, {Axis: "b", Layers: "1", Percentile: ptr(10.0)}}}, Axes{"": a, "b": b}, "cap[1].percentile", "not calibrated"},
		{"axis of another shape", Spec{Cap: []CapSpec{{Axis: "w", Layers: "1", Tau: []float64{0}}}}, Axes{"w": wide}, "cap[0].axis", "hidden size 9"},
		{"unknown ablation axis", Spec{Ablate: []AblateSpec{{Layers: "1"}, {Vector: "c", Layers: "1"}}}, Axes{"": a}, "ablate[1].vector", "unknown axis"},
		{"ablation layers", Spec{Ablate: []AblateSpec{{Layers: "1"}, {Vector: "b", Layers: "7"}}}, Axes{"": a, "b": b}, "ablate[1].layers", "out of range"},
		{"named add without layers", Spec{Add: []AddSpec{{Vector: "b", Layers: "1", Coef: 1}, {Vector: "b", Coef: 1}}}, Axes{"b": b}, "add[1].layers", "needed when the vector is an axis"},
		{"unknown projection axis", Spec{Projections: &ProjectionSpec{Axis: "c"}}, Axes{"": a}, "projections.axis", "unknown axis"},
		{"projection layers", Spec{Projections: &ProjectionSpec{Layers: "9"}}, Axes{"": a}, "projections.layers", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ResolveAxes(t.Context(), tc.spec, tc.axes, handModel)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Problem, tc.want) {
				t.Fatalf("error %v, want a FieldError on %q containing %q", err, tc.field, tc.want)
			}
		})
	}
}
