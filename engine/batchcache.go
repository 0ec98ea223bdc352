package engine

import (
	"errors"
	"fmt"

	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
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
				if o.m.dynamicUpdate {
					// The donated cache is written in place: only the row is copied.
					zero := G.Const(c.Graph(), int32(0))
					out[i] = G.DynamicUpdateSlice(c, row, []*G.Node{r, zero, zero, zero})
					continue
				}
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
	for i, t := range cache.kv {
		if !o.m.dynamicUpdate {
			args = append(args, t)
			continue
		}
		d, err := G.DonateTensorBuffer(t, o.m.backend, 0)
		if err != nil {
			return fmt.Errorf("engine: batch cache tensor %d: %w", i, err)
		}
		args = append(args, d)
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

// resizeSlots makes every row of the batch cache slots cache slots long,
// keeping each row's values in their slots (a shorter cache drops only
// slots beyond every live row's need); new slots are zero, as a fresh
// cache's.
func (b *Batcher) resizeSlots(slots int) error {
	c := b.cache
	resized := &kvCache{batch: c.batch, slots: slots, kv: make([]*tensors.Tensor, len(c.kv))}
	lead := c.batch * b.m.cfg.NumKVHeads
	D := b.m.cfg.HeadDim
	kept := min(slots, c.slots) * D
	for i, t := range c.kv {
		// The rows are copied as raw bytes of the cache's dtype.
		elem := t.DType().Size()
		out := tensors.FromShape(shapes.Make(t.DType(), c.batch, b.m.cfg.NumKVHeads, slots, D))
		resized.kv[i] = out
		var dstErr error
		b.m.mu.Lock()
		err := t.ConstBytes(func(data []byte) {
			dstErr = out.MutableBytes(func(dst []byte) {
				for j := range lead {
					copy(dst[j*slots*D*elem:(j*slots*D+kept)*elem], data[j*c.slots*D*elem:(j*c.slots*D+kept)*elem])
				}
			})
		})
		b.m.mu.Unlock()
		if err = errors.Join(err, dstErr); err != nil {
			resized.free()
			return fmt.Errorf("engine: copying the batch cache to resize it from %d to %d slots: %w", c.slots, slots, err)
		}
	}
	c.free()
	b.setCache(resized)
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
