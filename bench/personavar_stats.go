package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// PersonaVarianceMethod describes the estimators of the persona variance benchmark (stored in
// its report).
const PersonaVarianceMethod = "one-way method-of-moments components per (anchor form, item), with personas as groups and seeds as replicates: " +
	"run_to_run = pooled within-(persona, anchor, item) variance across seeds; " +
	"between_persona = mean over (anchor, item) of [variance of the persona means minus run_to_run x mean(1/seeds)], clamped at 0 after averaging; " +
	"for a vector representation every variance is the trace of the covariance matrix (the sum of the per-dimension variances), computed with squared Euclidean distances; " +
	"ratio = run_to_run / between_persona; icc = between_persona / (between_persona + run_to_run); " +
	"percentile bootstrap intervals resampling personas with replacement (a persona keeps all its answers; a resample's variance of persona means is scaled by P/(P-1), undoing the shrinkage of drawing P of P with replacement); " +
	"finding \"supported\" (run-to-run >= between-persona) only when the ratio's interval lies at or above 1, \"not supported\" when it lies below 1, else \"inconclusive\""

// Findings of a variance comparison.
const (
	FindingSupported    = "supported"
	FindingNotSupported = "not supported"
	FindingInconclusive = "inconclusive"
)

// VarObservation is one answer's representation: a scalar (one value) or a vector.
type VarObservation struct {
	Persona, Anchor, Item string
	Seed                  uint64
	Value                 []float64
}

// Interval is an estimate's value with its bootstrap interval. A ratio whose denominator is 0
// is +Inf, written as null in JSON.
type Interval struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// MarshalJSON writes +Inf (an unbounded ratio) as null; NaN is an error.
func (iv Interval) MarshalJSON() ([]byte, error) {
	var p [3]*float64
	for i, v := range []float64{iv.Estimate, iv.Low, iv.High} {
		if math.IsNaN(v) || math.IsInf(v, -1) {
			return nil, fmt.Errorf("bench: interval %v: expected numbers or +Inf", iv)
		}
		if !math.IsInf(v, 1) {
			p[i] = &v
		}
	}
	return json.Marshal(struct {
		Estimate *float64 `json:"estimate"`
		Low      *float64 `json:"low"`
		High     *float64 `json:"high"`
	}{p[0], p[1], p[2]})
}

// UnmarshalJSON reads null as +Inf.
func (iv *Interval) UnmarshalJSON(data []byte) error {
	var p struct {
		Estimate *float64 `json:"estimate"`
		Low      *float64 `json:"low"`
		High     *float64 `json:"high"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	get := func(v *float64) float64 {
		if v == nil {
			return math.Inf(1)
		}
		return *v
	}
	iv.Estimate, iv.Low, iv.High = get(p.Estimate), get(p.Low), get(p.High)
	return nil
}

// Component is a variance component with its bootstrap interval (always finite).
type Component struct {
	Variance float64 `json:"variance"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

func (iv Interval) component() Component { return Component{iv.Estimate, iv.Low, iv.High} }

// varCell is the replicates of one (persona, anchor, item).
type varCell struct {
	key  string // anchor \x00 item
	n    int
	mean []float64
	ss   float64 // sum of squared distances to the mean
}

// personaCells are one persona's cells.
type personaCells []varCell

// varEstimate is one data set's components.
type varEstimate struct {
	w, b float64
	df   int
	keys int // (anchor, item) with at least two personas
}

func (e varEstimate) ratio() float64 {
	switch {
	case e.w == 0:
		return 0
	case e.b == 0:
		return math.Inf(1)
	}
	return e.w / e.b
}

func (e varEstimate) icc() float64 {
	if e.w+e.b == 0 {
		return 0
	}
	return e.b / (e.w + e.b)
}

// varianceCells groups observations by persona (in order of first appearance) into cells.
func varianceCells(obs []VarObservation) ([]personaCells, error) {
	pIdx := map[string]int{}
	cIdx := map[[3]string]int{}
	var groups []personaCells
	var vals [][][][]float64
	dim := -1
	for i, o := range obs {
		if dim < 0 {
			dim = len(o.Value)
		}
		if len(o.Value) != dim || dim == 0 {
			return nil, fmt.Errorf("observation %d (persona %s, anchor %s, item %s): %d values, expected %d", i, o.Persona, o.Anchor, o.Item, len(o.Value), dim)
		}
		for _, v := range o.Value {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("observation %d (persona %s, anchor %s, item %s): value %v: expected a finite number", i, o.Persona, o.Anchor, o.Item, v)
			}
		}
		p, ok := pIdx[o.Persona]
		if !ok {
			p = len(groups)
			pIdx[o.Persona] = p
			groups = append(groups, nil)
			vals = append(vals, nil)
		}
		k := [3]string{o.Persona, o.Anchor, o.Item}
		c, ok := cIdx[k]
		if !ok {
			c = len(groups[p])
			cIdx[k] = c
			groups[p] = append(groups[p], varCell{key: o.Anchor + "\x00" + o.Item})
			vals[p] = append(vals[p], nil)
		}
		vals[p][c] = append(vals[p][c], o.Value)
	}
	for p := range groups {
		for c := range groups[p] {
			rows := vals[p][c]
			cell := &groups[p][c]
			cell.n = len(rows)
			cell.mean = make([]float64, dim)
			for _, r := range rows {
				for d, v := range r {
					cell.mean[d] += v / float64(len(rows))
				}
			}
			if allEqual(rows) { // exactly 0, as at temperature 0 (no rounding of the mean)
				copy(cell.mean, rows[0])
				continue
			}
			for _, r := range rows {
				cell.ss += sqDist(r, cell.mean)
			}
		}
	}
	return groups, nil
}

// allEqual reports whether every row equals the first.
func allEqual(rows [][]float64) bool {
	for _, r := range rows[1:] {
		if !slices.Equal(r, rows[0]) {
			return false
		}
	}
	return true
}

func sqDist(a, b []float64) float64 {
	var s float64
	for i := range a {
		d := a[i] - b[i]
		s += d * d
	}
	return s
}

// estimateVar computes the components of personas' cells (see PersonaVarianceMethod).
func estimateVar(groups []personaCells, resampled bool) varEstimate {
	var e varEstimate
	var ss float64
	byKey := map[string][]varCell{}
	var keys []string
	for _, g := range groups {
		for _, c := range g {
			ss += c.ss
			e.df += c.n - 1
			if _, ok := byKey[c.key]; !ok {
				keys = append(keys, c.key)
			}
			byKey[c.key] = append(byKey[c.key], c)
		}
	}
	if e.df > 0 {
		e.w = ss / float64(e.df)
	}
	var sum float64
	for _, k := range keys {
		cells := byKey[k]
		if len(cells) < 2 {
			continue
		}
		dim := len(cells[0].mean)
		grand := make([]float64, dim)
		var invN float64
		for _, c := range cells {
			for d, v := range c.mean {
				grand[d] += v / float64(len(cells))
			}
			invN += 1 / float64(c.n)
		}
		var s float64
		for _, c := range cells {
			s += sqDist(c.mean, grand)
		}
		spread := s / float64(len(cells)-1)
		if resampled {
			spread *= float64(len(cells)) / float64(len(cells)-1)
		}
		sum += spread - e.w*invN/float64(len(cells))
		e.keys++
	}
	if e.keys > 0 {
		e.b = max(0, sum/float64(e.keys))
	}
	return e
}

// VarianceComparison is one representation's decomposition (overall or for one anchor form).
type VarianceComparison struct {
	// RunToRun and BetweenPersona are the variance components with their intervals.
	RunToRun       Component `json:"run_to_run"`
	BetweenPersona Component `json:"between_persona"`
	// Ratio is run_to_run / between_persona.
	Ratio Interval `json:"ratio"`
	// ICC is between_persona / (between_persona + run_to_run).
	ICC Interval `json:"icc"`
	// Finding is FindingSupported, FindingNotSupported or FindingInconclusive.
	Finding string `json:"finding"`
	// Note explains a trivial or degenerate finding.
	Note string `json:"note,omitempty"`
	// Observations, Personas and Dimensions describe the data.
	Observations int `json:"observations"`
	Personas     int `json:"personas"`
	Dimensions   int `json:"dimensions"`
}

// varBootstrap configures the intervals.
type varBootstrap struct {
	resamples int
	level     float64
	seed      uint64
}

// CompareVariance decomposes the observations into run-to-run and between-persona variance
// with percentile bootstrap intervals (resamples, level, seed) and states the finding.
func CompareVariance(obs []VarObservation, resamples int, level float64, seed uint64) (VarianceComparison, error) {
	if len(obs) == 0 {
		return VarianceComparison{}, fmt.Errorf("bench: variance: no observations")
	}
	groups, err := varianceCells(obs)
	if err != nil {
		return VarianceComparison{}, fmt.Errorf("bench: variance: %w", err)
	}
	return compareGroups(groups, len(obs), len(obs[0].Value), varBootstrap{resamples, level, seed}), nil
}

func compareGroups(groups []personaCells, nObs, dim int, bs varBootstrap) VarianceComparison {
	e := estimateVar(groups, false)
	boots := bootstrapVar(groups, bs)
	pick := func(f func(varEstimate) float64) Interval {
		xs := make([]float64, len(boots))
		for i, b := range boots {
			xs[i] = f(b)
		}
		lo, hi := percentileInterval(xs, bs.level)
		return Interval{Estimate: f(e), Low: lo, High: hi}
	}
	c := VarianceComparison{
		RunToRun:       pick(func(v varEstimate) float64 { return v.w }).component(),
		BetweenPersona: pick(func(v varEstimate) float64 { return v.b }).component(),
		Ratio:          pick(varEstimate.ratio),
		ICC:            pick(varEstimate.icc),
		Observations:   nObs, Personas: len(groups), Dimensions: dim,
	}
	switch {
	case e.df == 0:
		c.Finding = FindingNotSupported
		c.Note = "one seed per persona and item: run-to-run variance is not estimable"
	case e.w == 0:
		c.Finding = FindingNotSupported
		c.Note = "trivially not supported: run-to-run variance is exactly 0 (every seed gave the same answer, as at temperature 0)"
	case e.keys == 0:
		c.Finding = FindingInconclusive
		c.Note = "fewer than two personas: between-persona variance is not estimable"
	case c.Ratio.Low >= 1:
		c.Finding = FindingSupported
	case c.Ratio.High < 1:
		c.Finding = FindingNotSupported
	default:
		c.Finding = FindingInconclusive
	}
	return c
}

// bootstrapVar recomputes the components on resamples of personas with replacement.
func bootstrapVar(groups []personaCells, bs varBootstrap) []varEstimate {
	if len(groups) < 2 || bs.resamples <= 0 {
		return []varEstimate{estimateVar(groups, false)}
	}
	rng := rand.New(rand.NewPCG(bs.seed, 0x7a12))
	out := make([]varEstimate, bs.resamples)
	sample := make([]personaCells, len(groups))
	for b := range out {
		for i := range sample {
			sample[i] = groups[rng.IntN(len(groups))]
		}
		out[b] = estimateVar(sample, true)
	}
	return out
}

// percentileInterval is the central level interval of xs (which may hold +Inf).
func percentileInterval(xs []float64, level float64) (lo, hi float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	a := (1 - level) / 2
	return quantileInf(s, a), quantileInf(s, 1-a)
}

// quantileInf is quantileSorted that returns +Inf when an interpolated neighbour is +Inf.
func quantileInf(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(math.Floor(pos))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	if math.IsInf(s[i], 1) || math.IsInf(s[i+1], 1) {
		if pos == float64(i) {
			return s[i]
		}
		return math.Inf(1)
	}
	return quantileSorted(s, q)
}

// AnchorContrast is the anchor-richness comparison (e): the ICC of rich anchors (journal and
// document) minus the ICC of sparse ones, on the same personas, with a bootstrap interval
// resampling personas (paired: a resampled persona brings its answers under every form).
type AnchorContrast struct {
	SparseICC float64 `json:"sparse_icc"`
	RichICC   float64 `json:"rich_icc"`
	// Difference is rich - sparse: above 0 means rich anchors hold personas apart better
	// relative to run-to-run noise.
	Difference Interval `json:"difference"`
	// Finding: "rich more stable" when the interval lies above 0, "sparse more stable" when it
	// lies below 0, else "inconclusive".
	Finding string `json:"finding"`
}

// CompareAnchors computes the anchor-richness contrast of the observations (see
// AnchorContrast); ok is false when the sparse or the rich forms are missing.
func CompareAnchors(obs []VarObservation, sparse string, rich []string, resamples int, level float64, seed uint64) (AnchorContrast, bool, error) {
	var sp, ri []VarObservation
	for _, o := range obs {
		switch {
		case o.Anchor == sparse:
			sp = append(sp, o)
		case slices.Contains(rich, o.Anchor):
			ri = append(ri, o)
		}
	}
	if len(sp) == 0 || len(ri) == 0 {
		return AnchorContrast{}, false, nil
	}
	gs, err := varianceCells(sp)
	if err != nil {
		return AnchorContrast{}, false, fmt.Errorf("bench: variance: %w", err)
	}
	gr, err := varianceCells(ri)
	if err != nil {
		return AnchorContrast{}, false, fmt.Errorf("bench: variance: %w", err)
	}
	// Pair the personas present in both.
	idx := map[string]int{}
	for i, o := range personaOrder(sp) {
		idx[o] = i
	}
	var ps, pr []personaCells
	for j, p := range personaOrder(ri) {
		if i, ok := idx[p]; ok {
			ps, pr = append(ps, gs[i]), append(pr, gr[j])
		}
	}
	c := AnchorContrast{SparseICC: estimateVar(ps, false).icc(), RichICC: estimateVar(pr, false).icc()}
	c.Difference.Estimate = c.RichICC - c.SparseICC
	diffs := []float64{c.Difference.Estimate}
	if len(ps) >= 2 && resamples > 0 {
		rng := rand.New(rand.NewPCG(seed, 0xa4c4))
		diffs = make([]float64, resamples)
		s1, s2 := make([]personaCells, len(ps)), make([]personaCells, len(ps))
		for b := range diffs {
			for i := range s1 {
				k := rng.IntN(len(ps))
				s1[i], s2[i] = ps[k], pr[k]
			}
			diffs[b] = estimateVar(s2, true).icc() - estimateVar(s1, true).icc()
		}
	}
	c.Difference.Low, c.Difference.High = percentileInterval(diffs, level)
	switch {
	case c.Difference.Low > 0:
		c.Finding = "rich more stable"
	case c.Difference.High < 0:
		c.Finding = "sparse more stable"
	default:
		c.Finding = FindingInconclusive
	}
	return c, true, nil
}

// personaOrder lists the personas of obs in order of first appearance (varianceCells' order).
func personaOrder(obs []VarObservation) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range obs {
		if !seen[o.Persona] {
			seen[o.Persona] = true
			out = append(out, o.Persona)
		}
	}
	return out
}
