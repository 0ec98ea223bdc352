package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"tether/axis"
	"tether/model"
	"tether/steer"
)

// DemoDriftPercentile is the cap threshold percentile of DemoDrift (the
// paper's 25th percentile, or the axis file's nearest calibrated one).
const DemoDriftPercentile = 25

// DemoDrift runs a small drift benchmark for `tether demo`: one built-in
// scenario per domain, 2 seeds, 3 turns of at most 24 tokens, the cap and the
// projection at the axis file's default layer (axis.DefaultLayer) with tau
// at its 25th percentile (or the calibrated percentile nearest to it), no
// capability comparison. It writes the report into out (resuming a run
// there) and returns it; progress, when set, is called after each stored
// group of conversations.
func DemoDrift(ctx context.Context, m *model.Model, axisPath, out string, progress func(done, total int)) (*DriftReport, error) {
	ax, err := axis.Read(axisPath)
	if err != nil {
		return nil, err
	}
	if len(ax.Percentiles) == 0 {
		return nil, fmt.Errorf("bench: demo drift: axis %s has no calibrated tau", axisPath)
	}
	layer, _ := axis.DefaultLayer(ax)
	p := ax.Percentiles[0]
	for _, q := range ax.Percentiles {
		if abs(q-DemoDriftPercentile) < abs(p-DemoDriftPercentile) {
			p = q
		}
	}
	all, err := BuiltinScenarios()
	if err != nil {
		return nil, err
	}
	var scs []Scenario
	var domains []string
	for _, s := range all {
		if !slices.Contains(domains, s.Domain) {
			domains = append(domains, s.Domain)
			scs = append(scs, s)
		}
	}
	return RunDrift(ctx, m, DriftOptions{
		Out: out, Axis: ax, AxisPath: axisPath, Scenarios: scs,
		Seeds: []uint64{1, 2}, Turns: 3, MaxTokens: 24,
		Steering: steer.Spec{Cap: []steer.CapSpec{{Layers: strconv.Itoa(layer), Percentile: &p}}},
		Backend:  m.Engine.Backend().Name(), Progress: progress,
	})
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
