package steer

import (
	"context"
	"fmt"
	"math"

	"tether/engine"
)

// NeutralPrompt is the text whose residual norms MeanResidualNorms measures
// when a caller has no better prompt.
const NeutralPrompt = "The following is a short, plain description of an ordinary day."

// MeanResidualNorms runs one Forward pass over prompt (token ids, BOS
// included by the caller) and returns, per layer, the mean of |h| over the
// prompt's positions except the first: the first position (BOS) carries
// outsized "attention sink" norms in most models. A one-token prompt uses
// that token.
func MeanResidualNorms(ctx context.Context, m *engine.Model, prompt []int, layers []int) (map[int]float64, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("steer: residual norms: empty prompt")
	}
	res, err := m.Forward(ctx, [][]int{prompt}, engine.ForwardOptions{CaptureLayers: layers})
	if err != nil {
		return nil, fmt.Errorf("steer: residual norms: %w", err)
	}
	out := map[int]float64{}
	for _, l := range layers {
		rows := res.Captured[l][0]
		if len(rows) > 1 {
			rows = rows[1:]
		}
		var sum float64
		for _, h := range rows {
			var s float64
			for _, x := range h {
				s += float64(x) * float64(x)
			}
			sum += math.Sqrt(s)
		}
		out[l] = sum / float64(len(rows))
	}
	return out, nil
}

// ScaleByNorms multiplies the Alpha of every add by the norm of its layer
// (alpha "in units of the layer's mean residual norm").
func ScaleByNorms(ivs []Intervention, norms map[int]float64) error {
	for i := range ivs {
		if ivs[i].Kind != KindAdd {
			continue
		}
		n, ok := norms[ivs[i].Layer]
		if !ok {
			return fmt.Errorf("steer: no residual norm for layer %d", ivs[i].Layer)
		}
		ivs[i].Alpha *= float32(n)
	}
	return nil
}
