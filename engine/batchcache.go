package engine

import (
	"fmt"

	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// cacheOps holds a Batcher's cache executables: copying a prefilled row
// into the batch cache and shifting the cache along its slots. Each
// compiles once per cache shape. Callers hold Model.mu.
type cacheOps struct {
	m                     *Model
	insertExec, shiftExec *G.Exec
}

// insertRow copies row 0 of one [1, ...] into row r of cache, in place.
func (o *cacheOps) insertRow(cache, one *kvCache, r int) error {
	if o.insertExec == nil {
		e, err := G.NewExec(o.m.backend, func(in []*G.Node) []*G.Node {
			r := in[0]
			n := (len(in) - 1) / 2
			out := make([]*G.Node, n)
			for i := range n {
				c, row := in[1+i], in[1+n+i]
				dims := c.Shape().Dimensions
				iota := G.Iota(c.Graph(), shapeInt32(dims[0]), 0)
				cond := G.BroadcastToDims(G.Reshape(G.Equal(iota, r), dims[0], 1, 1, 1), dims...)
				out[i] = G.Where(cond, G.BroadcastToDims(row, dims...), c)
			}
			return out
		})
		if err != nil {
			return fmt.Errorf("engine: creating the batcher's row insertion: %w", err)
		}
		e.SetMaxCache(0)
		o.insertExec = e
	}
	args := []any{tensors.FromScalar(int32(r))}
	for _, t := range cache.kv {
		args = append(args, t)
	}
	for _, t := range one.kv {
		args = append(args, t)
	}
	outs, err := o.insertExec.Exec(args...)
	if err != nil {
		return fmt.Errorf("engine: copying a prefilled row into row %d of the batch cache: %w", r, err)
	}
	for i, t := range cache.kv {
		_ = t.FinalizeAll()
		cache.kv[i] = outs[i]
	}
	return nil
}

// shift moves every row's cache d slots towards slot 0 (d < 0: away from
// it), in place; slots shifted in from outside hold copies of the edge slot,
// which the rows' padding masks.
func (o *cacheOps) shift(cache *kvCache, d int) error {
	if o.shiftExec == nil {
		e, err := G.NewExec(o.m.backend, func(in []*G.Node) []*G.Node {
			idx := G.InsertAxes(in[0], -1) // [S, 1]
			out := make([]*G.Node, len(in)-1)
			for i, c := range in[1:] {
				bySlot := G.TransposeAllDims(c, 2, 0, 1, 3) // [S, B, kvH, hd]
				out[i] = G.TransposeAllDims(G.Gather(bySlot, idx), 1, 2, 0, 3)
			}
			return out
		})
		if err != nil {
			return fmt.Errorf("engine: creating the batcher's cache shift: %w", err)
		}
		e.SetMaxCache(0)
		o.shiftExec = e
	}
	idx := make([]int32, cache.slots)
	for j := range idx {
		idx[j] = int32(min(max(j+d, 0), cache.slots-1))
	}
	args := []any{tensors.FromFlatDataAndDimensions(idx, len(idx))}
	for _, t := range cache.kv {
		args = append(args, t)
	}
	outs, err := o.shiftExec.Exec(args...)
	if err != nil {
		return fmt.Errorf("engine: shifting the batch cache by %d slots: %w", d, err)
	}
	for i, t := range cache.kv {
		_ = t.FinalizeAll()
		cache.kv[i] = outs[i]
	}
	return nil
}

// close frees the executables.
func (o *cacheOps) close() {
	for _, e := range []*G.Exec{o.insertExec, o.shiftExec} {
		if e != nil {
			e.Finalize()
		}
	}
	o.insertExec, o.shiftExec = nil, nil
}
