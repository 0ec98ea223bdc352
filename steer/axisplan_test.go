package steer

import (
	"bufio"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"tether/axis"
	"tether/engine"
	"tether/internal/testmodels"
)

// syntheticAxis builds an axis file the way the method does, from a random
// model's activations: "default" prompts use token ids from one range,
// "role" prompts from another; axis = mean(default) - mean(role) per layer;
// tau rows are the 25th and 50th percentiles of the default projections.
func syntheticAxis(t *testing.T, m *engine.Model) (*axis.Axis, [][]int, [][]int) {
	t.Helper()
	cfg := m.Config()
	H, L := cfg.HiddenSize, cfg.NumLayers
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := func(lo, hi int) [][]int {
		var out [][]int
		for range 4 {
			seq := []int{1}
			for range 10 {
				seq = append(seq, lo+rng.IntN(hi-lo))
			}
			out = append(out, seq)
		}
		return out
	}
	def, role := prompts(3, 120), prompts(180, 300)
	all := make([]int, L)
	for i := range all {
		all[i] = i
	}
	mean := func(seqs [][]int) ([][]float32, *engine.ForwardResult) {
		res, err := m.Forward(context.Background(), seqs, engine.ForwardOptions{CaptureLayers: all})
		if err != nil {
			t.Fatal(err)
		}
		out := make([][]float32, L)
		for l := range L {
			sum := make([]float64, H)
			n := 0
			for _, seq := range res.Captured[l] {
				for _, h := range seq[1:] { // skip BOS
					for i, x := range h {
						sum[i] += float64(x)
					}
					n++
				}
			}
			out[l] = make([]float32, H)
			for i := range sum {
				out[l][i] = float32(sum[i] / float64(n))
			}
		}
		return out, res
	}
	dm, defRes := mean(def)
	rm, _ := mean(role)
	a := &axis.Axis{Model: "tiny-random", Layers: L, Hidden: H, DefaultMean: dm,
		RoleNames: []string{"other"}, RoleMeans: [][][]float32{rm}, Percentiles: []float64{25, 50}}
	for l := range L {
		v := make([]float32, H)
		for i := range v {
			v[i] = dm[l][i] - rm[l][i]
		}
		a.Axis = append(a.Axis, v)
	}
	a.Tau = make([][]float32, 2)
	for pi, p := range a.Percentiles {
		for l := range L {
			u, err := a.Unit(l)
			if err != nil {
				t.Fatal(err)
			}
			var projs []float64
			for _, seq := range defRes.Captured[l] {
				for _, h := range seq[1:] {
					projs = append(projs, dot(h, u))
				}
			}
			a.Tau[pi] = append(a.Tau[pi], float32(percentile(projs, p)))
		}
	}
	path := tempPath(t, "axis.safetensors")
	if err := axis.Write(path, a); err != nil {
		t.Fatal(err)
	}
	back, err := axis.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return back, def, role
}

func TestCapSignOnSyntheticAxis(t *testing.T) {
	m := loadTinyModel(t, testmodels.Backend())
	cfg := m.Config()
	a, _, role := syntheticAxis(t, m)
	if err := a.CheckModel(axis.ModelInfo{Hidden: cfg.HiddenSize, Layers: cfg.NumLayers}, false); err != nil {
		t.Fatal(err)
	}
	layers, err := ParseLayers("2:5", cfg.NumLayers)
	if err != nil {
		t.Fatal(err)
	}
	taus, err := AxisTaus(a, layers, 25)
	if err != nil {
		t.Fatal(err)
	}
	// The default projects high: its mean is above the role mean on every
	// layer (by construction of axis = default - role).
	for _, l := range layers {
		u, _ := a.Unit(l)
		if dot(a.DefaultMean[l], u) <= dot(a.RoleMeans[0][l], u) {
			t.Fatalf("layer %d: default mean does not project above the role mean", l)
		}
	}
	run := func(capped bool) (*Compiled, []TelemetryRecord) {
		p := Plan{Record: true, Monitor: map[int][]float32{}}
		for _, l := range layers {
			p.Monitor[l] = a.Axis[l]
		}
		if capped {
			ivs, err := AxisCaps(a, layers, taus)
			if err != nil {
				t.Fatal(err)
			}
			p.Interventions = ivs
		}
		c, err := Compile(p, cfg.HiddenSize, cfg.NumLayers)
		if err != nil {
			t.Fatal(err)
		}
		res, err := m.Generate(context.Background(), []engine.Request{{Prompt: role[0], MaxNewTokens: 16, IgnoreEOS: true}},
			engine.GenerateOptions{Hooks: c.Hooks})
		if err != nil {
			t.Fatal(err)
		}
		recs := c.Telemetry(res[0])
		if len(recs) != len(res[0].Tokens)*len(layers) {
			t.Fatalf("%d telemetry records for %d tokens x %d layers", len(recs), len(res[0].Tokens), len(layers))
		}
		return c, recs
	}
	_, free := run(false)
	tauOf := map[int]float32{}
	for i, l := range layers {
		tauOf[l] = taus[i]
	}
	belowFree := 0
	for _, r := range free {
		if r.Capped || r.Before != r.After {
			t.Errorf("uncapped run: record %+v shows an intervention", r)
		}
		if r.Before < tauOf[r.Layer] {
			belowFree++
		}
	}
	if belowFree == 0 {
		t.Fatal("the uncapped run on a role prompt never went below tau: the synthetic axis does not separate")
	}
	c, capped := run(true)
	acted := 0
	for _, r := range capped {
		tau := tauOf[r.Layer]
		if float64(r.After) < float64(tau)-1e-6*math.Max(1, math.Abs(float64(tau))) {
			t.Errorf("capped run: token %d layer %d projection %g below tau %g", r.Token, r.Layer, r.After, tau)
		}
		if r.Capped != (r.Before < tau) && math.Abs(float64(r.Before-tau)) > 1e-6 {
			t.Errorf("capped run: token %d layer %d: capped=%v with before %g, tau %g", r.Token, r.Layer, r.Capped, r.Before, tau)
		}
		if r.Capped {
			acted++
		}
	}
	if acted == 0 {
		t.Fatal("the cap never acted on a role prompt")
	}
	// Token 0 sees the same prompt, so the lowest capped layer's projection
	// before capping equals the uncapped run's.
	if free[0].Layer != layers[0] || math.Abs(float64(free[0].Before-capped[0].Before)) > 1e-6 {
		t.Errorf("token 0 layer %d: before %g capped vs %g uncapped", layers[0], capped[0].Before, free[0].Before)
	}
	s := Summarize(capped, layers[1])
	if s.Tokens != 16 || s.CappedTokens == 0 || s.MeanAfter < float64(tauOf[layers[1]])-1e-6 {
		t.Errorf("summary %+v", s)
	}
	if got := c.RecordedLayers(); len(got) != len(layers) {
		t.Errorf("recorded layers %v, want %v", got, layers)
	}

	// --telemetry: JSONL, one object per token and layer, read back equal.
	path := tempPath(t, "telemetry.jsonl")
	if err := WriteTelemetryFile(path, capped); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	i := 0
	for sc.Scan() {
		var obj map[string]any
		if err := json.Unmarshal(sc.Bytes(), &obj); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"token", "layer", "before", "after", "capped"} {
			if _, ok := obj[key]; !ok {
				t.Fatalf("line %d lacks %q: %s", i, key, sc.Text())
			}
		}
		var r TelemetryRecord
		json.Unmarshal(sc.Bytes(), &r)
		if r != capped[i] {
			t.Fatalf("line %d: %+v, wrote %+v", i, r, capped[i])
		}
		i++
	}
	if i != len(capped) {
		t.Fatalf("read %d lines, wrote %d", i, len(capped))
	}
}

func TestAxisErrors(t *testing.T) {
	const H, L = 8, 4
	a := &axis.Axis{Layers: L, Hidden: H, Percentiles: []float64{25}, Tau: [][]float32{{1, 2, 3, 4}}}
	for range L {
		v := make([]float32, H)
		v[1] = 2
		a.Axis = append(a.Axis, v)
		a.DefaultMean = append(a.DefaultMean, v)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"wrong hidden", a.CheckModel(axis.ModelInfo{Hidden: H + 1, Layers: L}, false), "hidden size 8 but the model has 9"},
		{"wrong layers", a.CheckModel(axis.ModelInfo{Hidden: H, Layers: L + 2}, false), "4 layers but the model has 6"},
		{"percentile not calibrated", func() error { _, err := AxisTaus(a, []int{1}, 10); return err }(), "percentile 10 is not calibrated"},
		{"tau count", func() error { _, err := ExpandTaus([]float32{1, 2}, []int{1, 2, 3}); return err }(), "2 cap thresholds for 3 capped layers"},
		{"NaN tau", func() error { _, err := ExpandTaus([]float32{float32(math.NaN())}, []int{1}); return err }(), "is NaN"},
		{"export layer 0", func() error { _, err := AxisControlVector(a, []int{0}, 1); return err }(), "layer 0 cannot be exported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", tc.err, tc.want)
			}
		})
	}
	if err := a.CheckModel(axis.ModelInfo{Hidden: H, Layers: L}, false); err != nil {
		t.Fatal(err)
	}
	taus, err := ExpandTaus([]float32{float32(math.Inf(-1))}, []int{1, 2})
	if err != nil || len(taus) != 2 || !math.IsInf(float64(taus[1]), -1) {
		t.Fatalf("ExpandTaus(-inf) = %v, %v", taus, err)
	}
	norms, err := NormsFromAxis(a, []int{2})
	if err != nil || norms[2] != 2 {
		t.Fatalf("NormsFromAxis = %v, %v; want 2 (|default_mean|)", norms, err)
	}
}

func TestMeanResidualNormsScaleAdds(t *testing.T) {
	m := loadTinyModel(t, testmodels.Backend())
	cfg := m.Config()
	rng := rand.New(rand.NewPCG(9, 9))
	prompt := append([]int{1}, randomTokens(rng, 8, cfg.VocabSize)...)
	norms, err := MeanResidualNorms(context.Background(), m, prompt, []int{1, 3})
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Forward(context.Background(), [][]int{prompt}, engine.ForwardOptions{CaptureLayers: []int{3}})
	if err != nil {
		t.Fatal(err)
	}
	var want float64
	for _, h := range res.Captured[3][0][1:] {
		want += math.Sqrt(dot(h, h))
	}
	want /= float64(len(prompt) - 1)
	if math.Abs(norms[3]-want) > 1e-9*want || norms[1] <= 0 {
		t.Fatalf("norms %v, layer 3 want %g", norms, want)
	}
	ivs := []Intervention{{Kind: KindAdd, Layer: 3, Vector: randomUnit(rng, cfg.HiddenSize), Alpha: 0.5}, {Kind: KindCap, Layer: 3, Tau: 7}}
	if err := ScaleByNorms(ivs, norms); err != nil {
		t.Fatal(err)
	}
	if ivs[0].Alpha != float32(0.5*norms[3]) || ivs[1].Tau != 7 {
		t.Fatalf("scaled %+v", ivs)
	}
	if err := ScaleByNorms([]Intervention{{Kind: KindAdd, Layer: 2}}, norms); err == nil {
		t.Fatal("no error for a layer without a norm")
	}
}

// TestAxisAddsUnits: raw adds coef x axis[layer] as stored (the reference's addition), unit adds
// coef x axis[layer]/|axis[layer]|; checked on an axis of norm 5 by hand.
func TestAxisAddsUnits(t *testing.T) {
	a := &axis.Axis{Model: "hand", Layers: 2, Hidden: 2, Axis: [][]float32{{1, 0}, {3, 4}}, DefaultMean: [][]float32{{0, 0}, {0, 0}}}
	for _, tc := range []struct {
		units string
		want  [2]float32 // Alpha * Vector at layer 1
	}{
		{UnitsRaw, [2]float32{6, 8}},
		{UnitsUnit, [2]float32{1.2, 1.6}},
	} {
		adds, err := AxisAdds(a, []int{1}, 2, tc.units)
		if err != nil {
			t.Fatal(err)
		}
		got := [2]float32{adds[0].Alpha * adds[0].Vector[0], adds[0].Alpha * adds[0].Vector[1]}
		if math.Abs(float64(got[0]-tc.want[0])) > 1e-6 || math.Abs(float64(got[1]-tc.want[1])) > 1e-6 || adds[0].Layer != 1 || adds[0].Kind != KindAdd {
			t.Errorf("%s: adds %+v: coef x vector %v, want %v", tc.units, adds[0], got, tc.want)
		}
	}
	if a.Axis[1][0] != 3 {
		t.Errorf("AxisAdds changed the axis: %v", a.Axis[1])
	}
	if _, err := AxisAdds(a, []int{1}, 2, "norm"); err == nil {
		t.Error("units \"norm\": no error")
	}
	if _, err := AxisAdds(a, []int{2}, 2, UnitsRaw); err == nil {
		t.Error("layer 2 of a 2-layer axis: no error")
	}
}
