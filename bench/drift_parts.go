package bench

import (
	"context"
	"fmt"

	"tether/steer"
)

// driftVariance decomposes the projections of each arm (DecomposeVariance,
// default options: 1000 persona bootstrap resamples, seeded).
func driftVariance(recs []TurnRecord) ([]VarianceResult, error) {
	var out []VarianceResult
	for _, arm := range []string{ArmUncapped, ArmCapped} {
		v, err := DecomposeVariance(arm, TurnRecordsForVariance(recs, arm), VarianceOptions{})
		if err != nil {
			return nil, fmt.Errorf("bench: drift: variance of the %s arm: %w", arm, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// capability compares capped with uncapped on held-out text and questions,
// with the capped arm's caps (MeasureCapability, default options).
func (r *driftRunner) capability(ctx context.Context) (*CapabilityResult, error) {
	c, err := steer.Compile(steer.Plan{Interventions: r.arms()[1].caps}, r.m.Config.HiddenSize, r.m.Config.NumLayers)
	if err != nil {
		return nil, err
	}
	res, err := MeasureCapability(ctx, r.m, c.Hooks, CapabilityOptions{})
	if err != nil {
		return nil, fmt.Errorf("bench: drift: capability: %w", err)
	}
	return res, nil
}

// writeDriftReport writes report.json, report.md and the SVG plots, and
// validates report.json against the schema (WriteReport).
func writeDriftReport(dir string, rep *DriftReport) error {
	return WriteReport(dir, rep)
}
