package probe

import (
	"fmt"
	"math"
	"sort"
)

// DefaultPercentiles are the percentiles at which tau is calibrated by default.
var DefaultPercentiles = []float64{1, 25, 50, 75}

// percentileSorted returns the p-th percentile (0..100) of s, sorted ascending and non-empty, with
// numpy's default "linear" method: the position h = (n-1)*p/100 is split into its integer part i
// and fraction f, and the result is s[i] + f*(s[i+1]-s[i]) (s[n-1] when i = n-1).
func percentileSorted(s []float64, p float64) float64 {
	h := float64(len(s)-1) * p / 100
	i := int(math.Floor(h))
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	f := h - float64(i)
	return s[i] + f*(s[i+1]-s[i])
}

// CheckPercentiles verifies a list of calibration percentiles: non-empty, each in [0, 100], no
// repeats.
func CheckPercentiles(ps []float64) error {
	if len(ps) == 0 {
		return fmt.Errorf("probe: no calibration percentiles")
	}
	seen := map[float64]bool{}
	for _, p := range ps {
		if math.IsNaN(p) || p < 0 || p > 100 {
			return fmt.Errorf("probe: calibration percentile %g outside [0, 100]", p)
		}
		if seen[p] {
			return fmt.Errorf("probe: calibration percentile %g listed twice", p)
		}
		seen[p] = true
	}
	return nil
}

// Calibrate returns tau[percentile][layer]: for each layer, the percentiles of projs[layer] (the
// projections of rollout activations on the layer's unit axis), computed as numpy's percentile (percentileSorted).
func Calibrate(projs [][]float64, percentiles []float64) ([][]float32, error) {
	if err := CheckPercentiles(percentiles); err != nil {
		return nil, err
	}
	tau := make([][]float32, len(percentiles))
	for i := range tau {
		tau[i] = make([]float32, len(projs))
	}
	for l, xs := range projs {
		if len(xs) == 0 {
			return nil, fmt.Errorf("probe: calibrate: layer %d has no projections", l)
		}
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		for i, p := range percentiles {
			tau[i][l] = float32(percentileSorted(s, p))
		}
	}
	return tau, nil
}
