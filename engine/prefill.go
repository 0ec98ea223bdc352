package engine

import "context"

// prefillChunk is the longest run of prompt positions processed in one step;
// longer prompts go through the cache in chunks, which bounds the attention
// scores' memory ([chunk, cache length] per head).
var prefillChunk = 512

// prefill runs the left-padded prompts rows [B][T] through the model from
// slot 0, in chunks of at most prefillChunk positions, and returns the
// outputs merged as if computed in one step: per-position outputs are
// [B, T, ...]; logits are the last position's unless plan.allLogits.
func (m *Model) prefill(ctx context.Context, rows [][]int32, pad []int32, cache *kvCache, plan stepPlan, hooks Hooks) (*stepResult, error) {
	return m.prefillAt(ctx, stepRequest{tokens: rows, pad: pad, cache: cache, plan: plan, hooks: hooks})
}

// prefillAt is prefill for req.tokens from cache slot req.slot (padding
// counted from slot 0, as in every step).
func (m *Model) prefillAt(ctx context.Context, req stepRequest) (*stepResult, error) {
	rows, plan := req.tokens, req.plan
	T := len(rows[0])
	if T <= prefillChunk {
		return m.runStep(req)
	}
	B := len(rows)
	var merged *stepResult
	for start := 0; start < T; start += prefillChunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+prefillChunk, T)
		chunk := make([][]int32, B)
		for b := range rows {
			chunk[b] = rows[b][start:end]
		}
		part := req
		part.tokens, part.slot = chunk, req.slot+int32(start)
		out, err := m.runStep(part)
		if err != nil {
			return nil, err
		}
		if merged == nil {
			merged = &stepResult{captured: map[int][]float32{}, before: map[int][]float32{}, after: map[int][]float32{}}
		}
		n := end - start
		if plan.allLogits {
			merged.logits = mergeRows(merged.logits, out.logits, B, T, start, n)
		} else {
			merged.logits = out.logits
		}
		for layer, v := range out.captured {
			merged.captured[layer] = mergeRows(merged.captured[layer], v, B, T, start, n)
		}
		for layer, v := range out.before {
			merged.before[layer] = mergeRows(merged.before[layer], v, B, T, start, n)
		}
		for layer, v := range out.after {
			merged.after[layer] = mergeRows(merged.after[layer], v, B, T, start, n)
		}
	}
	return merged, nil
}

// mergeRows copies part [B, n, w] into positions start..start+n of dst
// [B, T, w], allocating dst on first use.
func mergeRows(dst, part []float32, B, T, start, n int) []float32 {
	w := len(part) / (B * n)
	if dst == nil {
		dst = make([]float32, B*T*w)
	}
	for b := range B {
		copy(dst[(b*T+start)*w:(b*T+start+n)*w], part[b*n*w:(b+1)*n*w])
	}
	return dst
}
