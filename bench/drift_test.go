package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tether/internal/testmodels"
)

// TestDriftPlanted: with drift planted along -u growing with the turn, the
// uncapped arm's projection falls turn after turn, the capped arm holds the
// projection at the capped layer >= tau on every token, and the findings say
// so.
func TestDriftPlanted(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	opts := driftTestOptions(t, filepath.Join(dir, "out"), apath, u)
	rep, err := RunDrift(t.Context(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	// 2 scenarios x 2 arms x 2 seeds x 3 turns (the fourth scripted turn is cut).
	if len(rep.Turns) != 24 {
		t.Fatalf("%d turn records, want 24", len(rep.Turns))
	}
	byArm := map[string]map[string][]TurnSummary{}
	for _, s := range rep.Summary {
		if byArm[s.Arm] == nil {
			byArm[s.Arm] = map[string][]TurnSummary{}
		}
		byArm[s.Arm][s.Domain] = append(byArm[s.Arm][s.Domain], s)
	}
	for domain, turns := range byArm[ArmUncapped] {
		if len(turns) != 3 {
			t.Fatalf("%s: %d summary turns", domain, len(turns))
		}
		for i := 1; i < len(turns); i++ {
			// Each turn adds plantedStep more along -u: the projection must
			// fall by a good part of it.
			if d := turns[i].MeanProjection - turns[i-1].MeanProjection; d > -plantedStep/2 {
				t.Errorf("uncapped %s: projection %g at turn %d after %g: want a fall of about %d", domain, turns[i].MeanProjection, i, turns[i-1].MeanProjection, plantedStep)
			}
		}
		if turns[2].MeanDrift > -plantedStep {
			t.Errorf("uncapped %s: drift at turn 2 = %g, want <= %d", domain, turns[2].MeanDrift, -plantedStep)
		}
	}
	for _, rec := range rep.Turns {
		if rec.ResponseTokens == 0 || rec.ResponseTokens > 6 {
			t.Errorf("%+v: response tokens out of range", rec)
		}
		// Max tokens 6 is far from the context: a turn ends at a stop or at 6 tokens.
		if (rec.StopReason == "length") != (rec.ResponseTokens == 6) || !slices.Contains([]string{"eos", "stop_string", "length"}, rec.StopReason) {
			t.Errorf("%s turn %d: stop reason %q with %d of at most 6 tokens", rec.Scenario, rec.Turn, rec.StopReason, rec.ResponseTokens)
		}
		switch rec.Arm {
		case ArmCapped:
			if rec.Projection < -1e-4 {
				t.Errorf("capped %s seed %d turn %d: projection %g below tau 0", rec.Scenario, rec.Seed, rec.Turn, rec.Projection)
			}
			if rec.CapPairs != rec.ResponseTokens {
				t.Errorf("capped %s turn %d: %d cap pairs for %d tokens and one capped layer", rec.Scenario, rec.Turn, rec.CapPairs, rec.ResponseTokens)
			}
			if rec.Turn == 2 && rec.CapFraction != 1 {
				t.Errorf("capped %s turn 2: cap acted on %g of pairs, want all (the planted drift pushes every token below tau)", rec.Scenario, rec.CapFraction)
			}
		case ArmUncapped:
			if rec.CapFraction != 0 || rec.CapPairs != 0 {
				t.Errorf("uncapped record with cap data: %+v", rec)
			}
		}
	}
	if !rep.CapCheck.Held || rep.CapCheck.Violations != 0 || rep.CapCheck.Tokens == 0 || rep.CapCheck.MinMargin < -1e-4 {
		t.Errorf("cap check %+v: want held", rep.CapCheck)
	}
	text := strings.Join(rep.Findings, "\n")
	for _, want := range []string{"emotional: uncapped projection falls", "coding: uncapped projection falls", "held >= tau"} {
		if !strings.Contains(text, want) {
			t.Errorf("findings lack %q:\n%s", want, text)
		}
	}
	// Same seeds in both arms: the first turn of both arms starts from the
	// same prompt; turn seeds are the same function of (seed, scenario, turn).
	data, err := os.ReadFile(filepath.Join(opts.Out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back DriftReport
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Settings.ProjectionLayer != testCapLayer || len(back.Turns) != 24 {
		t.Errorf("report.json settings %+v", back.Settings)
	}
	if err := ValidateDriftReportJSON(data); err != nil {
		t.Error(err)
	}
	svgs, _ := filepath.Glob(filepath.Join(opts.Out, "*.svg"))
	if _, err := os.Stat(filepath.Join(opts.Out, "report.md")); err != nil || len(svgs) == 0 {
		t.Errorf("report.md (%v) or SVG plots (%d) missing", err, len(svgs))
	}
}

// TestDriftResumeRefusesOtherSettings: resuming with other settings names the
// field that differs.
func TestDriftResumeRefusesOtherSettings(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	opts := driftTestOptions(t, filepath.Join(dir, "out"), apath, u)
	opts.Scenarios = opts.Scenarios[:1]
	opts.Seeds = []uint64{1}
	opts.Turns = 1
	if _, err := RunDrift(t.Context(), m, opts); err != nil {
		t.Fatal(err)
	}
	opts.MaxTokens = 5
	_, err := RunDrift(t.Context(), m, opts)
	if err == nil || !strings.Contains(err.Error(), "settings") {
		t.Fatalf("resume with other max tokens: %v", err)
	}
}

// TestDriftArmsShareSeeds: with a cap that never acts (tau far below every
// projection), the capped arm must reproduce the uncapped arm token for
// token: both arms replay the same prompts with the same seeds.
func TestDriftArmsShareSeeds(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	opts := driftTestOptions(t, filepath.Join(dir, "out"), apath, u)
	opts.Steering = capSpec(testCapLayer, -1e6)
	rep, err := RunDrift(t.Context(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		sc   string
		seed uint64
		turn int
	}
	uncapped := map[key]TurnRecord{}
	for _, r := range rep.Turns {
		if r.Arm == ArmUncapped {
			uncapped[key{r.Scenario, r.Seed, r.Turn}] = r
		}
	}
	for _, r := range rep.Turns {
		if r.Arm != ArmCapped {
			continue
		}
		o := uncapped[key{r.Scenario, r.Seed, r.Turn}]
		if r.Response != o.Response || r.ResponseTokens != o.ResponseTokens || math.Abs(r.Projection-o.Projection) > 1e-5 || r.CapFraction != 0 {
			t.Fatalf("%s seed %d turn %d: capped %q (%g) vs uncapped %q (%g), cap fraction %g",
				r.Scenario, r.Seed, r.Turn, r.Response, r.Projection, o.Response, o.Projection, r.CapFraction)
		}
	}
	// And the seeds differ between seeds and turns.
	if DriftTurnSeed(1, "a", 0) == DriftTurnSeed(2, "a", 0) || DriftTurnSeed(1, "a", 0) == DriftTurnSeed(1, "a", 1) {
		t.Fatal("turn seeds collide")
	}
}
