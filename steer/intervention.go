package steer

import (
	"fmt"
	"math"
	"slices"

	"tether/axis"
	"tether/engine"
)

// Kind is the type of an intervention.
type Kind int

const (
	// KindCap floors the projection on the unit direction at Tau:
	// h <- h + max(0, Tau - <h,u>) u.
	KindCap Kind = iota
	// KindAdd adds Alpha * Vector to the residual stream.
	KindAdd
	// KindAblate sets the projection on the unit direction to Value
	// (0 removes the component): h <- h + (Value - <h,u>) u.
	KindAblate
)

// String names the kind as the command line and telemetry do.
func (k Kind) String() string {
	switch k {
	case KindCap:
		return "cap"
	case KindAdd:
		return "add"
	case KindAblate:
		return "ablate"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Intervention is one change to the residual stream after one decoder block.
type Intervention struct {
	Kind  Kind
	Layer int // 0-based decoder block whose output is changed
	// Vector is the direction for KindCap and KindAblate (any non-zero
	// length: Compile normalises it) and the vector added for KindAdd (used
	// as given, scaled by Alpha).
	Vector []float32
	Tau    float32 // KindCap: the floor; -Inf turns the cap into a no-op
	Alpha  float32 // KindAdd: the scale of Vector
	Value  float32 // KindAblate: the projection the direction is set to
}

// Plan is a set of interventions applied together.
type Plan struct {
	Interventions []Intervention
	// NewestOnly restricts every intervention to the newest position of each
	// step (the last prompt token during prefill, then each new token);
	// by default they act on every position.
	NewestOnly bool
	// Record asks for telemetry: on every layer with a cap or an ablation,
	// the projection on its direction before and after it acted.
	Record bool
	// Monitor adds record-only telemetry on these unit-normalised directions
	// at layers that have no cap or ablation (e.g. the axis at the layer
	// where drift is measured). A monitor never changes the stream.
	Monitor map[int][]float32
}

// Compiled is a Plan turned into engine hooks, plus what is needed to read
// its telemetry back.
type Compiled struct {
	// Hooks are passed to engine.Generate or engine.Forward.
	Hooks engine.Hooks
	// slots says, per recorded layer, which clamp telemetry reports.
	slots map[int]slot
}

// slot is the clamp of a layer that telemetry reports.
type slot struct {
	clamp int
	isCap bool
}

// Compile validates p against a model's shape (hidden size, layer count)
// and builds engine hooks. Adds on the same layer are summed; caps and
// ablations on a layer are applied after the adds, in the order given.
// Vectors and thresholds are graph inputs, so compiling a plan that differs
// only in values reuses the engine's compiled graph.
func Compile(p Plan, hidden, numLayers int) (*Compiled, error) {
	c := &Compiled{Hooks: engine.Hooks{}, slots: map[int]slot{}}
	hook := func(layer int) *engine.LayerHook {
		hk := c.Hooks[layer]
		if hk == nil {
			hk = &engine.LayerHook{NewestOnly: p.NewestOnly}
			c.Hooks[layer] = hk
		}
		return hk
	}
	for i, iv := range p.Interventions {
		where := fmt.Sprintf("steer: intervention %d (%s on layer %d)", i, iv.Kind, iv.Layer)
		if iv.Layer < 0 || iv.Layer >= numLayers {
			return nil, fmt.Errorf("%s: layer out of range, the model has %d layers (0..%d)", where, numLayers, numLayers-1)
		}
		if len(iv.Vector) != hidden {
			return nil, fmt.Errorf("%s: vector has length %d, expected the model's hidden size %d", where, len(iv.Vector), hidden)
		}
		if err := checkFinite(iv.Vector); err != nil {
			return nil, fmt.Errorf("%s: vector: %w", where, err)
		}
		hk := hook(iv.Layer)
		switch iv.Kind {
		case KindAdd:
			if !finite(iv.Alpha) {
				return nil, fmt.Errorf("%s: alpha is %v, expected a finite number", where, iv.Alpha)
			}
			if hk.Add == nil {
				hk.Add = make([]float32, hidden)
			}
			for j, x := range iv.Vector {
				hk.Add[j] += iv.Alpha * x
			}
		case KindCap, KindAblate:
			u, err := axis.UnitVector(iv.Vector)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			var cl engine.Clamp
			if iv.Kind == KindCap {
				if math.IsNaN(float64(iv.Tau)) || math.IsInf(float64(iv.Tau), 1) {
					return nil, fmt.Errorf("%s: tau is %v, expected a finite number (or -Inf for no cap)", where, iv.Tau)
				}
				cl = engine.Clamp{Dir: u, Lo: iv.Tau, Hi: float32(math.Inf(1))}
			} else {
				if !finite(iv.Value) {
					return nil, fmt.Errorf("%s: value is %v, expected a finite number", where, iv.Value)
				}
				cl = engine.Clamp{Dir: u, Lo: iv.Value, Hi: iv.Value}
			}
			hk.Clamps = append(hk.Clamps, cl)
			if s, ok := c.slots[iv.Layer]; !ok || (!s.isCap && iv.Kind == KindCap) {
				c.slots[iv.Layer] = slot{clamp: len(hk.Clamps) - 1, isCap: iv.Kind == KindCap}
			}
		default:
			return nil, fmt.Errorf("%s: unknown kind", where)
		}
	}
	if p.Record {
		for _, layer := range sortedKeys(p.Monitor) {
			if _, ok := c.slots[layer]; ok {
				continue
			}
			dir := p.Monitor[layer]
			where := fmt.Sprintf("steer: monitor on layer %d", layer)
			if layer < 0 || layer >= numLayers {
				return nil, fmt.Errorf("%s: layer out of range, the model has %d layers (0..%d)", where, numLayers, numLayers-1)
			}
			if len(dir) != hidden {
				return nil, fmt.Errorf("%s: direction has length %d, expected the model's hidden size %d", where, len(dir), hidden)
			}
			u, err := axis.UnitVector(dir)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			hk := hook(layer)
			hk.Clamps = append(hk.Clamps, engine.Clamp{Dir: u, Lo: float32(math.Inf(-1)), Hi: float32(math.Inf(1))})
			c.slots[layer] = slot{clamp: len(hk.Clamps) - 1}
		}
		for layer := range c.slots {
			c.Hooks[layer].Record = true
		}
	}
	return c, nil
}

// RecordedLayers lists, in order, the layers whose telemetry is reported.
func (c *Compiled) RecordedLayers() []int {
	return sortedKeys(c.slots)
}

func finite(x float32) bool {
	return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
}

func checkFinite(v []float32) error {
	for i, x := range v {
		if !finite(x) {
			return fmt.Errorf("value %d is %v, expected finite numbers", i, x)
		}
	}
	return nil
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
