package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// plantedObservations draws answers x = item effect + persona effect (per persona and item,
// variance between) + noise (variance within), in dim dimensions, for personas x anchors x
// items x seeds.
func plantedObservations(rng *rand.Rand, personas, anchors, items, seeds, dim int, between, within func(anchor int) float64) []VarObservation {
	var obs []VarObservation
	for p := range personas {
		for a := range anchors {
			for i := range items {
				eff := make([]float64, dim)
				for d := range eff {
					eff[d] = float64(i) + rng.NormFloat64()*math.Sqrt(between(a))
				}
				for s := range seeds {
					v := make([]float64, dim)
					for d := range v {
						v[d] = eff[d] + rng.NormFloat64()*math.Sqrt(within(a))
					}
					obs = append(obs, VarObservation{Persona: fmt.Sprintf("p%d", p), Anchor: fmt.Sprintf("a%d", a), Item: fmt.Sprintf("i%d", i), Seed: uint64(s + 1), Value: v})
				}
			}
		}
	}
	return obs
}

func fixedVar(v float64) func(int) float64 { return func(int) float64 { return v } }

// TestVarianceRecoversPlantedComponents checks the estimates against the planted variances,
// including the trace of the covariance for vectors (dim times the per-dimension variance).
func TestVarianceRecoversPlantedComponents(t *testing.T) {
	cases := []struct {
		name            string
		dim             int
		between, within float64
		finding         string
	}{
		{"noise dominates", 1, 0.2, 2, FindingSupported},
		{"persona dominates", 1, 3, 0.3, FindingNotSupported},
		{"vector trace", 16, 1, 0.5, FindingNotSupported},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 1))
			obs := plantedObservations(rng, 40, 1, 20, 5, c.dim, fixedVar(c.between), fixedVar(c.within))
			r, err := CompareVariance(obs, 300, 0.95, 1)
			if err != nil {
				t.Fatal(err)
			}
			wantW, wantB := c.within*float64(c.dim), c.between*float64(c.dim)
			if math.Abs(r.RunToRun.Variance-wantW) > 0.1*wantW || math.Abs(r.BetweenPersona.Variance-wantB) > 0.3*wantB {
				t.Errorf("run-to-run %+v, between %+v; planted %v, %v", r.RunToRun, r.BetweenPersona, wantW, wantB)
			}
			if r.Finding != c.finding {
				t.Errorf("finding %q (ratio %+v), want %q", r.Finding, r.Ratio, c.finding)
			}
			if r.Dimensions != c.dim || r.Personas != 40 {
				t.Errorf("dimensions %d personas %d", r.Dimensions, r.Personas)
			}
		})
	}
}

// TestVarianceIntervalCoverage draws 200 planted data sets and counts how often the 95%
// intervals hold the planted run-to-run variance, between-persona variance and their ratio:
// the rate must be within 3 binomial standard deviations of 0.95 (0.904 to 0.996).
func TestVarianceIntervalCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("coverage simulation")
	}
	const draws = 200
	const between, within = 1.0, 2.0
	rng := rand.New(rand.NewPCG(11, 3))
	var covW, covB, covR int
	for d := range draws {
		obs := plantedObservations(rng, 40, 1, 4, 4, 1, fixedVar(between), fixedVar(within))
		r, err := CompareVariance(obs, 400, 0.95, uint64(d+1))
		if err != nil {
			t.Fatal(err)
		}
		in := func(lo, hi, v float64) int {
			if lo <= v && v <= hi {
				return 1
			}
			return 0
		}
		covW += in(r.RunToRun.Low, r.RunToRun.High, within)
		covB += in(r.BetweenPersona.Low, r.BetweenPersona.High, between)
		covR += in(r.Ratio.Low, r.Ratio.High, within/between)
	}
	sd := math.Sqrt(0.95 * 0.05 / draws)
	for name, n := range map[string]int{"run_to_run": covW, "between_persona": covB, "ratio": covR} {
		rate := float64(n) / draws
		t.Logf("%s coverage %.3f", name, rate)
		if math.Abs(rate-0.95) > 3*sd {
			t.Errorf("%s: interval covered the planted value in %d of %d draws (%.3f), want 0.95 +- %.3f", name, n, draws, rate, 3*sd)
		}
	}
}

// TestVarianceZeroRunToRun: identical answers across seeds (temperature 0) give run-to-run
// exactly 0 and a trivial "not supported".
func TestVarianceZeroRunToRun(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	obs := plantedObservations(rng, 10, 1, 4, 3, 2, fixedVar(1), fixedVar(0))
	r, err := CompareVariance(obs, 100, 0.95, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.RunToRun.Variance != 0 || r.RunToRun.High != 0 || r.Finding != FindingNotSupported || r.Note == "" {
		t.Errorf("run-to-run %+v finding %q note %q", r.RunToRun, r.Finding, r.Note)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Error(err)
	}
}

// TestVarianceUnboundedRatio: without any between-persona variance the ratio is +Inf and is
// written as null.
func TestVarianceUnboundedRatio(t *testing.T) {
	var obs []VarObservation
	for p := range 3 {
		for s := range 2 {
			obs = append(obs, VarObservation{Persona: fmt.Sprint(p), Anchor: "a", Item: "i", Seed: uint64(s), Value: []float64{float64(s)}})
		}
	}
	r, err := CompareVariance(obs, 50, 0.95, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsInf(r.Ratio.Estimate, 1) || r.Finding != FindingSupported {
		t.Errorf("ratio %+v finding %q", r.Ratio, r.Finding)
	}
	data, err := json.Marshal(r.Ratio)
	if err != nil || string(data) != `{"estimate":null,"low":null,"high":null}` {
		t.Errorf("ratio JSON %s, %v", data, err)
	}
	var back Interval
	if err := json.Unmarshal(data, &back); err != nil || !math.IsInf(back.High, 1) {
		t.Errorf("read back %+v, %v", back, err)
	}
}

func TestVarianceBadInput(t *testing.T) {
	if _, err := CompareVariance(nil, 10, 0.95, 1); err == nil {
		t.Error("no observations: no error")
	}
	bad := []VarObservation{{Persona: "p", Anchor: "a", Item: "i", Value: []float64{1}}, {Persona: "q", Anchor: "a", Item: "i", Value: []float64{1, 2}}}
	if _, err := CompareVariance(bad, 10, 0.95, 1); err == nil {
		t.Error("mixed dimensions: no error")
	}
	nan := []VarObservation{{Persona: "p", Anchor: "a", Item: "i", Value: []float64{math.NaN()}}}
	if _, err := CompareVariance(nan, 10, 0.95, 1); err == nil {
		t.Error("NaN: no error")
	}
}

// TestAnchorContrast plants a sparse anchor with more run-to-run noise than the rich ones.
func TestAnchorContrast(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	within := func(a int) float64 {
		if a == 0 {
			return 4
		}
		return 0.5
	}
	obs := plantedObservations(rng, 30, 3, 6, 4, 1, fixedVar(1), within)
	c, ok, err := CompareAnchors(obs, "a0", []string{"a1", "a2"}, 300, 0.95, 1)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Planted ICCs: sparse 1/(1+4) = 0.2, rich 1/(1+0.5) = 0.667.
	if math.Abs(c.SparseICC-0.2) > 0.08 || math.Abs(c.RichICC-2.0/3) > 0.1 || c.Finding != "rich more stable" {
		t.Errorf("contrast %+v", c)
	}
	same := plantedObservations(rng, 30, 3, 6, 4, 1, fixedVar(1), fixedVar(1))
	if c, _, _ := CompareAnchors(same, "a0", []string{"a1", "a2"}, 300, 0.95, 1); c.Difference.Low > 0 || c.Difference.High < 0 {
		t.Errorf("equal anchors: interval %+v excludes 0", c.Difference)
	}
}
