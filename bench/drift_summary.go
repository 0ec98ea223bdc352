package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"tether/consistency"
)

// report builds the drift report from the stored turn records (always the
// records as read back from turns.jsonl, so a resumed run gives the same
// numbers as an uninterrupted one).
func (r *driftRunner) report(ctx context.Context, recs []TurnRecord) (*DriftReport, error) {
	recs = r.orderRecords(recs)
	rep := &DriftReport{
		Format: DriftReportFormat, Model: r.m.Name, ModelDir: r.m.Dir,
		Axis: r.opts.AxisPath, AxisModel: r.opts.Axis.Model,
		Settings: r.settings(), Turns: recs,
		Created: r.opts.Now().UTC().Format(time.RFC3339),
	}
	for _, s := range r.scripts {
		rep.Scenarios = append(rep.Scenarios, s.info)
	}
	rep.Summary = SummarizeTurns(recs)
	rep.CapCheck = CheckCaps(recs)
	var err error
	if rep.Variance, err = driftVariance(recs); err != nil {
		return nil, err
	}
	if rep.Consistency, err = DriftConsistency(recs); err != nil {
		return nil, err
	}
	if r.opts.Capability {
		if rep.Capability, err = r.capability(ctx); err != nil {
			return nil, err
		}
	}
	rep.Findings = DriftFindings(rep)
	return rep, nil
}

// DriftConsistency aggregates the judge's verdicts stored on the turn records
// (consistency.Aggregate per arm, turn and persona; a conversation is a
// (scenario, arm, seed)); nil when no record holds any.
func DriftConsistency(recs []TurnRecord) (*consistency.Summary, error) {
	var obs []consistency.Observation
	for _, rec := range recs {
		conv := fmt.Sprintf("%s\x00%s\x00%d", rec.Scenario, rec.Arm, rec.Seed)
		obs = append(obs, consistency.Observe(rec.Arm, rec.Persona, conv, rec.Consistency)...)
	}
	if len(obs) == 0 {
		return nil, nil
	}
	s, err := consistency.Aggregate(obs, consistency.AggregateOptions{})
	if err != nil {
		return nil, fmt.Errorf("bench: drift: consistency: %w", err)
	}
	return s, nil
}

// orderRecords sorts records into run order: scenario (as given), arm
// (uncapped first), seed (as given), turn.
func (r *driftRunner) orderRecords(recs []TurnRecord) []TurnRecord {
	sc, seed := map[string]int{}, map[uint64]int{}
	for i, s := range r.scripts {
		sc[s.info.ID] = i
	}
	for i, s := range r.opts.Seeds {
		seed[s] = i
	}
	arm := map[string]int{ArmUncapped: 0, ArmCapped: 1}
	out := slices.Clone(recs)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Scenario != b.Scenario {
			return sc[a.Scenario] < sc[b.Scenario]
		}
		if a.Arm != b.Arm {
			return arm[a.Arm] < arm[b.Arm]
		}
		if a.Seed != b.Seed {
			return seed[a.Seed] < seed[b.Seed]
		}
		return a.Turn < b.Turn
	})
	return out
}

// SummarizeTurns aggregates turn records per arm (uncapped first), domain
// (sorted) and turn: the mean and sample standard deviation (n-1; 0 for one
// record) of the projection, and the means of drift, capped fraction and
// response length.
func SummarizeTurns(recs []TurnRecord) []TurnSummary {
	type key struct {
		arm, domain string
		turn        int
	}
	groups := map[key][]TurnRecord{}
	var keys []key
	for _, rec := range recs {
		k := key{rec.Arm, rec.Domain, rec.Turn}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], rec)
	}
	armOrder := func(a string) int {
		switch a {
		case ArmUncapped:
			return 0
		case ArmCapped:
			return 1
		}
		return 2
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.arm != b.arm {
			return armOrder(a.arm) < armOrder(b.arm)
		}
		if a.domain != b.domain {
			return a.domain < b.domain
		}
		return a.turn < b.turn
	})
	var out []TurnSummary
	for _, k := range keys {
		g := groups[k]
		s := TurnSummary{Arm: k.arm, Domain: k.domain, Turn: k.turn, N: len(g)}
		for _, rec := range g {
			s.MeanProjection += rec.Projection
			s.MeanDrift += rec.Drift
			s.MeanCapFrac += rec.CapFraction
			s.MeanTokens += float64(rec.ResponseTokens)
		}
		n := float64(len(g))
		s.MeanProjection /= n
		s.MeanDrift /= n
		s.MeanCapFrac /= n
		s.MeanTokens /= n
		if len(g) > 1 {
			var ss float64
			for _, rec := range g {
				d := rec.Projection - s.MeanProjection
				ss += d * d
			}
			s.StdProjection = math.Sqrt(ss / (n - 1))
		}
		out = append(out, s)
	}
	return out
}

// CheckCaps aggregates the capped arm's per-turn cap checks: every
// (generated token, capped layer) pair's projection after the cap against
// tau. Held is true when at least one pair was checked and none fell below
// tau - capTolerance*max(|tau|, 1).
func CheckCaps(recs []TurnRecord) CapCheck {
	var c CapCheck
	first := true
	for _, rec := range recs {
		if rec.Arm != ArmCapped || rec.CapPairs == 0 {
			continue
		}
		c.Tokens += rec.CapPairs
		c.Violations += rec.CapViolations
		if first || rec.CapMinMargin < c.MinMargin {
			c.MinMargin = rec.CapMinMargin
			first = false
		}
	}
	c.Held = c.Tokens > 0 && c.Violations == 0
	return c
}

// DriftFindings states the report's main results in plain language: per
// domain, the uncapped and capped drift from turn 0 to the last turn; whether
// the cap held; the variance ratio per arm; the capability change.
func DriftFindings(rep *DriftReport) []string {
	var out []string
	last := map[string]map[string]TurnSummary{} // domain -> arm -> last turn's summary
	firstP := map[string]map[string]float64{}
	var domains []string
	for _, s := range rep.Summary {
		if last[s.Domain] == nil {
			last[s.Domain] = map[string]TurnSummary{}
			firstP[s.Domain] = map[string]float64{}
			domains = append(domains, s.Domain)
		}
		if s.Turn == 0 {
			firstP[s.Domain][s.Arm] = s.MeanProjection
		}
		if prev, ok := last[s.Domain][s.Arm]; !ok || s.Turn > prev.Turn {
			last[s.Domain][s.Arm] = s
		}
	}
	sort.Strings(domains)
	for _, d := range domains {
		u, okU := last[d][ArmUncapped]
		c, okC := last[d][ArmCapped]
		if !okU || !okC {
			continue
		}
		out = append(out, fmt.Sprintf("%s: uncapped projection %s from %.4g at turn 0 to %.4g at turn %d (mean drift %+.4g); capped %s from %.4g to %.4g (mean drift %+.4g, cap acted on %.1f%% of token-layer pairs at the last turn).",
			d, direction(u.MeanDrift), firstP[d][ArmUncapped], u.MeanProjection, u.Turn, u.MeanDrift,
			direction(c.MeanDrift), firstP[d][ArmCapped], c.MeanProjection, c.MeanDrift, 100*c.MeanCapFrac))
	}
	cc := rep.CapCheck
	taus := fmt.Sprint(rep.Settings.CapTaus)
	switch {
	case cc.Tokens == 0:
		out = append(out, "The cap was not checked: the capped arm generated no tokens.")
	case cc.Held:
		out = append(out, fmt.Sprintf("Capped arm: the projection after the cap held >= tau %s, within float32 rounding (%s), on all %d (token, capped layer) pairs at layers %v: smallest margin after - tau %.3g.", taus, capToleranceText, cc.Tokens, rep.Settings.CapLayers, cc.MinMargin))
	default:
		out = append(out, fmt.Sprintf("Capped arm: the projection after the cap fell below tau %s, beyond float32 rounding (%s), on %d of %d (token, capped layer) pairs at layers %v: smallest margin after - tau %.3g.", taus, capToleranceText, cc.Violations, cc.Tokens, rep.Settings.CapLayers, cc.MinMargin))
	}
	for _, v := range rep.Variance {
		if v.RatioUndefined {
			out = append(out, fmt.Sprintf("%s: run-to-run variance %.4g; the variance between personas is 0 (or not estimable, with fewer than 2 personas), so their ratio is undefined.", v.Arm, v.RunToRun))
			continue
		}
		verdict := "smaller than"
		if v.RatioRunToPersona >= 1 {
			verdict = "matches or exceeds"
		}
		out = append(out, fmt.Sprintf("%s: run-to-run variance %.4g %s the variance between personas %.4g (ratio %.3g); ICC %.3g [%.3g, %.3g].",
			v.Arm, v.RunToRun, verdict, v.BetweenPersona, v.RatioRunToPersona, v.ICC, v.ICCLow, v.ICCHigh))
	}
	out = append(out, consistencyFindings(rep.Consistency)...)
	if c := rep.Capability; c != nil {
		out = append(out, fmt.Sprintf("Capability under capping: perplexity %.4g -> %.4g (%+.2f%%), exact match %.3g -> %.3g (%+.2f%%).",
			c.PerplexityUncapped, c.PerplexityCapped, 100*c.PerplexityRelative, c.ExactUncapped, c.ExactCapped, 100*c.ExactRelative))
	}
	return out
}

// direction words the sign of a drift.
func direction(d float64) string {
	switch {
	case d < 0:
		return "falls"
	case d > 0:
		return "rises"
	}
	return "stays"
}

// consistencyFindings states each arm's overall consistency metrics with
// their intervals and unparseable counts.
func consistencyFindings(s *consistency.Summary) []string {
	if s == nil {
		return nil
	}
	var out []string
	var arms []string
	parts := map[string][]string{}
	for _, c := range s.Overall {
		if !slices.Contains(arms, c.Arm) {
			arms = append(arms, c.Arm)
		}
		parts[c.Arm] = append(parts[c.Arm], fmt.Sprintf("%s %s (%d parseable, %d unparseable verdicts)", metricName(c.Metric), fmtInterval(c), c.N, c.Unparseable))
	}
	for _, a := range arms {
		out = append(out, fmt.Sprintf("%s: consistency with the persona prompt (fraction of judge verdicts YES, %g%% interval): %s.", a, 100*s.Level, strings.Join(parts[a], "; ")))
	}
	return out
}

// metricName words a consistency metric.
func metricName(m string) string {
	switch m {
	case consistency.PromptToLine:
		return "prompt-to-line"
	case consistency.LineToLine:
		return "line-to-line"
	case consistency.QA:
		return "Q&A"
	}
	return m
}

// fmtInterval writes a cell's mean and interval, or "no parseable verdict".
func fmtInterval(c consistency.Cell) string {
	if c.Mean == nil {
		return "no parseable verdict"
	}
	return fmt.Sprintf("%.3f [%.3f, %.3f]", *c.Mean, *c.Low, *c.High)
}
