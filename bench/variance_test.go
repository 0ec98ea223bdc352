package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestDecomposeVarianceRecoversPlantedComponents: values = persona effect + scenario effect
// (nested in personas) + a turn trend + seed noise, with known variances; the estimates
// recover them and the interval covers the true ICC.
func TestDecomposeVarianceRecoversPlantedComponents(t *testing.T) {
	const (
		personas, scenariosPer, seeds, turns = 200, 3, 5, 4
		sp2, ss2, sw2                        = 1.0, 0.25, 0.5
	)
	rng := rand.New(rand.NewPCG(7, 11))
	var recs []VarianceRecord
	for p := range personas {
		pe := rng.NormFloat64() * math.Sqrt(sp2)
		for s := range scenariosPer {
			se := rng.NormFloat64() * math.Sqrt(ss2)
			for seed := range seeds {
				for turn := range turns {
					recs = append(recs, VarianceRecord{
						Scenario: fmt.Sprintf("p%d-s%d", p, s), Persona: fmt.Sprintf("p%d", p),
						Seed: uint64(seed), Turn: turn,
						Value: 3 + pe + se - 0.2*float64(turn) + rng.NormFloat64()*math.Sqrt(sw2),
					})
				}
			}
		}
	}
	r, err := DecomposeVariance(ArmUncapped, recs, VarianceOptions{Bootstrap: 300})
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want, relTol float64) {
		if math.Abs(got-want) > relTol*want {
			t.Errorf("%s = %.4f, planted %.4f (tolerance %.0f%%)", name, got, want, relTol*100)
		}
	}
	check("run_to_run", r.RunToRun, sw2, 0.05)
	check("between_persona", r.BetweenPersona, sp2, 0.25)
	check("between_scenario", r.BetweenScenario, sp2+ss2, 0.25)
	wantICC := sp2 / (sp2 + sw2)
	check("icc", r.ICC, wantICC, 0.1)
	if !(r.ICCLow <= wantICC && wantICC <= r.ICCHigh) || r.ICCLow >= r.ICCHigh {
		t.Errorf("interval [%.4f, %.4f] does not cover the planted ICC %.4f", r.ICCLow, r.ICCHigh, wantICC)
	}
	check("ratio", r.RatioRunToPersona, sw2/sp2, 0.3)
	if r.Records != len(recs) || r.Personas != personas || r.Scenarios != personas*scenariosPer || r.Bootstrap != 300 {
		t.Errorf("counts %+v", r)
	}
	again, err := DecomposeVariance(ArmUncapped, recs, VarianceOptions{Bootstrap: 300})
	if err != nil || again.ICCLow != r.ICCLow || again.ICCHigh != r.ICCHigh {
		t.Errorf("bootstrap not deterministic: [%v, %v] then [%v, %v]", r.ICCLow, r.ICCHigh, again.ICCLow, again.ICCHigh)
	}
}

// TestDecomposeVarianceByHand checks small cases against textbook ANOVA formulas worked by hand.
func TestDecomposeVarianceByHand(t *testing.T) {
	rec := func(scenario, persona string, seed uint64, turn int, v float64) VarianceRecord {
		return VarianceRecord{Scenario: scenario, Persona: persona, Seed: seed, Turn: turn, Value: v}
	}
	tests := []struct {
		name                       string
		recs                       []VarianceRecord
		runToRun, scenario, person float64
		icc                        float64
		note                       string
	}{{
		// One-way, 2 groups x 2 seeds: A = {1, 3}, B = {5, 9}. MSW = (2+8)/2 = 5,
		// MSB = 2*((2-4.5)^2+(7-4.5)^2)/1 = 25, sigma_b^2 = (25-5)/2 = 10,
		// ICC(1) = (MSB-MSW)/(MSB+(k-1)MSW) = 20/30.
		name:     "one-way",
		recs:     []VarianceRecord{rec("a", "A", 1, 0, 1), rec("a", "A", 2, 0, 3), rec("b", "B", 1, 0, 5), rec("b", "B", 2, 0, 9)},
		runToRun: 5, scenario: 10, person: 10, icc: 20.0 / 30, note: "confounded",
	}, {
		// Nested, one seed: A = {1, 3}, B = {6, 10}. Scenario means variance:
		// mean 5, (16+4+1+25)/3 = 46/3. MS_A = 2*var(2, 8) = 36, MS_B(A) = (2+8)/2 = 5,
		// sigma_p^2 = (36-5)/2 = 15.5; no run-to-run variance, so ICC = 1.
		name:     "nested one seed",
		recs:     []VarianceRecord{rec("a1", "A", 1, 0, 1), rec("a2", "A", 1, 0, 3), rec("b1", "B", 1, 0, 6), rec("b2", "B", 1, 0, 10)},
		runToRun: 0, scenario: 46.0 / 3, person: 15.5, icc: 1, note: "one seed",
	}, {
		// Two turns, each the one-way case shifted: turn effects do not count,
		// the per-turn components average to the same numbers.
		name: "two turns",
		recs: []VarianceRecord{rec("a", "A", 1, 0, 1), rec("a", "A", 2, 0, 3), rec("b", "B", 1, 0, 5), rec("b", "B", 2, 0, 9),
			rec("a", "A", 1, 1, 101), rec("a", "A", 2, 1, 103), rec("b", "B", 1, 1, 105), rec("b", "B", 2, 1, 109)},
		runToRun: 5, scenario: 10, person: 10, icc: 20.0 / 30,
	}, {
		// Between-group spread smaller than the noise: means 2 and 3, MSB = 2*(0.5^2*2) = 1 <
		// MSW = (2+18)/2 = 10,
		// the component is clamped at 0.
		name:     "clamped",
		recs:     []VarianceRecord{rec("a", "A", 1, 0, 1), rec("a", "A", 2, 0, 3), rec("b", "B", 1, 0, 0), rec("b", "B", 2, 0, 6)},
		runToRun: 10, scenario: 0, person: 0, icc: 0,
	}, {
		name:     "one persona",
		recs:     []VarianceRecord{rec("a", "A", 1, 0, 1), rec("a", "A", 2, 0, 3)},
		runToRun: 2, scenario: 0, person: 0, icc: 0, note: "fewer than 2 personas",
	}}
	const eps = 1e-12
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecomposeVariance(ArmCapped, tc.recs, VarianceOptions{Bootstrap: 50})
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(r.RunToRun-tc.runToRun) > eps || math.Abs(r.BetweenScenario-tc.scenario) > eps ||
				math.Abs(r.BetweenPersona-tc.person) > eps || math.Abs(r.ICC-tc.icc) > eps {
				t.Errorf("got run %v scenario %v persona %v icc %v; want %v %v %v %v",
					r.RunToRun, r.BetweenScenario, r.BetweenPersona, r.ICC, tc.runToRun, tc.scenario, tc.person, tc.icc)
			}
			if tc.person > 0 && math.Abs(r.RatioRunToPersona-tc.runToRun/tc.person) > eps {
				t.Errorf("ratio %v", r.RatioRunToPersona)
			}
			if tc.person == 0 && (!r.RatioUndefined || r.RatioRunToPersona != 0) {
				t.Errorf("ratio %v undefined %v", r.RatioRunToPersona, r.RatioUndefined)
			}
			if r.ICCLow > r.ICCHigh || r.Arm != ArmCapped {
				t.Errorf("result %+v", r)
			}
			if tc.note != "" && !strings.Contains(r.Method, tc.note) {
				t.Errorf("method %q: want a note containing %q", r.Method, tc.note)
			}
		})
	}
}

// TestDecomposeVarianceErrors: bad input gives errors naming the problem.
func TestDecomposeVarianceErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []VarianceRecord
		o    VarianceOptions
		want string
	}{
		{"empty", nil, VarianceOptions{}, "no records"},
		{"nan", []VarianceRecord{{Scenario: "a", Persona: "A", Value: math.NaN()}}, VarianceOptions{}, "finite"},
		{"two personas", []VarianceRecord{{Scenario: "a", Persona: "A"}, {Scenario: "a", Persona: "B", Seed: 1}}, VarianceOptions{}, "one persona per scenario"},
		{"level", []VarianceRecord{{Scenario: "a", Persona: "A"}}, VarianceOptions{Level: 1.5}, "level"},
	} {
		if _, err := DecomposeVariance("x", tc.recs, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestTurnRecordsForVariance keeps one arm's projections.
func TestTurnRecordsForVariance(t *testing.T) {
	turns := []TurnRecord{{Scenario: "a", Persona: "A", Arm: ArmCapped, Seed: 3, Turn: 1, Projection: 2.5},
		{Scenario: "a", Persona: "A", Arm: ArmUncapped, Projection: 1}}
	got := TurnRecordsForVariance(turns, ArmCapped)
	if len(got) != 1 || got[0] != (VarianceRecord{Scenario: "a", Persona: "A", Seed: 3, Turn: 1, Value: 2.5}) {
		t.Errorf("got %+v", got)
	}
}
