package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"

	"tether/axis"
	"tether/engine"
	"tether/steer"
)

// SteerOptions sets what SteerOverhead measures.
type SteerOptions struct {
	// Layers are the capped layers; default: 8 consecutive layers centred in
	// the model (all layers when it has fewer than 8).
	Layers       []int
	PromptTokens int // prompt length before decoding (default 16)
	DecodeTokens int // new tokens per run (default 32)
	Repeats      int // best of this many alternating pairs of runs (default 3)
}

// SteerReport is the result of SteerOverhead; its JSON keys are those of
// `tether bench steer --json`.
type SteerReport struct {
	Layers []int `json:"layers"`
	// BaselineTPS is decode tokens/s without hooks; CappedTPS with a cap on
	// every layer of Layers; CappedRecordTPS the same with telemetry.
	BaselineTPS     float64 `json:"baseline_decode_tps"`
	CappedTPS       float64 `json:"capped_decode_tps"`
	CappedRecordTPS float64 `json:"capped_telemetry_decode_tps"`
	// Ratio is CappedTPS / BaselineTPS (goal >= 0.97); RecordRatio likewise
	// with telemetry.
	Ratio       float64 `json:"ratio"`
	RecordRatio float64 `json:"telemetry_ratio"`
	// MedianPairRatio is the median over repeats of capped/baseline rates
	// measured back to back: less sensitive than Ratio to a machine whose
	// load changes during the run.
	MedianPairRatio float64 `json:"median_pair_ratio"`
	// OverheadMSPerToken is the time capping adds to one decode step,
	// 1/CappedTPS - 1/BaselineTPS, in milliseconds.
	OverheadMSPerToken float64 `json:"overhead_ms_per_token"`
	DecodeTokens       int     `json:"decode_tokens"`
	Repeats            int     `json:"repeats"`
}

// SteerOverhead measures decode speed at batch 1 with and without capping
// on Layers, in the same run: after one warm-up of each variant (graph
// compilation), the variants alternate Repeats times (in reverse order
// every other time) and the best rate of each is kept. The caps are those steer.Resolve makes of a cap spec on
// Layers at tau 0 along a random axis: the cost of a cap does not depend on
// its values or on whether it acts.
func SteerOverhead(ctx context.Context, m *engine.Model, o SteerOptions) (SteerReport, error) {
	cfg := m.Config()
	if o.PromptTokens <= 0 {
		o.PromptTokens = 16
	}
	if o.DecodeTokens <= 1 {
		o.DecodeTokens = 32
	}
	if o.Repeats <= 0 {
		o.Repeats = 3
	}
	if o.Layers == nil {
		n := min(8, cfg.NumLayers)
		start := (cfg.NumLayers - n) / 2
		for l := start; l < start+n; l++ {
			o.Layers = append(o.Layers, l)
		}
	}
	rng := rand.New(rand.NewPCG(11, 12))
	ax := &axis.Axis{Model: "random", Layers: cfg.NumLayers, Hidden: cfg.HiddenSize}
	for range cfg.NumLayers {
		v := make([]float32, cfg.HiddenSize)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		ax.Axis = append(ax.Axis, v)
	}
	spec := steer.Spec{Cap: []steer.CapSpec{{Layers: steer.FormatLayers(o.Layers), Tau: []float64{0}}}}
	setup, err := steer.Resolve(ctx, spec, ax, steer.Model{Name: "bench steer", Layers: cfg.NumLayers, Hidden: cfg.HiddenSize})
	if err != nil {
		return SteerReport{}, fmt.Errorf("bench steer: %w", err)
	}
	// The two variants: the resolved caps alone, and with telemetry.
	caps := setup.Plan.Interventions
	capped, err := steer.Compile(steer.Plan{Interventions: caps}, cfg.HiddenSize, cfg.NumLayers)
	if err != nil {
		return SteerReport{}, fmt.Errorf("bench steer: %w", err)
	}
	recorded, err := steer.Compile(steer.Plan{Interventions: caps, Record: true}, cfg.HiddenSize, cfg.NumLayers)
	if err != nil {
		return SteerReport{}, fmt.Errorf("bench steer: %w", err)
	}
	prompt := make([]int, o.PromptTokens)
	for i := range prompt {
		prompt[i] = rng.IntN(cfg.VocabSize)
	}
	variants := []engine.Hooks{nil, capped.Hooks, recorded.Hooks}
	best := make([]float64, len(variants))
	var pairs []float64
	run := func(h engine.Hooks) (float64, error) {
		res, err := m.Generate(ctx, []engine.Request{{Prompt: prompt, MaxNewTokens: o.DecodeTokens, IgnoreEOS: true}},
			engine.GenerateOptions{Hooks: h})
		if err != nil {
			return 0, err
		}
		return perSecond(len(res[0].Tokens)-1, res[0].DecodeDuration), nil
	}
	for _, h := range variants { // warm-up: compile each graph
		if _, err := run(h); err != nil {
			return SteerReport{}, fmt.Errorf("bench steer: %w", err)
		}
	}
	for rep := range o.Repeats {
		rates := make([]float64, len(variants))
		for j := range variants {
			// Every other repeat runs the variants in reverse order, so that a
			// load rising or falling during a pair does not favour one side.
			i := j
			if rep%2 == 1 {
				i = len(variants) - 1 - j
			}
			h := variants[i]
			tps, err := run(h)
			if err != nil {
				return SteerReport{}, fmt.Errorf("bench steer: %w", err)
			}
			best[i] = max(best[i], tps)
			rates[i] = tps
		}
		if rates[0] > 0 {
			pairs = append(pairs, rates[1]/rates[0])
		}
	}
	r := SteerReport{Layers: o.Layers, BaselineTPS: best[0], CappedTPS: best[1], CappedRecordTPS: best[2],
		DecodeTokens: o.DecodeTokens, Repeats: o.Repeats}
	if best[0] > 0 && best[1] > 0 {
		r.Ratio, r.RecordRatio = best[1]/best[0], best[2]/best[0]
		r.OverheadMSPerToken = 1000 * (1/best[1] - 1/best[0])
	}
	if len(pairs) > 0 {
		slices.Sort(pairs)
		r.MedianPairRatio = pairs[len(pairs)/2]
	}
	return r, nil
}
