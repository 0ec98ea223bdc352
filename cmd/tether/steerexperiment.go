package main

import (
	"fmt"
	"slices"

	"tether/axis"
	"tether/steer"
)

// checkExperimentFlags checks that --cap-experiment and --capping-config
// come together and replace the other capping flags.
func (s *steerFlags) checkExperimentFlags(changed func(string) bool) error {
	if (s.capExperiment == "") != (s.cappingConfig == "") {
		return usageErrorf("--cap-experiment and --capping-config go together: give both")
	}
	if s.capExperiment != "" && (s.capLayers != "" || changed("cap-percentile") || changed("cap-tau")) {
		return usageErrorf("--cap-experiment sets the capped layers and thresholds itself: drop --cap-layers/--cap-percentile/--cap-tau")
	}
	return nil
}

// experimentCaps reads --capping-config and returns the caps of
// --cap-experiment for a model of hidden size H and L layers.
func (s *steerFlags) experimentCaps(H, L int) ([]steer.Intervention, error) {
	cfg, err := axis.ReadCappingConfig(s.cappingConfig)
	if err != nil {
		return nil, err
	}
	caps, err := cfg.Caps(s.capExperiment)
	if err != nil {
		return nil, fmt.Errorf("--cap-experiment: %w", err)
	}
	ivs, err := steer.ExperimentCaps(caps, H, L)
	if err != nil {
		return nil, fmt.Errorf("--capping-config %s, experiment %q: %w", s.cappingConfig, s.capExperiment, err)
	}
	return ivs, nil
}

// capLayersOf lists the layers of the caps, sorted, once each.
func capLayersOf(ivs []steer.Intervention) []int {
	var out []int
	for _, iv := range ivs {
		if !slices.Contains(out, iv.Layer) {
			out = append(out, iv.Layer)
		}
	}
	slices.Sort(out)
	return out
}

// monitorExperiment reports, without an axis file, the projection on each
// experiment cap's own direction (the units of its threshold), measured at
// --measure-layer or the middle capped layer.
func (s *steerFlags) monitorExperiment(plan *steer.Plan, setup *steerSetup) error {
	setup.measureLayer = s.measureLayer
	if setup.measureLayer < 0 {
		setup.measureLayer = setup.capLayers[len(setup.capLayers)/2]
	}
	if !slices.Contains(setup.capLayers, setup.measureLayer) {
		return fmt.Errorf("--measure-layer %d: without --axis the projection is measured on a capped layer of the experiment (%s)", setup.measureLayer, steer.FormatLayers(setup.capLayers))
	}
	for _, iv := range plan.Interventions {
		if iv.Kind == steer.KindCap {
			if _, ok := plan.Monitor[iv.Layer]; !ok {
				plan.Monitor[iv.Layer] = iv.Vector
			}
		}
	}
	setup.summary = true
	return nil
}
