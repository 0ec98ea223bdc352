package engine

import (
	"fmt"
	"math"
	"slices"
	"strings"

	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Clamp keeps the projection of the residual stream on a direction within
// [Lo, Hi]: with p = <h, Dir>, h += (clamp(p, Lo, Hi) - p) * Dir. Dir must be
// a unit vector of length HiddenSize. Use math.Inf(-1) / math.Inf(1) for an
// open side: a floor at x is Clamp{Dir: u, Lo: x, Hi: +Inf}; setting the
// projection to x is Lo = Hi = x.
type Clamp struct {
	Dir    []float32
	Lo, Hi float32
}

// LayerHook changes (and optionally records) the residual stream after one
// decoder block. Its vectors and thresholds are graph inputs: changing them
// never recompiles; changing which layers are hooked, the number of clamps,
// whether Add is nil, NewestOnly or Record builds a new graph once.
//
// The values are uploaded to the backend once per change, not at every
// step: a vector (Add, a clamp's Dir) is recognised by its slice, so give a
// new value as a new slice (writing into one already passed to a run is not
// seen); Lo and Hi are read by value and may change between steps of a run
// (from GenerateOptions.OnToken), acting from the next step.
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

// hookInputs are the step graph inputs of one layer's hook (V as for
// stepInputs); a field is an input only when spec says so.
type hookInputs[V any] struct {
	spec hookSpec
	add  V // [H], when spec.hasAdd
	dirs V // [C, H]: the clamp directions, when spec.clamps > 0
	lo   V // [C]: the clamps' lower bounds, likewise
	hi   V // [C]: the clamps' upper bounds, likewise
}

// each visits the hook's inputs in the order the compiled graph takes them.
func (h *hookInputs[V]) each(visit func(*V)) {
	if h.spec.hasAdd {
		visit(&h.add)
	}
	if h.spec.clamps > 0 {
		visit(&h.dirs)
		visit(&h.lo)
		visit(&h.hi)
	}
}

// hookValues caches the tensors of the hook values last fed to a step, so
// that they are uploaded once per change of the hooks and not at every
// step: the backend keeps a tensor's device buffer after its first use, and
// these tensors are never donated to a step. Callers hold Model.mu.
type hookValues struct {
	specs   []hookSpec
	ids     [][]valueID // per spec: Add (when present), then each clamp's Dir, Lo, Hi
	tensors []hookInputs[*tensors.Tensor]
	builds  int // tensor sets built so far (tests)
}

// valueID identifies a hook value without reading it: a vector by its
// backing array and length, a bound by its value.
type valueID struct {
	vec   *float32
	n     int
	bound float32
}

// vectorID returns the identity of v (the zero valueID for an empty v).
func vectorID(v []float32) valueID {
	if len(v) == 0 {
		return valueID{}
	}
	return valueID{vec: &v[0], n: len(v)}
}

// hookIDs returns the identities of the values of hooks that specs use, in
// the order of hookValues.ids. A hook whose structure no longer matches its
// spec gets ids that match no cache, so that tensorsFor validates it again.
func hookIDs(specs []hookSpec, hooks Hooks) [][]valueID {
	ids := make([][]valueID, len(specs))
	for i, s := range specs {
		hk := hooks[s.layer]
		if hk == nil {
			ids[i] = []valueID{{n: -1}}
			continue
		}
		if s.hasAdd {
			ids[i] = append(ids[i], vectorID(hk.Add))
		}
		for _, c := range hk.Clamps {
			ids[i] = append(ids[i], vectorID(c.Dir), valueID{bound: c.Lo}, valueID{bound: c.Hi})
		}
	}
	return ids
}

// tensorsFor returns the hook value tensors of hooks for the step plan
// specs, building them only when the hooks' values changed since the last
// call: a vector (Add, a clamp's Dir) is compared by identity, so a new
// value must come in a new slice (writing into a slice already passed to a
// run is not seen); bounds are compared by value.
func (m *Model) tensorsFor(specs []hookSpec, hooks Hooks) ([]hookInputs[*tensors.Tensor], error) {
	hv := &m.hookValues
	ids := hookIDs(specs, hooks)
	if slices.Equal(hv.specs, specs) && slices.EqualFunc(hv.ids, ids, slices.Equal) {
		return hv.tensors, nil
	}
	// The hooks changed since the plan was made: check them again.
	now, err := m.hookSpecs(hooks)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(now, specs) {
		return nil, fmt.Errorf("engine: the hooks' structure (layers, Add, number of clamps, NewestOnly, Record) changed during a run")
	}
	hv.free()
	H := m.cfg.HiddenSize
	built := make([]hookInputs[*tensors.Tensor], len(specs))
	for i, s := range specs {
		hk := hooks[s.layer]
		in := hookInputs[*tensors.Tensor]{spec: s}
		if s.hasAdd {
			in.add = tensors.FromFlatDataAndDimensions(hk.Add, H)
		}
		if C := s.clamps; C > 0 {
			dirs := make([]float32, 0, C*H)
			lo, hi := make([]float32, C), make([]float32, C)
			for c, cl := range hk.Clamps {
				dirs = append(dirs, cl.Dir...)
				lo[c], hi[c] = cl.Lo, cl.Hi
			}
			in.dirs = tensors.FromFlatDataAndDimensions(dirs, C, H)
			in.lo = tensors.FromFlatDataAndDimensions(lo, C)
			in.hi = tensors.FromFlatDataAndDimensions(hi, C)
		}
		built[i] = in
	}
	hv.specs, hv.ids, hv.tensors = specs, ids, built
	hv.builds++
	return built, nil
}

// free releases the cached tensors.
func (hv *hookValues) free() {
	for i := range hv.tensors {
		hv.tensors[i].each(func(t **tensors.Tensor) { _ = (*t).FinalizeAll() })
	}
	hv.specs, hv.ids, hv.tensors = nil, nil, nil
}

// specKey is a string identifying the graph structure.
func specKey(plan stepPlan) string {
	allLogits, specs, capture := plan.allLogits, plan.hooks, plan.capture
	var b strings.Builder
	fmt.Fprintf(&b, "all=%v;rows=%d,%v;", allLogits, plan.rowClamps, plan.rowSlots)
	for _, s := range specs {
		fmt.Fprintf(&b, "h%d:%v,%d,%v,%v;", s.layer, s.hasAdd, s.clamps, s.newestOnly, s.record)
	}
	fmt.Fprintf(&b, "capture=%v", capture)
	return b.String()
}

// hook applies a layer hook to h [B, T, H] and returns the new h and, when
// recording, the projections before each clamp and after the whole hook
// [B, T, C].
func (sb *stepBuilder) hook(h *G.Node, hk hookInputs[*G.Node]) (*G.Node, *G.Node, *G.Node) {
	B, T, H := sb.batch, sb.steps, sb.m.cfg.HiddenSize
	orig := h
	if hk.spec.hasAdd {
		h = G.Add(h, G.Reshape(hk.add, 1, 1, H))
	}
	C := hk.spec.clamps
	dirs := make([]*G.Node, C)
	var before []*G.Node
	for c := range C {
		// One clamp (the common case) takes its inputs whole, without Slice.
		dir, lo, hi := hk.dirs, hk.lo, hk.hi
		if C > 1 {
			dir = G.Slice(hk.dirs, G.AxisRange(c, c+1))
			lo = G.Slice(hk.lo, G.AxisRange(c, c+1))
			hi = G.Slice(hk.hi, G.AxisRange(c, c+1))
		}
		u := G.Reshape(dir, 1, 1, H)
		dirs[c] = u
		proj := project(h, u) // [B, T]
		before = append(before, proj)
		clamped := G.Min(G.Max(proj, G.Reshape(lo)), G.Reshape(hi))
		delta := G.Sub(clamped, proj) // exactly 0 for an open clamp
		h = G.Add(h, G.Mul(G.Reshape(delta, B, T, 1), u))
	}
	if hk.spec.newestOnly && T > 1 {
		h = G.Concatenate([]*G.Node{
			G.Slice(orig, G.AxisRange(), G.AxisRange(0, T-1)),
			G.Slice(h, G.AxisRange(), G.AxisRange(T-1, T)),
		}, 1)
	}
	if !hk.spec.record {
		return h, nil, nil
	}
	after := make([]*G.Node, C)
	for c, u := range dirs {
		after[c] = project(h, u)
	}
	return h, G.Stack(before, -1), G.Stack(after, -1)
}

// project returns the projections [B, T] of h [B, T, H] on u [1 or B, 1, H]
// (broadcast over the positions by the product itself, not materialised).
// Hooks and row hooks share it, so that a row gets the same projection
// bits from either.
func project(h, u *G.Node) *G.Node {
	return G.ReduceSum(G.Mul(h, u), -1)
}
