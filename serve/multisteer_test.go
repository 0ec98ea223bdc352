package serve

import (
	"math"
	"testing"

	"tether/axis"
	"tether/engine"
	"tether/steer"
	"tether/tokenizer"
)

// handCase is a request of TestSeveralAxesExact with the engine hooks written for it from the
// formulas of docs/server.md, and where its projections are read in them: on each recorded
// layer the first clamp (along the projection axis), capped when one of the clamps caps lists
// for the layer (caps along the projection axis) acted.
type handCase struct {
	name     string
	steering map[string]any // nil: none
	hooks    engine.Hooks
	recorded []int
	caps     map[int][]int
}

// records reads a hand case's projections from a generation with its hooks.
func (c handCase) records(res engine.Result) []steer.TelemetryRecord {
	var out []steer.TelemetryRecord
	for i, per := range res.Telemetry {
		for _, l := range c.recorded {
			rec := per[l]
			capped := false
			for _, k := range c.caps[l] {
				capped = capped || rec.Acted[k]
			}
			out = append(out, steer.TelemetryRecord{Token: i, Layer: l, Before: rec.Before[0], After: rec.After[0], Capped: capped})
		}
	}
	return out
}

// TestSeveralAxesExact sends, at once through the SDK (so that they share batches), requests
// with caps on two axes, two adds of different vectors on overlapping layers, ablations on two
// axes, and none. Each answer's text and projections must equal engine.Generate alone, with
// the same seed, with hooks written here from the formulas: a cap is a floor Clamp{u, tau,
// +Inf}, an ablation Clamp{u, v, v}, the adds of a layer sum into one Add, clamps go in the
// order of the request's lists, and a layer whose first clamp is not along the projection axis
// records it by an open clamp put first.
func TestSeveralAxesExact(t *testing.T) {
	f := startServer(t, options{second: true})
	A, B := f.ax, f.second
	unit := func(v []float32) []float32 {
		u, err := axis.UnitVector(v)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	inf := float32(math.Inf(1))
	floor := func(u []float32, tau float32) engine.Clamp { return engine.Clamp{Dir: u, Lo: tau, Hi: inf} }
	open := func(u []float32) engine.Clamp { return engine.Clamp{Dir: u, Lo: -inf, Hi: inf} }
	set := func(u []float32, v float32) engine.Clamp { return engine.Clamp{Dir: u, Lo: v, Hi: v} }
	sum := func(coefs []float32, vecs ...[]float32) []float32 {
		out := make([]float32, len(vecs[0]))
		for i, v := range vecs {
			for j, x := range v {
				out[j] += coefs[i] * x
			}
		}
		return out
	}
	const p50 = 1 // the index of percentile 50 in the test axes
	ua, ub := func(l int) []float32 { return unit(A.Axis[l]) }, func(l int) []float32 { return unit(B.Axis[l]) }
	cases := []handCase{
		{name: "caps on two axes",
			steering: map[string]any{"cap": []any{
				map[string]any{"axis": "assistant", "layers": "1:3", "percentile": 50},
				map[string]any{"axis": "second", "layers": []int{2, 3}, "percentile": 50}},
				"projections": map[string]any{"axis": "assistant"}},
			hooks: engine.Hooks{
				1: {Clamps: []engine.Clamp{floor(ua(1), A.Tau[p50][1])}, Record: true},
				2: {Clamps: []engine.Clamp{floor(ua(2), A.Tau[p50][2]), floor(ub(2), B.Tau[p50][2])}, Record: true},
				3: {Clamps: []engine.Clamp{open(ua(3)), floor(ub(3), B.Tau[p50][3])}, Record: true}},
			recorded: []int{1, 2, 3}, caps: map[int][]int{1: {0}, 2: {0}}},
		{name: "two adds",
			steering: map[string]any{"add": []any{
				map[string]any{"vector": "assistant", "layers": "1:3", "coef": 3, "units": "unit"},
				map[string]any{"vector": "second", "layers": "2", "coef": -2, "units": "raw"}},
				"projections": map[string]any{"axis": "second"}},
			hooks: engine.Hooks{
				1: {Add: sum([]float32{3}, ua(1)), Clamps: []engine.Clamp{open(ub(1))}, Record: true},
				2: {Add: sum([]float32{3, -2}, ua(2), B.Axis[2]), Clamps: []engine.Clamp{open(ub(2))}, Record: true}},
			recorded: []int{1, 2}},
		{name: "ablations on two axes",
			steering: map[string]any{"ablate": []any{
				map[string]any{"vector": "second", "layers": "1", "value": 0.5},
				map[string]any{"vector": "assistant", "layers": "1:3"}},
				"projections": map[string]any{"axis": "assistant", "layers": "0:4"}},
			hooks: engine.Hooks{
				0: {Clamps: []engine.Clamp{open(ua(0))}, Record: true},
				1: {Clamps: []engine.Clamp{open(ua(1)), set(ub(1), 0.5), set(ua(1), 0)}, Record: true},
				2: {Clamps: []engine.Clamp{set(ua(2), 0)}, Record: true},
				3: {Clamps: []engine.Clamp{open(ua(3))}, Record: true}},
			recorded: []int{0, 1, 2, 3}},
		{name: "untouched"},
	}
	msgs := []tokenizer.Message{{Role: "system", Content: "You are a pirate."}, {Role: "user", Content: "hello there, who are you?"}}
	const maxNew, temp, seed = 14, 0.9, 42
	steerings := make([]any, len(cases))
	for i, c := range cases {
		if c.steering != nil {
			steerings[i] = c.steering
		}
	}
	results := f.chatConcurrently(t, steerings, msgs, maxNew, temp, seed)
	for i, c := range cases {
		res := f.generateWith(t, c.hooks, msgs, maxNew, temp, seed)
		g := results[i]
		if g.text != res.Text {
			t.Errorf("%s: served text %q, engine.Generate alone with the hand-written hooks %q", c.name, g.text, res.Text)
		}
		if c.steering == nil {
			if g.recs != nil || g.sum != nil {
				t.Errorf("%s: projections without asking", c.name)
			}
			continue
		}
		want := c.records(res)
		if len(want) == 0 || !sameRecords(g.recs, want) {
			t.Errorf("%s: served projections\n%v\nfrom the hand-written hooks\n%v", c.name, g.recs, want)
		}
		ws := steer.Summarize(want, 2) // neither axis has an axis_layer: the middle layer of 4
		if g.sum == nil || g.sum.Layer != 2 || math.Abs(g.sum.MeanProjection-ws.MeanAfter) > 1e-9 || g.sum.CappedTokens != ws.CappedTokens {
			t.Errorf("%s: summary %+v, want layer 2 mean %v capped %d", c.name, g.sum, ws.MeanAfter, ws.CappedTokens)
		}
		switch c.name {
		case "caps on two axes":
			// Both axes' caps must act, or the case would not tell them from one.
			actedA, actedB := false, false
			for _, per := range res.Telemetry {
				actedA = actedA || per[1].Acted[0] || per[2].Acted[0]
				actedB = actedB || per[2].Acted[1] || per[3].Acted[1]
			}
			if !actedA || !actedB {
				t.Errorf("%s: the cap on assistant acted %v, on second %v: want both", c.name, actedA, actedB)
			}
		case "ablations on two axes":
			for _, r := range g.recs {
				if (r.Layer == 1 || r.Layer == 2) && math.Abs(float64(r.After)) > 1e-4 {
					t.Errorf("%s: token %d layer %d: projection %g after ablating it to 0", c.name, r.Token, r.Layer, r.After)
				}
			}
		}
	}
}
