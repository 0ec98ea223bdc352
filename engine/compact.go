package engine

import (
	"fmt"

	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// compactedRows returns the batch rows to keep when at most half of the
// current rows still hold sequences that go through the model (needed, in
// order), or nil to keep the batch as is. With coarse shape buckets (XLA)
// the new batch is a power of two, padded with filler rows (-1).
func (m *Model) compactedRows(rows, needed []int) []int {
	if len(needed)*2 > len(rows) {
		return nil
	}
	size := len(needed)
	if !m.fineBuckets() {
		size = nextPow2(size)
		if size >= len(rows) {
			return nil
		}
	}
	out := append([]int(nil), needed...)
	for len(out) < size {
		out = append(out, -1)
	}
	return out
}

// compactCache gathers the cache rows and paddings of newRows (sequence
// indices; -1 fillers copy the first row) from a batch laid out as rows,
// and frees the old cache.
func (m *Model) compactCache(cache *kvCache, pad []int32, rows, newRows []int) (*kvCache, []int32, error) {
	rowOf := map[int]int{}
	for r, si := range rows {
		if si >= 0 {
			rowOf[si] = r
		}
	}
	idx := make([]int32, len(newRows))
	newPad := make([]int32, len(newRows))
	for i, si := range newRows {
		r := rowOf[newRows[0]]
		if si >= 0 {
			r = rowOf[si]
		}
		idx[i], newPad[i] = int32(r), pad[r]
	}
	if m.compactExec == nil {
		e, err := G.NewExec(m.backend, func(in []*G.Node) []*G.Node {
			indices := G.InsertAxes(in[0], -1) // [B', 1]
			out := make([]*G.Node, len(in)-1)
			for i, c := range in[1:] {
				out[i] = G.Gather(c, indices)
			}
			return out
		})
		if err != nil {
			return nil, nil, fmt.Errorf("engine: creating cache compaction: %w", err)
		}
		e.SetMaxCache(0)
		m.compactExec = e
	}
	args := []any{tensors.FromFlatDataAndDimensions(idx, len(idx))}
	for _, t := range cache.kv {
		args = append(args, t)
	}
	outs, err := m.compactExec.Exec(args...)
	if err != nil {
		return nil, nil, fmt.Errorf("engine: compacting the cache from %d to %d rows: %w", len(rows), len(newRows), err)
	}
	cache.free()
	m.compactions++
	return &kvCache{batch: len(newRows), slots: cache.slots, kv: outs}, newPad, nil
}
