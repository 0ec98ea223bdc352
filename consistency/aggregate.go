package consistency

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"gonum.org/v1/gonum/stat"
)

// Observation is one judgement placed in its experiment: the arm, the persona, the conversation
// it belongs to (the bootstrap's resampling unit) and the turn.
type Observation struct {
	Arm          string
	Persona      string
	Conversation string
	Turn         int
	Metric       string
	// Score is 1, 0, or nil for an unparseable judge answer.
	Score *float64
}

// Observe places a conversation's judgements as observations.
func Observe(arm, persona, conversation string, js []Judgement) []Observation {
	out := make([]Observation, len(js))
	for i, j := range js {
		out[i] = Observation{Arm: arm, Persona: persona, Conversation: conversation, Turn: j.Turn, Metric: j.Metric, Score: j.Score}
	}
	return out
}

// AggregateOptions configure Aggregate.
type AggregateOptions struct {
	// Bootstrap is the number of resamples (default DefaultBootstrap).
	Bootstrap int
	// Level is the interval's coverage (default 0.95).
	Level float64
	// Seed makes the bootstrap deterministic (default 1).
	Seed uint64
}

// DefaultBootstrap is the default number of bootstrap resamples.
const DefaultBootstrap = 1000

// Method states how Aggregate's intervals are computed.
const Method = "mean of the 0/1 scores of the parseable judgements; percentile cluster bootstrap interval resampling conversations with replacement (all of a conversation's judgements in the cell travel together)"

// Cell is one metric's summary over a group of observations.
type Cell struct {
	Arm    string `json:"arm"`
	Metric string `json:"metric"`
	// Turn is set in per-turn cells; Persona in per-persona cells.
	Turn    *int   `json:"turn,omitempty"`
	Persona string `json:"persona,omitempty"`
	// Mean is the fraction of parseable judgements found consistent, with its interval
	// [Low, High]; all three are null when no judgement was parseable.
	Mean *float64 `json:"mean"`
	Low  *float64 `json:"low"`
	High *float64 `json:"high"`
	// N counts the parseable judgements, Unparseable the others, Conversations the
	// conversations contributing.
	N             int `json:"n"`
	Unparseable   int `json:"unparseable"`
	Conversations int `json:"conversations"`
}

// Summary is the aggregate of consistency judgements, ready to embed in report.json.
type Summary struct {
	Method    string  `json:"method"`
	Bootstrap int     `json:"bootstrap"`
	Level     float64 `json:"level"`
	// Overall has one cell per arm and metric, ByTurn per arm, metric and turn, ByPersona per
	// arm, metric and persona.
	Overall   []Cell `json:"overall"`
	ByTurn    []Cell `json:"by_turn"`
	ByPersona []Cell `json:"by_persona"`
}

// Aggregate summarises observations per arm and metric, per arm, metric and turn, and per arm,
// metric and persona. Arms keep their order of first appearance, metrics the order of Metrics,
// turns and personas are sorted.
func Aggregate(obs []Observation, o AggregateOptions) (*Summary, error) {
	if o.Bootstrap == 0 {
		o.Bootstrap = DefaultBootstrap
	}
	if o.Level == 0 {
		o.Level = 0.95
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Bootstrap < 0 || o.Level <= 0 || o.Level >= 1 {
		return nil, fmt.Errorf("consistency: aggregate: bootstrap %d must be positive and level %g in (0, 1)", o.Bootstrap, o.Level)
	}
	for _, ob := range obs {
		if !slices.Contains(Metrics, ob.Metric) {
			return nil, fmt.Errorf("consistency: aggregate: unknown metric %q (expected one of %v)", ob.Metric, Metrics)
		}
		if ob.Score != nil && *ob.Score != 0 && *ob.Score != 1 {
			return nil, fmt.Errorf("consistency: aggregate: score %g of arm %s, conversation %s, turn %d: expected 0 or 1", *ob.Score, ob.Arm, ob.Conversation, ob.Turn)
		}
	}
	var arms []string
	for _, ob := range obs {
		if !slices.Contains(arms, ob.Arm) {
			arms = append(arms, ob.Arm)
		}
	}
	s := &Summary{Method: Method, Bootstrap: o.Bootstrap, Level: o.Level, Overall: []Cell{}, ByTurn: []Cell{}, ByPersona: []Cell{}}
	for _, arm := range arms {
		for _, m := range Metrics {
			var sel []Observation
			turns, personas := map[int]bool{}, map[string]bool{}
			for _, ob := range obs {
				if ob.Arm == arm && ob.Metric == m {
					sel = append(sel, ob)
					turns[ob.Turn], personas[ob.Persona] = true, true
				}
			}
			if len(sel) == 0 {
				continue
			}
			s.Overall = append(s.Overall, cell(Cell{Arm: arm, Metric: m}, sel, o))
			for _, t := range sortedKeys(turns) {
				s.ByTurn = append(s.ByTurn, cell(Cell{Arm: arm, Metric: m, Turn: &t}, filter(sel, func(ob Observation) bool { return ob.Turn == t }), o))
			}
			for _, p := range sortedKeys(personas) {
				s.ByPersona = append(s.ByPersona, cell(Cell{Arm: arm, Metric: m, Persona: p}, filter(sel, func(ob Observation) bool { return ob.Persona == p }), o))
			}
		}
	}
	return s, nil
}

func sortedKeys[K int | string](m map[K]bool) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func filter(obs []Observation, keep func(Observation) bool) []Observation {
	var out []Observation
	for _, ob := range obs {
		if keep(ob) {
			out = append(out, ob)
		}
	}
	return out
}

// cluster is one conversation's parseable scores in a cell: their sum and count.
type cluster struct{ sum, n float64 }

// cell fills c from the observations of one group: the mean of parseable scores and the
// percentile interval of the mean over conversation-resampled bootstrap draws. The seed mixes
// in the cell's identity so that cells do not share draws.
func cell(c Cell, obs []Observation, o AggregateOptions) Cell {
	byConv := map[string]*cluster{}
	var order []string
	for _, ob := range obs {
		if ob.Score == nil {
			c.Unparseable++
			continue
		}
		cl := byConv[ob.Conversation]
		if cl == nil {
			cl = &cluster{}
			byConv[ob.Conversation] = cl
			order = append(order, ob.Conversation)
		}
		cl.sum += *ob.Score
		cl.n++
		c.N++
	}
	c.Conversations = len(order)
	if c.N == 0 {
		return c
	}
	sort.Strings(order)
	cls := make([]cluster, len(order))
	var sum, n float64
	for i, k := range order {
		cls[i] = *byConv[k]
		sum += cls[i].sum
		n += cls[i].n
	}
	mean := sum / n
	c.Mean = &mean
	rng := rand.New(rand.NewPCG(o.Seed, cellSeed(c)))
	means := make([]float64, o.Bootstrap)
	for b := range means {
		var bs, bn float64
		for range cls {
			k := cls[rng.IntN(len(cls))]
			bs += k.sum
			bn += k.n
		}
		means[b] = bs / bn
	}
	slices.Sort(means)
	alpha := (1 - o.Level) / 2
	lo := stat.Quantile(alpha, stat.LinInterp, means, nil)
	hi := stat.Quantile(1-alpha, stat.LinInterp, means, nil)
	c.Low, c.High = &lo, &hi
	return c
}

// cellSeed hashes a cell's identity (FNV-1a) into the second PCG seed word.
func cellSeed(c Cell) uint64 {
	key := c.Arm + "\x00" + c.Metric + "\x00" + c.Persona
	if c.Turn != nil {
		key += fmt.Sprintf("\x00%d", *c.Turn)
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return h
}
