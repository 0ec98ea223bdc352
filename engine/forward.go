package engine

import (
	"context"
	"fmt"
)

// ForwardOptions configures a plain forward pass.
type ForwardOptions struct {
	// Hooks change the residual stream after the given blocks.
	Hooks Hooks
	// CaptureLayers lists the blocks whose output residual stream (after any
	// hook on that block) is returned.
	CaptureLayers []int
	// AllLogits returns the logits of every position, not only the last.
	AllLogits bool
}

// ForwardResult holds the outputs of Forward for each sequence.
type ForwardResult struct {
	// Logits[seq] are the last position's logits [VocabSize].
	Logits [][]float32
	// AllLogits[seq][pos] are the logits of every position (with
	// ForwardOptions.AllLogits).
	AllLogits [][][]float32
	// Captured[layer][seq][pos] is the residual stream [HiddenSize] after the
	// block, for every position of the sequence.
	Captured map[int][][][]float32
	// Telemetry[layer][seq][pos] holds the projections of recording hooks.
	Telemetry map[int][][]HookRecord
}

// HookRecord is what a recording hook observed at one position.
type HookRecord struct {
	Before []float32 // projection on each clamp's Dir before that clamp acted
	After  []float32 // projection on each clamp's Dir after the whole hook
	Acted  []bool    // whether each clamp changed the projection (Before outside [Lo, Hi])
}

// Forward runs whole sequences (of possibly different lengths; no
// generation) and returns their logits and captured layers. Sequences must
// not be empty; callers prepend BOS themselves when the model needs it.
func (m *Model) Forward(ctx context.Context, tokens [][]int, opts ForwardOptions) (*ForwardResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("engine: Forward: no sequences")
	}
	maxLen := 0
	for i, seq := range tokens {
		if err := m.checkTokens(seq, fmt.Sprintf("sequence %d", i)); err != nil {
			return nil, err
		}
		maxLen = max(maxLen, len(seq))
	}
	plan, err := m.makePlan(opts.Hooks, opts.CaptureLayers, opts.AllLogits)
	if err != nil {
		return nil, err
	}
	T := m.promptLength(maxLen)
	batch, pad := m.leftPad(tokens, T)

	m.mu.Lock()
	defer m.mu.Unlock()
	cache := m.newKVCache(len(tokens), T)
	defer cache.free()
	out, err := m.prefill(ctx, batch, pad, cache, plan, opts.Hooks)
	if err != nil {
		return nil, err
	}
	V, H := m.cfg.VocabSize, m.cfg.HiddenSize
	res := &ForwardResult{Logits: make([][]float32, len(tokens))}
	for b, seq := range tokens {
		if opts.AllLogits {
			rows := make([][]float32, len(seq))
			for i := range seq {
				t := int(pad[b]) + i
				rows[i] = out.logits[(b*T+t)*V : (b*T+t+1)*V]
			}
			if res.AllLogits == nil {
				res.AllLogits = make([][][]float32, len(tokens))
			}
			res.AllLogits[b] = rows
			res.Logits[b] = rows[len(rows)-1]
		} else {
			res.Logits[b] = out.logits[b*V : (b+1)*V]
		}
	}
	if len(plan.capture) > 0 {
		res.Captured = map[int][][][]float32{}
		for _, layer := range plan.capture {
			perSeq := make([][][]float32, len(tokens))
			for b, seq := range tokens {
				perSeq[b] = rowsOf(out.captured[layer], b, T, int(pad[b]), len(seq), H)
			}
			res.Captured[layer] = perSeq
		}
	}
	for _, s := range plan.hooks {
		if !s.record {
			continue
		}
		if res.Telemetry == nil {
			res.Telemetry = map[int][][]HookRecord{}
		}
		perSeq := make([][]HookRecord, len(tokens))
		for b, seq := range tokens {
			for i := range seq {
				perSeq[b] = append(perSeq[b], makeRecord(out, opts.Hooks[s.layer], s, b*T+int(pad[b])+i))
			}
		}
		res.Telemetry[s.layer] = perSeq
	}
	return res, nil
}

// makeRecord extracts the telemetry of row (b*T+t) of a recording hook.
func makeRecord(out *stepResult, hk *LayerHook, s hookSpec, row int) HookRecord {
	C := s.clamps
	r := HookRecord{
		Before: append([]float32(nil), out.before[s.layer][row*C:(row+1)*C]...),
		After:  append([]float32(nil), out.after[s.layer][row*C:(row+1)*C]...),
		Acted:  make([]bool, C),
	}
	for c := range C {
		r.Acted[c] = r.Before[c] < hk.Clamps[c].Lo || r.Before[c] > hk.Clamps[c].Hi
	}
	return r
}

// rowsOf returns n rows of width w of sequence b from a [B, T, w] buffer,
// starting at step position from.
func rowsOf(buf []float32, b, T, from, n, w int) [][]float32 {
	rows := make([][]float32, n)
	for i := range n {
		start := (b*T + from + i) * w
		rows[i] = buf[start : start+w : start+w]
	}
	return rows
}

// checkTokens rejects empty sequences and ids outside the vocabulary.
func (m *Model) checkTokens(seq []int, what string) error {
	if len(seq) == 0 {
		return fmt.Errorf("engine: %s is empty (prepend BOS when the model needs one)", what)
	}
	if len(seq) > m.cfg.MaxPositions {
		return fmt.Errorf("engine: %s has %d tokens, longer than the model's context of %d", what, len(seq), m.cfg.MaxPositions)
	}
	for i, id := range seq {
		if id < 0 || id >= m.cfg.VocabSize {
			return fmt.Errorf("engine: %s: token %d at position %d is outside the vocabulary [0, %d)", what, id, i, m.cfg.VocabSize)
		}
	}
	return nil
}

// makePlan validates hooks and capture layers and returns the step plan.
func (m *Model) makePlan(hooks Hooks, capture []int, allLogits bool) (stepPlan, error) {
	specs, err := m.hookSpecs(hooks)
	if err != nil {
		return stepPlan{}, err
	}
	for _, l := range capture {
		if l < 0 || l >= m.cfg.NumLayers {
			return stepPlan{}, fmt.Errorf("engine: capture layer %d, expected 0..%d", l, m.cfg.NumLayers-1)
		}
	}
	return stepPlan{allLogits: allLogits, hooks: specs, capture: sortedCopy(capture)}, nil
}

// leftPad right-aligns the sequences in rows of length T and returns the
// rows and each sequence's padding.
func (m *Model) leftPad(seqs [][]int, T int) ([][]int32, []int32) {
	padID := int32(max(m.cfg.PadTokenID, 0))
	rows := make([][]int32, len(seqs))
	pad := make([]int32, len(seqs))
	for b, seq := range seqs {
		row := make([]int32, T)
		p := T - len(seq)
		for i := range p {
			row[i] = padID
		}
		for i, id := range seq {
			row[p+i] = int32(id)
		}
		rows[b], pad[b] = row, int32(p)
	}
	return rows, pad
}
