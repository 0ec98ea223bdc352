package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// VarianceRecord is one observation for the variance decomposition: the
// value (a turn's mean projection) of one scenario, persona, seed and turn
// of one arm.
type VarianceRecord struct {
	Scenario string
	Persona  string
	Seed     uint64
	Turn     int
	Value    float64
}

// VarianceOptions configures DecomposeVariance.
type VarianceOptions struct {
	// Bootstrap is the number of bootstrap resamples of personas for the ICC
	// interval (default 1000; negative disables the interval).
	Bootstrap int
	// Level is the coverage of the percentile interval (default 0.95).
	Level float64
	// Seed makes the bootstrap deterministic (default 1).
	Seed uint64
}

// VarianceMethod describes the estimators, stored in VarianceResult.Method.
const VarianceMethod = "method-of-moments variance components per turn, averaged over turns: " +
	"run_to_run = pooled within-(scenario, turn) variance across seeds; " +
	"between_scenario = variance of per-scenario means minus the run-to-run share; " +
	"between_persona = variance of per-persona means minus the scenario and run-to-run shares (scenarios nested in personas); " +
	"icc = ICC(1) of a one-way random-effects ANOVA with groups = personas, between_persona/(between_persona+run_to_run), " +
	"components clamped at 0; percentile bootstrap interval resampling personas with replacement"

// TurnRecordsForVariance selects the records of one arm from a report's turns.
func TurnRecordsForVariance(turns []TurnRecord, arm string) []VarianceRecord {
	var out []VarianceRecord
	for _, t := range turns {
		if t.Arm == arm {
			out = append(out, VarianceRecord{Scenario: t.Scenario, Persona: t.Persona, Seed: t.Seed, Turn: t.Turn, Value: t.Projection})
		}
	}
	return out
}

// varianceCell holds the seeds of one (persona, scenario, turn).
type varianceCell struct {
	turn  int
	n     int
	mean  float64
	ss    float64 // sum of squared deviations from mean
	group int     // persona index
}

// varianceComponents are the estimates of one data set.
type varianceComponents struct {
	runToRun, scenario, persona float64
	turns                       int // turns with at least two scenarios
	withinDF                    int // degrees of freedom of run_to_run
	nestedDF                    int // degrees of freedom of scenarios within personas
}

// icc is the intraclass correlation of the components (0 when both are 0).
func (c varianceComponents) icc() float64 {
	if c.persona+c.runToRun == 0 {
		return 0
	}
	return c.persona / (c.persona + c.runToRun)
}

// DecomposeVariance splits the variance of one arm's values into run-to-run
// (across seeds for the same scenario and turn), between-scenario and
// between-persona components; see VarianceMethod. The ICC interval comes
// from resampling personas with replacement (o.Bootstrap times, seeded).
// With one seed per scenario the run-to-run component is 0; with one
// persona the between-persona component and the ICC are 0; Method says so.
// RatioRunToPersona is 0 with RatioUndefined set when between_persona is 0.
func DecomposeVariance(arm string, recs []VarianceRecord, o VarianceOptions) (VarianceResult, error) {
	if len(recs) == 0 {
		return VarianceResult{}, fmt.Errorf("bench: variance of arm %q: no records", arm)
	}
	for i, r := range recs {
		if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
			return VarianceResult{}, fmt.Errorf("bench: variance of arm %q: record %d (scenario %q, seed %d, turn %d): value %v: expected a finite number", arm, i, r.Scenario, r.Seed, r.Turn, r.Value)
		}
	}
	if o.Bootstrap == 0 {
		o.Bootstrap = 1000
	}
	if o.Level == 0 {
		o.Level = 0.95
	}
	if o.Level <= 0 || o.Level >= 1 {
		return VarianceResult{}, fmt.Errorf("bench: variance of arm %q: level %v: expected a value in (0, 1)", arm, o.Level)
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	groups, nScen, err := varianceGroups(recs)
	if err != nil {
		return VarianceResult{}, fmt.Errorf("bench: variance of arm %q: %w", arm, err)
	}
	c := estimateComponents(groups)
	res := VarianceResult{
		Arm: arm, RunToRun: c.runToRun, BetweenScenario: c.scenario, BetweenPersona: c.persona,
		ICC: c.icc(), Records: len(recs), Personas: len(groups), Scenarios: nScen,
	}
	if c.persona > 0 {
		res.RatioRunToPersona = c.runToRun / c.persona
	} else {
		res.RatioUndefined = true
	}
	var notes []string
	if c.withinDF == 0 {
		notes = append(notes, "one seed per scenario and turn: run-to-run variance not estimable (0)")
	}
	if len(groups) < 2 {
		notes = append(notes, "fewer than 2 personas: between-persona variance and ICC not estimable (0)")
	} else if c.nestedDF == 0 {
		notes = append(notes, "one scenario per persona: scenario and persona effects are confounded (between_persona = between_scenario)")
	}
	res.ICCLow, res.ICCHigh = res.ICC, res.ICC
	if o.Bootstrap > 0 && len(groups) >= 2 {
		res.ICCLow, res.ICCHigh = bootstrapICC(groups, o.Bootstrap, o.Level, o.Seed)
		res.Bootstrap = o.Bootstrap
	}
	res.Method = VarianceMethod
	if len(notes) > 0 {
		res.Method += "; " + strings.Join(notes, "; ")
	}
	return res, nil
}

// varianceGroups aggregates records into cells grouped by persona (in
// order of first appearance); it also counts scenarios. A scenario must
// belong to one persona.
func varianceGroups(recs []VarianceRecord) ([][]varianceCell, int, error) {
	type cellKey struct {
		scenario string
		turn     int
	}
	personaOf := map[string]string{}
	personaIdx := map[string]int{}
	cellIdx := map[cellKey]int{}
	var cells []varianceCell
	var values [][]float64
	for _, r := range recs {
		if p, ok := personaOf[r.Scenario]; ok && p != r.Persona {
			return nil, 0, fmt.Errorf("scenario %q: persona %q and %q: expected one persona per scenario", r.Scenario, p, r.Persona)
		}
		personaOf[r.Scenario] = r.Persona
		if _, ok := personaIdx[r.Persona]; !ok {
			personaIdx[r.Persona] = len(personaIdx)
		}
		k := cellKey{r.Scenario, r.Turn}
		i, ok := cellIdx[k]
		if !ok {
			i = len(cells)
			cellIdx[k] = i
			cells = append(cells, varianceCell{turn: r.Turn, group: personaIdx[r.Persona]})
			values = append(values, nil)
		}
		values[i] = append(values[i], r.Value)
	}
	groups := make([][]varianceCell, len(personaIdx))
	for i, c := range cells {
		c.n = len(values[i])
		c.mean = statMean(values[i])
		for _, v := range values[i] {
			c.ss += (v - c.mean) * (v - c.mean)
		}
		groups[c.group] = append(groups[c.group], c)
	}
	return groups, len(personaOf), nil
}

// estimateComponents computes the method-of-moments components of groups
// of cells (each group one persona).
func estimateComponents(groups [][]varianceCell) varianceComponents {
	var c varianceComponents
	// Run-to-run: pooled within-cell variance.
	var ss float64
	for _, g := range groups {
		for _, cell := range g {
			ss += cell.ss
			c.withinDF += cell.n - 1
		}
	}
	if c.withinDF > 0 {
		c.runToRun = ss / float64(c.withinDF)
	}
	w := c.runToRun
	// Per turn: the cells of each persona at that turn.
	byTurn := map[int][][]varianceCell{}
	for gi, g := range groups {
		for _, cell := range g {
			perGroup := byTurn[cell.turn]
			if perGroup == nil {
				perGroup = make([][]varianceCell, len(groups))
				byTurn[cell.turn] = perGroup
			}
			perGroup[gi] = append(perGroup[gi], cell)
		}
	}
	turns := make([]int, 0, len(byTurn))
	for t := range byTurn {
		turns = append(turns, t)
	}
	slices.Sort(turns)
	var sumScen, sumPers float64
	var nPers int
	for _, t := range turns {
		perGroup := byTurn[t]
		var all []varianceCell
		for _, g := range perGroup {
			all = append(all, g...)
		}
		if len(all) < 2 {
			continue
		}
		c.turns++
		// Between scenarios: E[var of cell means] = sigma_s^2 + w * mean(1/n).
		ms := make([]float64, len(all))
		var invN float64
		for i, cell := range all {
			ms[i] = cell.mean
			invN += 1 / float64(cell.n)
		}
		sumScen += max(0, statVariance(ms)-w*invN/float64(len(all)))
		// Scenarios within personas: E[sum (m_s - mbar_p)^2] =
		// (S_p-1) sigma_in^2 + (1-1/S_p) w sum(1/n_s).
		var nestSS, nestW float64
		var nestDF int
		var pMeans []float64
		var pGroups [][]varianceCell
		for _, g := range perGroup {
			if len(g) == 0 {
				continue
			}
			gm := 0.0
			for _, cell := range g {
				gm += cell.mean
			}
			gm /= float64(len(g))
			pMeans = append(pMeans, gm)
			pGroups = append(pGroups, g)
			if len(g) < 2 {
				continue
			}
			var inv float64
			for _, cell := range g {
				nestSS += (cell.mean - gm) * (cell.mean - gm)
				inv += 1 / float64(cell.n)
			}
			nestW += (1 - 1/float64(len(g))) * w * inv
			nestDF += len(g) - 1
		}
		within := 0.0
		if nestDF > 0 {
			within = max(0, (nestSS-nestW)/float64(nestDF))
			c.nestedDF += nestDF
		}
		// Between personas: E[var of persona means] = sigma_p^2 +
		// mean_p(sigma_in^2/S_p + w sum(1/n_s)/S_p^2).
		if len(pMeans) < 2 {
			continue
		}
		var expected float64
		for _, g := range pGroups {
			S := float64(len(g))
			var inv float64
			for _, cell := range g {
				inv += 1 / float64(cell.n)
			}
			expected += within/S + w*inv/(S*S)
		}
		expected /= float64(len(pGroups))
		sumPers += max(0, statVariance(pMeans)-expected)
		nPers++
	}
	if c.turns > 0 {
		c.scenario = sumScen / float64(c.turns)
	}
	if nPers > 0 {
		c.persona = sumPers / float64(nPers)
	}
	return c
}

// bootstrapICC resamples personas with replacement (a resampled persona
// keeps all its cells and counts as a new persona) and returns the
// percentile interval of the ICC.
func bootstrapICC(groups [][]varianceCell, resamples int, level float64, seed uint64) (lo, hi float64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	iccs := make([]float64, resamples)
	sample := make([][]varianceCell, len(groups))
	for b := range iccs {
		for i := range sample {
			sample[i] = groups[rng.IntN(len(groups))]
		}
		iccs[b] = estimateComponents(sample).icc()
	}
	slices.Sort(iccs)
	alpha := (1 - level) / 2
	return quantileSorted(iccs, alpha), quantileSorted(iccs, 1-alpha)
}

// quantileSorted is the linearly interpolated q-quantile of sorted xs.
func quantileSorted(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	pos := q * float64(len(xs)-1)
	i := int(math.Floor(pos))
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i]*(1-f) + xs[i+1]*f
}

// statMean is the arithmetic mean (0 for no values).
func statMean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// statVariance is the unbiased sample variance (0 for fewer than 2 values).
func statVariance(xs []float64) float64 {
	if len(xs) < 2 {
		return 0
	}
	m := statMean(xs)
	var s float64
	for _, x := range xs {
		s += (x - m) * (x - m)
	}
	return s / float64(len(xs)-1)
}
