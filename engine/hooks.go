package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Clamp keeps the projection of the residual stream on a direction within
// [Lo, Hi]: with p = <h, Dir>, h += (clamp(p, Lo, Hi) - p) * Dir. Dir must be
// a unit vector of length HiddenSize. Use math.Inf(-1) / math.Inf(1) for an
// open side. The Assistant Axis cap is Clamp{Dir: u, Lo: tau, Hi: +Inf};
// ablation along u is Lo = Hi = 0.
type Clamp struct {
	Dir    []float32
	Lo, Hi float32
}

// LayerHook changes (and optionally records) the residual stream after one
// decoder block. Its vectors and thresholds are graph inputs: changing them
// never recompiles; changing which layers are hooked, the number of clamps,
// whether Add is nil, NewestOnly or Record builds a new graph once.
type LayerHook struct {
	// Add is added to the residual stream first (nil: nothing).
	Add []float32
	// Clamps are applied in order after Add.
	Clamps []Clamp
	// NewestOnly restricts the hook to the newest position of each step (the
	// last prompt position during prefill, the new token during decoding).
	// By default the hook acts on every position.
	NewestOnly bool
	// Record returns, for every position, each clamp's projection before the
	// hook and after the whole hook (telemetry).
	Record bool
}

// Hooks maps a layer index (0-based; the hook acts on that block's output)
// to its hook.
type Hooks map[int]*LayerHook

// Cap returns the Assistant Axis cap: a floor at tau on the projection onto
// the unit vector u (h += max(0, tau - <h,u>) * u).
func Cap(u []float32, tau float32) Clamp {
	return Clamp{Dir: u, Lo: tau, Hi: float32(math.Inf(1))}
}

// hookSpec is the structural part of a hook: what changes the graph.
type hookSpec struct {
	layer      int
	hasAdd     bool
	clamps     int
	newestOnly bool
	record     bool
}

// hookSpecs validates hooks against the model and returns their structure,
// sorted by layer, and the layers in that order.
func (m *Model) hookSpecs(hooks Hooks) ([]hookSpec, error) {
	var specs []hookSpec
	for layer, hk := range hooks {
		if hk == nil {
			continue
		}
		if layer < 0 || layer >= m.cfg.NumLayers {
			return nil, fmt.Errorf("engine: hook on layer %d, expected 0..%d", layer, m.cfg.NumLayers-1)
		}
		if hk.Add != nil && len(hk.Add) != m.cfg.HiddenSize {
			return nil, fmt.Errorf("engine: hook on layer %d: Add has length %d, expected HiddenSize %d", layer, len(hk.Add), m.cfg.HiddenSize)
		}
		for i, c := range hk.Clamps {
			if len(c.Dir) != m.cfg.HiddenSize {
				return nil, fmt.Errorf("engine: hook on layer %d: clamp %d: Dir has length %d, expected HiddenSize %d", layer, i, len(c.Dir), m.cfg.HiddenSize)
			}
			var norm float64
			for _, v := range c.Dir {
				norm += float64(v) * float64(v)
			}
			if norm = math.Sqrt(norm); !(math.Abs(norm-1) <= 1e-3) {
				return nil, fmt.Errorf("engine: hook on layer %d: clamp %d: Dir has norm %g, expected a unit vector", layer, i, norm)
			}
			if c.Lo > c.Hi || math.IsNaN(float64(c.Lo)) || math.IsNaN(float64(c.Hi)) {
				return nil, fmt.Errorf("engine: hook on layer %d: clamp %d: Lo %g, Hi %g, expected Lo <= Hi", layer, i, c.Lo, c.Hi)
			}
		}
		if hk.Add == nil && len(hk.Clamps) == 0 && !hk.Record {
			continue
		}
		specs = append(specs, hookSpec{layer: layer, hasAdd: hk.Add != nil, clamps: len(hk.Clamps),
			newestOnly: hk.NewestOnly, record: hk.Record && len(hk.Clamps) > 0})
	}
	slices.SortFunc(specs, func(a, b hookSpec) int { return a.layer - b.layer })
	return specs, nil
}

// hookInputs returns the host values fed to the graph for the hooks, in
// the order the graph declares them: per hooked layer, Add [H] when present,
// then the clamp directions [C, H], lows [C] and highs [C].
func hookInputs(specs []hookSpec, hooks Hooks) []any {
	var in []any
	for _, s := range specs {
		hk := hooks[s.layer]
		if s.hasAdd {
			in = append(in, slices.Clone(hk.Add))
		}
		if s.clamps > 0 {
			dirs := make([][]float32, s.clamps)
			lo := make([]float32, s.clamps)
			hi := make([]float32, s.clamps)
			for i, c := range hk.Clamps {
				dirs[i] = slices.Clone(c.Dir)
				lo[i], hi[i] = c.Lo, c.Hi
			}
			in = append(in, dirs, lo, hi)
		}
	}
	return in
}

// specKey is a string identifying the graph structure.
func specKey(allLogits bool, specs []hookSpec, capture []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "all=%v;", allLogits)
	for _, s := range specs {
		fmt.Fprintf(&b, "h%d:%v,%d,%v,%v;", s.layer, s.hasAdd, s.clamps, s.newestOnly, s.record)
	}
	fmt.Fprintf(&b, "cap=%v", capture)
	return b.String()
}
