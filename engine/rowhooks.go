package engine

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// Row hooks give every batch row its own hook values in one fixed graph
// structure, so that rows with different steering share a step and rows
// joining or leaving never recompile. A plan with rowClamps = C > 0 hooks
// every layer with, per row, an Add vector, C clamps (applied in order
// after Add), a NewestOnly flag, and records the projections on the C
// directions before each clamp and after the whole hook. A row without a
// hook on a layer gets neutral values: a zero Add, zero clamp directions
// with bounds -Inf and +Inf. Those change the residual stream by exactly
// zero, so an untouched row computes what it computes without hooks.

// rowHookInputs are one layer's row hook inputs (V as for stepInputs).
type rowHookInputs[V any] struct {
	add    V // [B, H]
	dirs   V // [B, C, H]
	lo, hi V // [B, C]
	newest V // [B] float32: 1 where the row's hook is NewestOnly
}

// each visits the inputs in the order the compiled graph takes them.
func (h *rowHookInputs[V]) each(visit func(*V)) {
	visit(&h.add)
	visit(&h.dirs)
	visit(&h.lo)
	visit(&h.hi)
	visit(&h.newest)
}

// rowHook applies one layer's row hooks to h [B, T, H] and returns the new
// h and the projections before each clamp and after the whole hook
// [B, T, C].
func (sb *stepBuilder) rowHook(h *G.Node, in rowHookInputs[*G.Node]) (*G.Node, *G.Node, *G.Node) {
	B, T, H := sb.batch, sb.steps, sb.m.cfg.HiddenSize
	C := sb.plan.rowClamps
	orig := h
	h = G.Add(h, G.Reshape(in.add, B, 1, H))
	dirs := make([]*G.Node, C)
	before := make([]*G.Node, C)
	for c := range C {
		u := G.Reshape(G.Slice(in.dirs, G.AxisRange(), G.AxisRange(c, c+1)), B, H)
		lo := G.Reshape(G.Slice(in.lo, G.AxisRange(), G.AxisRange(c, c+1)), B, 1)
		hi := G.Reshape(G.Slice(in.hi, G.AxisRange(), G.AxisRange(c, c+1)), B, 1)
		proj := project(h, G.Reshape(u, B, 1, H)) // [B, T]
		before[c], dirs[c] = proj, u
		delta := G.Sub(G.Min(G.Max(proj, lo), hi), proj) // exactly 0 for an open clamp
		h = G.Add(h, G.Mul(G.Reshape(delta, B, T, 1), G.Reshape(u, B, 1, H)))
	}
	if T > 1 {
		// NewestOnly rows keep the unhooked stream before their last position.
		notLast := G.LessThan(G.Iota(sb.g, shapeInt32(T), 0), G.Const(sb.g, int32(T-1)))
		newest := G.GreaterThan(in.newest, G.ScalarZero(sb.g, dtypes.Float32))
		keep := G.LogicalAnd(G.BroadcastToDims(G.Reshape(notLast, 1, T, 1), B, T, H),
			G.BroadcastToDims(G.Reshape(newest, B, 1, 1), B, T, H))
		h = G.Where(keep, orig, h)
	}
	after := make([]*G.Node, C)
	for c, u := range dirs {
		after[c] = project(h, G.Reshape(u, B, 1, H))
	}
	return h, G.Stack(before, -1), G.Stack(after, -1)
}

// checkRowHooks validates one row's hooks for a row hook plan of clamps
// clamps per layer.
func (m *Model) checkRowHooks(hooks Hooks, clamps int) error {
	if _, err := m.hookSpecs(hooks); err != nil {
		return err
	}
	for layer, hk := range hooks {
		if hk != nil && len(hk.Clamps) > clamps {
			return fmt.Errorf("engine: hook on layer %d has %d clamps, expected at most %d (BatcherOptions.MaxClamps)", layer, len(hk.Clamps), clamps)
		}
	}
	return nil
}

// rowHookTensors builds the row hook inputs of every layer for a batch
// whose row r has hooks rows[r] (nil: untouched), C clamps per layer.
func (m *Model) rowHookTensors(rows []Hooks, C int) []rowHookInputs[*tensors.Tensor] {
	B, H, L := len(rows), m.cfg.HiddenSize, m.cfg.NumLayers
	inf := float32(math.Inf(1))
	out := make([]rowHookInputs[*tensors.Tensor], L)
	for l := range L {
		add := make([]float32, B*H)
		dirs := make([]float32, B*C*H)
		lo, hi := make([]float32, B*C), make([]float32, B*C)
		newest := make([]float32, B)
		for r, hooks := range rows {
			for c := range C {
				lo[r*C+c], hi[r*C+c] = -inf, inf
			}
			hk := hooks[l]
			if hk == nil {
				continue
			}
			copy(add[r*H:(r+1)*H], hk.Add)
			for c, cl := range hk.Clamps {
				copy(dirs[(r*C+c)*H:(r*C+c+1)*H], cl.Dir)
				lo[r*C+c], hi[r*C+c] = cl.Lo, cl.Hi
			}
			if hk.NewestOnly {
				newest[r] = 1
			}
		}
		out[l] = rowHookInputs[*tensors.Tensor]{
			add:    tensors.FromFlatDataAndDimensions(add, B, H),
			dirs:   tensors.FromFlatDataAndDimensions(dirs, B, C, H),
			lo:     tensors.FromFlatDataAndDimensions(lo, B, C),
			hi:     tensors.FromFlatDataAndDimensions(hi, B, C),
			newest: tensors.FromFlatDataAndDimensions(newest, B),
		}
	}
	return out
}

// freeRowHookTensors releases row hook inputs.
func freeRowHookTensors(in []rowHookInputs[*tensors.Tensor]) {
	for i := range in {
		in[i].each(func(t **tensors.Tensor) { _ = (*t).FinalizeAll() })
	}
}

// rowRecords returns the telemetry of batch row b at step position t (of T)
// for the layers where hooks records, as Generate's telemetry gives it.
func rowRecords(out *stepResult, hooks Hooks, C, b, t, T int) map[int]HookRecord {
	var tel map[int]HookRecord
	for layer, hk := range hooks {
		if hk == nil || !hk.Record || len(hk.Clamps) == 0 {
			continue
		}
		if tel == nil {
			tel = map[int]HookRecord{}
		}
		n := len(hk.Clamps)
		row := (b*T + t) * C
		r := HookRecord{
			Before: append([]float32(nil), out.before[layer][row:row+n]...),
			After:  append([]float32(nil), out.after[layer][row:row+n]...),
			Acted:  make([]bool, n),
		}
		for c := range n {
			r.Acted[c] = r.Before[c] < hk.Clamps[c].Lo || r.Before[c] > hk.Clamps[c].Hi
		}
		tel[layer] = r
	}
	return tel
}
