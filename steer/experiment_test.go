package steer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
)

// referenceCap is the reference project's _apply_cap (steering.py) for one
// activation, in float64: v' = v/(|v|+1e-8), h - max(0, <h,v'> - c) v'.
func referenceCap(h []float32, v []float32, c float64) []float64 {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n) + 1e-8
	var p float64
	for i := range h {
		p += float64(h[i]) * float64(v[i]) / n
	}
	excess := math.Max(0, p-c)
	out := make([]float64, len(h))
	for i := range h {
		out[i] = float64(h[i]) - excess*float64(v[i])/n
	}
	return out
}

// TestExperimentCapsMatchReference runs a reference-style experiment (two
// layers, vectors of norm far from 1) through the engine and compares each
// capped layer with the reference formula applied to that layer's input
// stream.
func TestExperimentCapsMatchReference(t *testing.T) {
	m := loadTinyModel(t, testmodels.Backend())
	cfg := m.Config()
	H, L := cfg.HiddenSize, cfg.NumLayers
	rng := rand.New(rand.NewPCG(5, 6))
	seqs := [][]int{randomTokens(rng, 11, cfg.VocabSize), randomTokens(rng, 6, cfg.VocabSize)}
	base := forwardAll(t, m, seqs, nil)
	vec := func(scale float64) []float32 {
		v := make([]float32, H)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * scale)
		}
		return v
	}
	vectors := map[string]axis.RefVector{"layer_1": {Layer: 1, Vector: vec(7)}, "layer_3": {Layer: 3, Vector: vec(0.3)}}
	// Caps at the 40th percentile of the projections on v/|v|, so that the
	// ceiling acts on most positions and not on others.
	refCap := func(name string, res map[int][][][]float32) float64 {
		u, _ := axis.UnitVector(vectors[name].Vector)
		return percentile(projectionsOf(res, vectors[name].Layer, u), 40)
	}
	c1 := refCap("layer_1", base.Captured)
	onlyFirst := forwardAll(t, m, seqs, planFor(t, vectors, map[string]float64{"layer_1": c1}, H, L))
	c3 := refCap("layer_3", onlyFirst.Captured)
	caps := map[string]float64{"layer_1": c1, "layer_3": c3}
	full := forwardAll(t, m, seqs, planFor(t, vectors, caps, H, L))

	for _, tc := range []struct {
		name  string
		input map[int][][][]float32 // the stream the reference would see at the layer
	}{{"layer_1", base.Captured}, {"layer_3", onlyFirst.Captured}} {
		l := vectors[tc.name].Layer
		acted := 0
		for s := range seqs {
			for pos, h := range tc.input[l][s] {
				want := referenceCap(h, vectors[tc.name].Vector, caps[tc.name])
				got := full.Captured[l][s][pos]
				if want[0] != float64(h[0]) {
					acted++
				}
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*math.Max(1, math.Abs(want[i])) {
						t.Fatalf("%s seq %d pos %d [%d]: tether %v, reference %v", tc.name, s, pos, i, got[i], want[i])
					}
				}
			}
		}
		if acted == 0 {
			t.Errorf("%s: the reference cap acted nowhere: the comparison proves nothing", tc.name)
		}
	}
}

// planFor builds the plan of a capping config with the given caps.
func planFor(t *testing.T, vectors map[string]axis.RefVector, caps map[string]float64, hidden, numLayers int) *Plan {
	t.Helper()
	exp := axis.RefExperiment{ID: "exp"}
	for _, name := range []string{"layer_1", "layer_3"} {
		if c, ok := caps[name]; ok {
			exp.Interventions = append(exp.Interventions, axis.RefIntervention{Vector: name, Cap: c, HasCap: true})
		}
	}
	cfg := &axis.CappingConfig{Path: "test", Vectors: vectors, Experiments: []axis.RefExperiment{exp}}
	ac, err := cfg.Caps("exp")
	if err != nil {
		t.Fatal(err)
	}
	ivs, err := ExperimentCaps(ac, hidden, numLayers)
	if err != nil {
		t.Fatal(err)
	}
	return &Plan{Interventions: ivs}
}

// projectionsOf returns <h,u> at every position of every sequence.
func projectionsOf(captured map[int][][][]float32, layer int, u []float32) []float64 {
	var out []float64
	for _, seq := range captured[layer] {
		for _, h := range seq {
			out = append(out, dot(h, u))
		}
	}
	return out
}

func TestExperimentCapsErrors(t *testing.T) {
	caps := []axis.Cap{{Layer: 2, Dir: []float32{1, 0, 0}, Tau: 1, Vector: "layer_2"}}
	if _, err := ExperimentCaps(caps, 3, 2); err == nil || !strings.Contains(err.Error(), "layer 2") || !strings.Contains(err.Error(), "2 layers") {
		t.Errorf("layer past the model: %v", err)
	}
	if _, err := ExperimentCaps(caps, 4, 6); err == nil || !strings.Contains(err.Error(), "hidden size is 4") || !strings.Contains(err.Error(), "layer_2") {
		t.Errorf("hidden size mismatch: %v", err)
	}
}
