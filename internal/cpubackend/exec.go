package cpubackend

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Executable is a compiled computation: the operations its outputs need, in
// order, with the number of uses of each, so that buffers return to the
// backend's pool right after their last use.
type Executable struct {
	backend *Backend
	name    string
	params  []*node
	steps   []*node // operations to run, in dependency order
	outputs []*node
	uses    []int        // per node id: consumers among steps plus outputs
	reads   []weightRead // products reading a weight, for the prefetcher
	done    bool         // Finalize was called
}

var _ backends.Executable = (*Executable)(nil)

// Compile turns the computation into an Executable.
func (b *Builder) Compile(outputs []backends.Op, _ []*backends.ShardingSpec) (backends.Executable, error) {
	outs, err := b.in(outputs...)
	if err != nil {
		return nil, err
	}
	needed := make([]bool, len(b.nodes))
	var mark func(n *node)
	mark = func(n *node) {
		if needed[n.id] {
			return
		}
		needed[n.id] = true
		for _, in := range n.inputs {
			mark(in)
		}
	}
	for _, o := range outs {
		mark(o)
	}
	e := &Executable{backend: b.backend, name: b.name, params: b.params, outputs: outs, uses: make([]int, len(b.nodes))}
	for _, n := range b.nodes { // nodes are created after their inputs
		if !needed[n.id] || n.kind == backends.OpTypeParameter || n.kind == backends.OpTypeConstant {
			continue
		}
		e.steps = append(e.steps, n)
		for _, in := range n.inputs {
			e.uses[in.id]++
		}
	}
	for _, o := range outs {
		e.uses[o.id]++
	}
	e.reads = planPrefetch(e.steps)
	b.compiled = true
	return e, nil
}

// Finalize drops the compiled plan; Execute fails afterwards.
func (e *Executable) Finalize() { e.steps, e.done = nil, true }

// Inputs returns the parameters' names and shapes.
func (e *Executable) Inputs() ([]string, []shapes.Shape) {
	names := make([]string, len(e.params))
	shs := make([]shapes.Shape, len(e.params))
	for i, p := range e.params {
		names[i], shs[i] = p.name, p.shape
	}
	return names, shs
}

// Outputs returns the outputs' shapes.
func (e *Executable) Outputs() []shapes.Shape {
	shs := make([]shapes.Shape, len(e.outputs))
	for i, o := range e.outputs {
		shs[i] = o.shape
	}
	return shs
}

// storage is one flat buffer during an execution, shared by a node and the
// reshapes (and in-place results) of it.
type storage struct {
	flat     any
	owned    bool // allocated here or donated: may be reused or released
	refs     int  // remaining uses
	returned bool // handed out as an output
	dtype    dtypes.DType
}

// Execute runs the computation. Donated inputs may be reused for results
// (a donated KV cache is updated in place by DynamicUpdateSlice), except
// read-only buffers (NewReadOnlyBuffer), which are only read and stay valid.
func (e *Executable) Execute(inputs []backends.Buffer, donate []bool, _ backends.DeviceNum) ([]backends.Buffer, error) {
	if e.done {
		return nil, fmt.Errorf("cpubackend: executable %q is finalized", e.name)
	}
	if len(inputs) != len(e.params) {
		return nil, fmt.Errorf("cpubackend: executable %q takes %d inputs, got %d", e.name, len(e.params), len(inputs))
	}
	be := e.backend
	st := make([]*storage, len(e.uses))
	for i, p := range e.params {
		buf, err := be.buffer(inputs[i])
		if err != nil {
			return nil, fmt.Errorf("cpubackend: input %d (%s): %w", i, p.name, err)
		}
		if !buf.shape.Equal(p.shape) {
			return nil, fmt.Errorf("cpubackend: input %d (%s) has shape %s, expected %s", i, p.name, buf.shape, p.shape)
		}
		// Only owned storage is ever written, reused or pooled; a read-only
		// buffer is never owned, donated or not.
		owned := i < len(donate) && donate[i] && !buf.readOnly
		st[p.id] = &storage{flat: buf.flat, owned: owned, refs: e.uses[p.id], dtype: p.shape.DType}
		if owned {
			buf.flat = nil // the buffer is consumed
		}
	}
	for _, n := range e.steps {
		for _, in := range n.inputs {
			if in.kind == backends.OpTypeConstant && st[in.id] == nil {
				st[in.id] = &storage{flat: in.flat, refs: e.uses[in.id]}
			}
		}
	}
	for _, o := range e.outputs {
		if o.kind == backends.OpTypeConstant && st[o.id] == nil {
			st[o.id] = &storage{flat: o.flat, refs: e.uses[o.id]}
		}
	}
	var pf *prefetcher
	if len(e.reads) > 0 {
		params := make([]*storage, len(e.params))
		for i, p := range e.params {
			params[i] = st[p.id]
		}
		pf = newPrefetcher(be.pool, e.reads, params)
	}
	for i, n := range e.steps {
		if err := e.run(n, st); err != nil {
			pf.stop()
			e.releaseAll(st)
			return nil, fmt.Errorf("cpubackend: %s %s: %w", n.kind, n.shape, err)
		}
		pf.ran(i)
	}
	pf.stop() // no worker reads the weights once Execute returns
	out := make([]backends.Buffer, len(e.outputs))
	for i, o := range e.outputs {
		s := st[o.id]
		if s.owned && !s.returned {
			s.returned = true
			out[i] = &Buffer{shape: o.shape, flat: s.flat}
			continue
		}
		flat := be.alloc(o.shape.DType, o.shape.Size())
		if err := copyFlat(flat, s.flat); err != nil {
			return nil, err
		}
		out[i] = &Buffer{shape: o.shape, flat: flat}
	}
	for _, o := range e.outputs {
		st[o.id].refs--
	}
	e.releaseAll(st)
	return out, nil
}

// releaseAll returns every owned, unreturned storage to the pool (donated
// inputs that were not reused among them).
func (e *Executable) releaseAll(st []*storage) {
	for _, s := range st {
		if s != nil && s.owned && !s.returned && s.flat != nil {
			e.backend.release(s.dtype, s.flat)
			s.flat = nil
		}
	}
}

// consume counts one use of input n and releases its storage after the last.
func (e *Executable) consume(s *storage) {
	s.refs--
	if s.refs == 0 && s.owned && !s.returned && s.flat != nil {
		e.backend.release(s.dtype, s.flat)
		s.flat = nil
	}
}

// reusable reports whether the result of n may be written over input in:
// the input's storage is owned, this is its last use, and it has n's dtype
// and size.
func reusable(s *storage, in, n *node) bool {
	return s.owned && !s.returned && s.refs == 1 && in.shape.DType == n.shape.DType && in.shape.Size() == n.shape.Size()
}

// run executes step n, setting st[n.id].
func (e *Executable) run(n *node, st []*storage) (err error) {
	defer func() {
		// A kernel's bounds check failing is a bug here, not the caller's:
		// report it as an error rather than crash the program.
		if r := recover(); r != nil {
			err = fmt.Errorf("internal error: %v", r)
		}
	}()
	ins := make([]any, len(n.inputs))
	for i, in := range n.inputs {
		ins[i] = st[in.id].flat
	}
	if n.kind == backends.OpTypeReshape {
		s := st[n.inputs[0].id]
		s.refs += e.uses[n.id]
		e.consume(s)
		st[n.id] = s
		return nil
	}
	var s *storage
	if inPlace[n.kind] && len(n.inputs) > 0 && reusable(st[n.inputs[0].id], n.inputs[0], n) {
		s = st[n.inputs[0].id]
		s.refs += e.uses[n.id]
	} else {
		s = &storage{flat: e.backend.alloc(n.shape.DType, n.shape.Size()), owned: true, refs: e.uses[n.id], dtype: n.shape.DType}
	}
	if err := e.backend.exec(n, ins, s.flat); err != nil {
		return err
	}
	st[n.id] = s
	for _, in := range n.inputs {
		e.consume(st[in.id])
	}
	return nil
}
