package steer

import (
	"fmt"

	"tether/axis"
)

// ExperimentCaps turns the caps of a reference capping-config experiment
// (axis.CappingConfig.Caps, already in tether's floor convention) into cap
// interventions, checked against a model's hidden size and layer count.
func ExperimentCaps(caps []axis.Cap, hidden, numLayers int) ([]Intervention, error) {
	out := make([]Intervention, 0, len(caps))
	for i, c := range caps {
		if c.Layer < 0 || c.Layer >= numLayers {
			return nil, fmt.Errorf("steer: cap %d (vector %q) is on layer %d, but the model has %d layers (0..%d)", i, c.Vector, c.Layer, numLayers, numLayers-1)
		}
		if len(c.Dir) != hidden {
			return nil, fmt.Errorf("steer: cap %d (vector %q) has %d values, but the model's hidden size is %d", i, c.Vector, len(c.Dir), hidden)
		}
		out = append(out, Intervention{Kind: KindCap, Layer: c.Layer, Vector: c.Dir, Tau: c.Tau})
	}
	return out, nil
}
