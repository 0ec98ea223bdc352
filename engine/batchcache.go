package engine

import (
	"fmt"

	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// cacheOps holds a Batcher's cache executable that copies a prefilled row
// into the batch cache; it compiles once per cache shape. Callers hold
// Model.mu.
type cacheOps struct {
	m          *Model
	insertExec *G.Exec
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

// close frees the executables.
func (o *cacheOps) close() {
	for _, e := range []*G.Exec{o.insertExec} {
		if e != nil {
			e.Finalize()
		}
	}
	o.insertExec = nil
}
