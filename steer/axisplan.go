package steer

import (
	"fmt"
	"math"
	"slices"

	"tether/axis"
)

// AxisTaus returns the calibrated thresholds of the given layers at a
// percentile stored in the axis file.
func AxisTaus(a *axis.Axis, layers []int, percentile float64) ([]float32, error) {
	taus := make([]float32, len(layers))
	for i, l := range layers {
		t, err := a.TauAt(percentile, l)
		if err != nil {
			return nil, fmt.Errorf("steer: cap tau: %w", err)
		}
		taus[i] = t
	}
	return taus, nil
}

// ExpandTaus turns one threshold, or one per layer, into one per layer.
func ExpandTaus(taus []float32, layers []int) ([]float32, error) {
	for i, t := range taus {
		if math.IsNaN(float64(t)) || math.IsInf(float64(t), 1) {
			return nil, fmt.Errorf("steer: cap tau %d is %v, expected a finite number (or -inf)", i, t)
		}
	}
	switch len(taus) {
	case 1:
		out := make([]float32, len(layers))
		for i := range out {
			out[i] = taus[0]
		}
		return out, nil
	case len(layers):
		return append([]float32(nil), taus...), nil
	}
	return nil, fmt.Errorf("steer: %d cap thresholds for %d capped layers (%s): give one value or one per layer", len(taus), len(layers), FormatLayers(layers))
}

// AxisCaps returns a cap on the unit axis of each layer at taus[i].
func AxisCaps(a *axis.Axis, layers []int, taus []float32) ([]Intervention, error) {
	if len(taus) != len(layers) {
		return nil, fmt.Errorf("steer: %d thresholds for %d layers", len(taus), len(layers))
	}
	var out []Intervention
	for i, l := range layers {
		u, err := a.Unit(l)
		if err != nil {
			return nil, fmt.Errorf("steer: cap: %w", err)
		}
		out = append(out, Intervention{Kind: KindCap, Layer: l, Vector: u, Tau: taus[i]})
	}
	return out, nil
}

// AxisAblations returns, for each layer, an ablation that sets the
// projection on the unit axis to value (0 removes the axis component).
func AxisAblations(a *axis.Axis, layers []int, value float32) ([]Intervention, error) {
	var out []Intervention
	for _, l := range layers {
		u, err := a.Unit(l)
		if err != nil {
			return nil, fmt.Errorf("steer: ablate: %w", err)
		}
		out = append(out, Intervention{Kind: KindAblate, Layer: l, Vector: u, Value: value})
	}
	return out, nil
}

// Units of a steering coefficient (--steer-units).
const (
	// UnitsRaw: the coefficient multiplies the vector as stored: an axis file's axis of the layer,
	// not normalised (the reference's ActivationSteering addition, coeff * axis[layer]), or a
	// control vector's direction as the file holds it.
	UnitsRaw = "raw"
	// UnitsUnit: the coefficient multiplies the vector scaled to unit length, so it is the change
	// of the projection on that direction.
	UnitsUnit = "unit"
)

// AxisAdds returns, for each layer, an add of alpha times the axis of that layer in the given
// units (positive alpha pushes toward the default Assistant).
func AxisAdds(a *axis.Axis, layers []int, alpha float32, units string) ([]Intervention, error) {
	var out []Intervention
	for _, l := range layers {
		if l < 0 || l >= a.Layers {
			return nil, fmt.Errorf("steer: add: layer %d out of range [0, %d)", l, a.Layers)
		}
		out = append(out, Intervention{Kind: KindAdd, Layer: l, Vector: slices.Clone(a.Axis[l]), Alpha: alpha})
	}
	if err := ApplyUnits(out, units); err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyUnits rescales the vectors of adds to the coefficient's units: UnitsRaw leaves them as
// they are, UnitsUnit normalises each.
func ApplyUnits(adds []Intervention, units string) error {
	switch units {
	case UnitsRaw:
		return nil
	case UnitsUnit:
		for i := range adds {
			u, err := axis.UnitVector(adds[i].Vector)
			if err != nil {
				return fmt.Errorf("steer: add at layer %d: %w", adds[i].Layer, err)
			}
			adds[i].Vector = u
		}
		return nil
	}
	return fmt.Errorf("steer: steering units %q: expected %s or %s", units, UnitsRaw, UnitsUnit)
}

// NormsFromAxis returns, per layer, the norm of the axis file's
// default_mean: the size of the default Assistant's mean activation there.
func NormsFromAxis(a *axis.Axis, layers []int) (map[int]float64, error) {
	if a.DefaultMean == nil {
		return nil, fmt.Errorf("steer: the axis file has no default_mean (an imported axis), no norm to scale by")
	}
	out := map[int]float64{}
	for _, l := range layers {
		if l < 0 || l >= a.Layers {
			return nil, fmt.Errorf("steer: layer %d out of range for an axis of %d layers", l, a.Layers)
		}
		n := axis.Norm(a.DefaultMean[l])
		if n == 0 {
			return nil, fmt.Errorf("steer: axis default_mean at layer %d is zero, no norm to scale by", l)
		}
		out[l] = n
	}
	return out, nil
}

// AxisControlVector exports the unit axis of each layer, times scale, as a
// llama.cpp control vector (layers nil: every layer from 1, since the format
// cannot hold block 0). A positive scale pushes toward the Assistant.
func AxisControlVector(a *axis.Axis, layers []int, scale float32) (*ControlVector, error) {
	if !finite(scale) {
		return nil, fmt.Errorf("steer: export: scale %v, expected a finite number", scale)
	}
	if layers == nil {
		for l := 1; l < a.Layers; l++ {
			layers = append(layers, l)
		}
	}
	cv := &ControlVector{Directions: map[int][]float32{}, Hidden: a.Hidden, ModelHint: a.Model}
	for _, l := range layers {
		if l == 0 {
			return nil, fmt.Errorf("steer: export: layer 0 cannot be exported: llama.cpp control vectors start at block 1 (direction.0 is rejected)")
		}
		u, err := a.Unit(l)
		if err != nil {
			return nil, fmt.Errorf("steer: export: %w", err)
		}
		for i := range u {
			u[i] *= scale
		}
		cv.Directions[l] = u
	}
	return cv, nil
}
