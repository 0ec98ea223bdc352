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
	// Record asks for telemetry: one record per token on every layer with a
	// monitor, a cap or an ablation (TelemetryRecord says what it holds).
	Record bool
	// Monitor sets the direction whose projection a layer reports (e.g. the
	// axis at the layer where drift is measured and at every intervened
	// layer); a layer without one reports along its first cap's direction,
	// else its first ablation's. Recording never changes the stream.
	Monitor map[int][]float32
}

// Compiled is a Plan turned into engine hooks, plus what is needed to read
// its telemetry back.
type Compiled struct {
	// Hooks are passed to engine.Generate or engine.Forward.
	Hooks engine.Hooks
	// slots says, per recorded layer, how telemetry reads its hook's record.
	slots map[int]slot
}

// slot is how telemetry reads a recorded layer: its first clamp is along
// the reported direction (its Before and After are the record's), and caps
// lists the clamps that are caps along that direction.
type slot struct {
	caps []int
}

// parallelCos is the least cosine at which two unit directions count as the
// same direction for telemetry: far below the angle of any two distinct
// axes, far above the rounding of one direction normalised twice.
const parallelCos = 1 - 1e-5

// parallel reports whether unit vectors u and v point the same way.
func parallel(u, v []float32) bool {
	return dot(u, v) >= parallelCos
}

// dot computes <a,b> in float64.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// Compile validates p against a model's shape (hidden size, layer count)
// and builds engine hooks. Adds on the same layer are summed; caps and
// ablations on a layer are applied after the adds, in the order given.
// Vectors and thresholds are graph inputs, so compiling a plan that differs
// only in values reuses the engine's compiled graph. With Record, each
// recorded layer's first clamp is along its reported direction: when the
// layer's first cap or ablation is not, an open clamp along it (which never
// changes the stream) is put first.
func Compile(p Plan, hidden, numLayers int) (*Compiled, error) {
	c := &Compiled{Hooks: engine.Hooks{}, slots: map[int]slot{}}
	kinds := map[int][]Kind{} // per layer, the kind of each clamp
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
		hk := c.hook(iv.Layer, p.NewestOnly)
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
			kinds[iv.Layer] = append(kinds[iv.Layer], iv.Kind)
		default:
			return nil, fmt.Errorf("%s: unknown kind", where)
		}
	}
	if p.Record {
		if err := c.record(p, kinds, hidden, numLayers); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// hook returns the hook of layer, adding an empty one.
func (c *Compiled) hook(layer int, newestOnly bool) *engine.LayerHook {
	hk := c.Hooks[layer]
	if hk == nil {
		hk = &engine.LayerHook{NewestOnly: newestOnly}
		c.Hooks[layer] = hk
	}
	return hk
}

// record sets up the telemetry of every layer with a monitor or a clamp
// (kinds: the kind of each clamp of a layer): the layer's reported
// direction (its Monitor, else its first cap's, else its first clamp's)
// becomes its first clamp.
func (c *Compiled) record(p Plan, kinds map[int][]Kind, hidden, numLayers int) error {
	layers := sortedKeys(p.Monitor)
	for layer := range kinds {
		if _, ok := p.Monitor[layer]; !ok {
			layers = append(layers, layer)
		}
	}
	slices.Sort(layers)
	for _, layer := range layers {
		var dir []float32
		if mon, ok := p.Monitor[layer]; ok {
			where := fmt.Sprintf("steer: monitor on layer %d", layer)
			if layer < 0 || layer >= numLayers {
				return fmt.Errorf("%s: layer out of range, the model has %d layers (0..%d)", where, numLayers, numLayers-1)
			}
			if len(mon) != hidden {
				return fmt.Errorf("%s: direction has length %d, expected the model's hidden size %d", where, len(mon), hidden)
			}
			u, err := axis.UnitVector(mon)
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			dir = u
		} else {
			first := slices.Index(kinds[layer], KindCap)
			dir = c.Hooks[layer].Clamps[max(first, 0)].Dir
		}
		hk := c.hook(layer, p.NewestOnly)
		var caps []int
		for k, cl := range hk.Clamps {
			if kinds[layer][k] == KindCap && parallel(cl.Dir, dir) {
				caps = append(caps, k)
			}
		}
		if len(hk.Clamps) == 0 || !parallel(hk.Clamps[0].Dir, dir) {
			open := engine.Clamp{Dir: dir, Lo: float32(math.Inf(-1)), Hi: float32(math.Inf(1))}
			hk.Clamps = slices.Insert(hk.Clamps, 0, open)
			for i := range caps {
				caps[i]++
			}
		}
		hk.Record = true
		c.slots[layer] = slot{caps: caps}
	}
	return nil
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
