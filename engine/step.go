package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// kvCache holds the K and V caches of every layer for one batch, resident on
// the backend: 2*NumLayers tensors of shape [B, kvHeads, S, HeadDim].
type kvCache struct {
	batch, slots int
	kv           []*tensors.Tensor
}

// newKVCache returns a zeroed cache for batch sequences and slots slots, in
// the model's cache dtype.
func (m *Model) newKVCache(batch, slots int) *kvCache {
	c := &kvCache{batch: batch, slots: slots, kv: make([]*tensors.Tensor, 2*m.cfg.NumLayers)}
	for i := range c.kv {
		c.kv[i] = tensors.FromShape(shapes.Make(m.cacheDType, batch, m.cfg.NumKVHeads, slots, m.cfg.HeadDim))
	}
	return c
}

// free releases the cache's buffers.
func (c *kvCache) free() {
	for _, t := range c.kv {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
	c.kv = nil
}

// stepRequest is one forward step over a batch.
type stepRequest struct {
	tokens [][]int32 // [B][T]
	pad    []int32   // [B]
	slot   int32
	// rowSlots, with plan.rowSlots, holds each row's slot instead of slot.
	rowSlots []int32
	cache    *kvCache
	plan     stepPlan
	hooks    Hooks
	// rows holds the row hook values of every layer (plan.rowClamps > 0).
	rows []rowHookInputs[*tensors.Tensor]
	step int // 0: prefill, k: decoding step k (for NonFiniteError)
}

// stepResult holds one step's host outputs.
type stepResult struct {
	logits   []float32         // [B*V] or [B*T*V]
	captured map[int][]float32 // layer -> [B*T*H]
	before   map[int][]float32 // recording layer -> [B*T*C]
	after    map[int][]float32
}

// execFor returns the compiled executable for plan (building it once).
// Callers hold m.mu.
func (m *Model) execFor(plan stepPlan) (*graph.Exec, error) {
	key := specKey(plan)
	if e, ok := m.execs[key]; ok {
		return e, nil
	}
	e, err := graph.NewExec(m.backend, m.stepGraph(plan))
	if err != nil {
		return nil, fmt.Errorf("engine: creating step executable: %w", err)
	}
	e.SetMaxCache(0) // one entry per (batch, steps, slots) shape; unbounded
	m.execs[key] = e
	return e, nil
}

// runStep executes one step, updating req.cache in place. Callers hold m.mu.
func (m *Model) runStep(req stepRequest) (*stepResult, error) {
	if m.closed {
		return nil, fmt.Errorf("engine: model is closed")
	}
	exec, err := m.execFor(req.plan)
	if err != nil {
		return nil, err
	}
	hookTensors, err := m.tensorsFor(req.plan.hooks, req.hooks)
	if err != nil {
		return nil, err
	}
	B := len(req.tokens)
	T := len(req.tokens[0])
	flatTokens := make([]int32, 0, B*T)
	for _, row := range req.tokens {
		flatTokens = append(flatTokens, row...)
	}
	L := m.cfg.NumLayers
	in := newStepInputs[any](req.plan, L, len(m.params))
	in.tokens = tensors.FromFlatDataAndDimensions(flatTokens, B, T)
	in.pad = tensors.FromFlatDataAndDimensions(append([]int32(nil), req.pad...), B)
	in.slot = tensors.FromScalar(req.slot)
	if req.plan.rowSlots {
		if len(req.rowSlots) != B {
			return nil, fmt.Errorf("engine: %d row slots for a batch of %d", len(req.rowSlots), B)
		}
		in.slot = tensors.FromFlatDataAndDimensions(append([]int32(nil), req.rowSlots...), B)
	}
	for i, t := range req.cache.kv {
		// The caches are the only donated inputs: the step overwrites them.
		d, err := graph.DonateTensorBuffer(t, m.backend, 0)
		if err != nil {
			return nil, fmt.Errorf("engine: cache tensor %d: %w", i, err)
		}
		in.caches[i] = d
	}
	for i, h := range hookTensors {
		in.hooks[i] = hookInputs[any]{spec: h.spec, add: h.add, dirs: h.dirs, lo: h.lo, hi: h.hi}
	}
	if len(req.rows) != len(in.rows) {
		return nil, fmt.Errorf("engine: %d layers of row hook values, expected %d", len(req.rows), len(in.rows))
	}
	for i, h := range req.rows {
		in.rows[i] = rowHookInputs[any]{add: h.add, dirs: h.dirs, lo: h.lo, hi: h.hi, newest: h.newest}
	}
	for i, p := range m.params {
		in.params[i] = p
	}
	built := m.compiles.Load()
	flat, err := exec.Exec(in.list()...)
	m.noteCompiles(m.compiles.Load()-built, B, T, req.cache.slots)
	if err != nil {
		return nil, fmt.Errorf("engine: running step (batch %d, tokens %d, slots %d): %w", B, T, req.cache.slots, err)
	}
	out := newStepOutputs[*tensors.Tensor](req.plan, L)
	if err := out.read(flat); err != nil {
		freeAll(flat)
		return nil, err
	}
	copy(req.cache.kv, out.caches)
	// On a failed finite check the other outputs are freed unread.
	err = checkFinite(out.nonFinite, req.step, B*T*m.cfg.HiddenSize, out.logits.Shape().Size())
	if err != nil {
		freeAll(append([]*tensors.Tensor{out.logits}, out.captured...))
		for _, r := range out.records {
			freeAll([]*tensors.Tensor{r.before, r.after})
		}
		return nil, err
	}
	res := &stepResult{captured: map[int][]float32{}, before: map[int][]float32{}, after: map[int][]float32{}}
	if res.logits, err = hostFloats(out.logits); err != nil {
		return nil, err
	}
	for i, layer := range req.plan.capture {
		if res.captured[layer], err = hostFloats(out.captured[i]); err != nil {
			return nil, err
		}
	}
	for _, r := range out.records {
		if res.before[r.layer], err = hostFloats(r.before); err != nil {
			return nil, err
		}
		if res.after[r.layer], err = hostFloats(r.after); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// freeAll releases ts' buffers.
func freeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		_ = t.FinalizeAll()
	}
}

// hostFloats copies a float32 output to the host and frees its device buffer.
func hostFloats(t *tensors.Tensor) ([]float32, error) {
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, fmt.Errorf("engine: reading step output %s: %w", t.Shape(), err)
	}
	_ = t.FinalizeAll()
	return data, nil
}
