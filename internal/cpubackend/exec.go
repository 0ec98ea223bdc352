package cpubackend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Executable is a compiled computation: the operations its outputs need, in
// order, each with the storage slots it reads and writes, and the number of
// uses of each slot, so that buffers return to the pool right after their
// last use.
type Executable struct {
	backend  *Backend
	name     string
	params   []*node
	steps    []step // operations to run, in dependency order
	outputs  []*node
	slot     []int        // per node id: the storage slot holding its values (-1: never read)
	uses     []int        // per slot: reads among steps plus outputs
	consts   []*node      // constants the steps or outputs read
	keys     []poolKey    // the dtypes and lengths of the steps' results
	slotKey  []int        // per slot: its index in keys, -1 for inputs and constants
	maxArity int          // most inputs of one step
	reads    []weightRead // products reading a weight, for the prefetcher
	done     bool         // Finalize was called
}

var _ backends.Executable = (*Executable)(nil)

// step is one operation of an Executable. A Reshape is no step: its node
// shares its operand's slot.
type step struct {
	n   *node
	ins []int // input slots
	out int   // result slot
	key int   // index of the result's dtype and length in Executable.keys
	// view: the result is values [off, off+n.shape.Size()) of the operand's
	// storage (a Slice of a contiguous range), read in place.
	view bool
	off  int
	// fused: the step runs a chain of operations ending at n (findFusions).
	fused fused
	// overwrites: the result may be written over the first operand's
	// storage (an in-place operation of the operand's dtype and size) when
	// that storage is owned and this is its last use.
	overwrites bool
}

// String names the step in errors.
func (s *step) String() string {
	if s.fused != nil {
		return fmt.Sprintf("%s (%s %s)", s.fused.name(), s.n.kind, s.n.shape)
	}
	return fmt.Sprintf("%s %s", s.n.kind, s.n.shape)
}

// Compile turns the computation into an Executable.
func (b *Builder) Compile(outputs []backends.Op, _ []*backends.ShardingSpec) (_ backends.Executable, err error) {
	defer func() {
		// A failing check in the planning is a bug here: an error, not a crash.
		if r := recover(); r != nil {
			err = fmt.Errorf("cpubackend: compiling %q: internal error: %v", b.name, r)
		}
	}()
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
	e := &Executable{backend: b.backend, name: b.name, params: b.params, outputs: outs,
		slot: make([]int, len(b.nodes)), uses: make([]int, len(b.nodes)), slotKey: make([]int, len(b.nodes))}
	keyIndex := map[poolKey]int{}
	isConst := make([]bool, len(b.nodes))
	read := func(in *node) int {
		s := e.slot[in.id]
		e.uses[s]++
		if root := b.nodes[s]; root.kind == backends.OpTypeConstant && !isConst[s] {
			isConst[s] = true
			e.consts = append(e.consts, root)
		}
		return s
	}
	fusions := findFusions(b.nodes, needed, outs)
	inside := make([]bool, len(b.nodes))
	for _, n := range b.nodes {
		f := fusions[n.id]
		if f == nil {
			continue
		}
		if slices.ContainsFunc(f.inside(), func(m *node) bool { return inside[m.id] || fusions[m.id] != nil }) {
			delete(fusions, n.id) // overlaps an earlier fused chain
			continue
		}
		for _, m := range f.inside() {
			inside[m.id] = true
		}
	}
	for _, n := range b.nodes { // nodes are created after their inputs
		e.slot[n.id], e.slotKey[n.id] = n.id, -1
		if !needed[n.id] || inside[n.id] || n.kind == backends.OpTypeParameter || n.kind == backends.OpTypeConstant {
			continue
		}
		if n.kind == backends.OpTypeReshape {
			e.slot[n.id] = e.slot[n.inputs[0].id] // same values, same storage
			continue
		}
		s := step{n: n, out: n.id, fused: fusions[n.id]}
		ins := n.inputs
		if s.fused != nil {
			ins = s.fused.inputs()
		}
		for _, in := range ins {
			s.ins = append(s.ins, read(in))
		}
		s.off, s.view = contiguousSlice(n)
		s.overwrites = s.fused == nil && inPlace[n.kind] && len(n.inputs) > 0 &&
			n.inputs[0].shape.DType == n.shape.DType && n.inputs[0].shape.Size() == n.shape.Size()
		key := poolKey{n.shape.DType, n.shape.Size()}
		k, ok := keyIndex[key]
		if !ok {
			k = len(e.keys)
			keyIndex[key] = k
			e.keys = append(e.keys, key)
		}
		s.key, e.slotKey[n.id] = k, k
		e.maxArity = max(e.maxArity, len(s.ins))
		e.steps = append(e.steps, s)
	}
	for _, o := range outs {
		read(o)
	}
	e.reads = planPrefetch(e.products())
	e.compact()
	b.compiled = true
	return e, nil
}

// compact renumbers the slots densely in the order the execution first
// touches them (inputs, constants, then the steps) and packs the steps'
// input lists into one array, so that an execution's bookkeeping is small
// and read mostly in order.
func (e *Executable) compact() {
	dense := make([]int, len(e.uses))
	for i := range dense {
		dense[i] = -1
	}
	var uses, keys []int
	id := func(s int) int {
		if dense[s] < 0 {
			dense[s] = len(uses)
			uses, keys = append(uses, e.uses[s]), append(keys, e.slotKey[s])
		}
		return dense[s]
	}
	for _, p := range e.params {
		id(e.slot[p.id])
	}
	for _, c := range e.consts {
		id(e.slot[c.id])
	}
	total := 0
	for i := range e.steps {
		total += len(e.steps[i].ins)
	}
	all := make([]int, 0, total)
	for i := range e.steps {
		s := &e.steps[i]
		start := len(all)
		for _, in := range s.ins {
			all = append(all, id(in))
		}
		s.ins = all[start:len(all):len(all)]
		s.out = id(s.out)
	}
	for _, o := range e.outputs {
		id(e.slot[o.id])
	}
	for n, sl := range e.slot {
		if dense[sl] >= 0 {
			e.slot[n] = dense[sl]
		} else {
			e.slot[n] = -1 // not read by this computation
		}
	}
	e.uses, e.slotKey = uses, keys
}

// products returns, per step, the node planPrefetch looks at for a product:
// the DotGeneral of a fused 16-bit product, else the step's node.
func (e *Executable) products() []*node {
	ns := make([]*node, len(e.steps))
	for i := range e.steps {
		ns[i] = e.steps[i].n
		if d, ok := e.steps[i].fused.(*roundedDot); ok {
			ns[i] = d.dot
		}
	}
	return ns
}

// contiguousSlice reports whether n is a Slice whose values are one run of
// its operand's (all axes before some axis a take one index, axis a a
// range, the axes after it whole, strides 1), and the run's start.
func contiguousSlice(n *node) (int, bool) {
	if n.kind != backends.OpTypeSlice {
		return 0, false
	}
	in := n.inputs[0].shape.Dimensions
	out := n.shape.Dimensions
	st := stridesOf(in)
	off := 0
	for a := range in {
		if n.strides[a] != 1 && out[a] > 1 {
			return 0, false
		}
		off += n.starts[a] * st[a]
	}
	// From the first axis with more than one value on, every axis is whole.
	partial := false
	for a := range in {
		if partial && out[a] != in[a] {
			return 0, false
		}
		if out[a] > 1 {
			partial = true
		}
	}
	return off, true
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

// storage is one slot's flat buffer during an execution, shared by a node
// and the reshapes (and in-place results) of it.
type storage struct {
	flat     any
	owned    bool // allocated here or donated: may be reused or released
	refs     int  // remaining uses
	returned bool // handed out as an output
	dtype    dtypes.DType
	// view: flat lies inside the storage of slot parent, which stays live
	// (one use held) until the view's last use; a view is never owned.
	view   bool
	parent int
}

// execState is one execution's scratch: the slots' storage, the inputs of
// the current step and the buffers released during the execution, by
// Executable.keys index, for reuse without the backend's lock. It is
// allocated once per Execute, so that an Executable may run concurrently.
type execState struct {
	st   []storage
	ins  []any
	free [][]any
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
	x := &execState{st: make([]storage, len(e.uses)), ins: make([]any, e.maxArity), free: make([][]any, len(e.keys))}
	st := x.st
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
		if sl := e.slot[p.id]; sl >= 0 {
			st[sl] = storage{flat: buf.flat, owned: owned, refs: e.uses[sl], dtype: p.shape.DType}
		} else if owned {
			e.backend.release(p.shape.DType, buf.flat) // a donated input nothing reads
		}
		if owned {
			buf.flat = nil // the buffer is consumed
		}
	}
	for _, c := range e.consts {
		st[e.slot[c.id]] = storage{flat: c.flat, refs: e.uses[e.slot[c.id]]}
	}
	var pf *prefetcher
	if len(e.reads) > 0 {
		params := make([]*storage, len(e.params))
		for i, p := range e.params {
			if sl := e.slot[p.id]; sl >= 0 {
				params[i] = &st[sl]
			}
		}
		pf = newPrefetcher(be.pool, e.reads, params)
	}
	err := e.runSteps(x, pf)
	pf.stop() // no worker reads the weights once Execute returns
	if err != nil {
		e.releaseAll(x)
		return nil, err
	}
	out := make([]backends.Buffer, len(e.outputs))
	for i, o := range e.outputs {
		s := &st[e.slot[o.id]]
		if s.owned && !s.returned {
			s.returned = true
			out[i] = &Buffer{shape: o.shape, flat: s.flat}
			continue
		}
		flat := be.alloc(o.shape.DType, o.shape.Size())
		if err := copyFlat(flat, s.flat); err != nil {
			e.releaseAll(x)
			return nil, err
		}
		out[i] = &Buffer{shape: o.shape, flat: flat}
	}
	e.releaseAll(x)
	return out, nil
}

// runSteps runs every step in order. A panic in a kernel (a failing bounds
// check is a bug here, not the caller's) becomes an error naming the step.
func (e *Executable) runSteps(x *execState, pf *prefetcher) (err error) {
	var cur *step
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cpubackend: %s: internal error: %v", cur, r)
		}
	}()
	for i := range e.steps {
		s := &e.steps[i]
		cur = s
		if err := e.run(s, x); err != nil {
			return fmt.Errorf("cpubackend: %s: %w", s, err)
		}
		pf.ran(i)
	}
	return nil
}

// releaseAll returns every owned, unreturned storage to the pool (donated
// inputs that were not reused among them), with the buffers released
// during the execution.
func (e *Executable) releaseAll(x *execState) {
	var rel []any
	var keys []poolKey
	for i := range x.st {
		s := &x.st[i]
		if s.owned && !s.returned && s.flat != nil {
			rel, keys = append(rel, s.flat), append(keys, poolKey{s.dtype, flatLen(s.flat)})
			s.flat = nil
		}
	}
	for k, list := range x.free {
		for _, f := range list {
			rel, keys = append(rel, f), append(keys, e.keys[k])
		}
		x.free[k] = nil
	}
	e.backend.releaseMany(keys, rel)
}

// alloc returns a buffer for step s's result: one released earlier in this
// execution, else one from the backend's pool.
func (e *Executable) alloc(s *step, x *execState) any {
	if list := x.free[s.key]; len(list) > 0 {
		f := list[len(list)-1]
		x.free[s.key] = list[:len(list)-1]
		return f
	}
	k := e.keys[s.key]
	return e.backend.alloc(k.dtype, k.n)
}

// consume counts one use of slot i and, after the last, releases its
// storage (a view's last use releases its hold on its parent).
func (e *Executable) consume(i int, x *execState) {
	for {
		s := &x.st[i]
		s.refs--
		if s.refs > 0 {
			return
		}
		if s.view {
			i = s.parent
			continue
		}
		if s.owned && !s.returned && s.flat != nil {
			if k := e.slotKey[i]; k >= 0 {
				x.free[k] = append(x.free[k], s.flat)
			} else {
				e.backend.release(s.dtype, s.flat)
			}
			s.flat = nil
		}
		return
	}
}

// reusable reports whether a result may be written over storage s: it is
// owned and this is its last use.
func reusable(s *storage) bool {
	return s.owned && !s.returned && s.refs == 1
}

// run executes step s, setting its result's slot.
func (e *Executable) run(s *step, x *execState) error {
	st, n := x.st, s.n
	if s.view {
		p := s.ins[0]
		st[s.out] = storage{flat: subFlat(st[p].flat, s.off, n.shape.Size()), refs: e.uses[s.out], dtype: n.shape.DType, view: true, parent: p}
		if st[s.out].refs == 0 {
			e.consume(p, x)
		}
		return nil
	}
	ins := x.ins[:len(s.ins)]
	for i, in := range s.ins {
		ins[i] = st[in].flat
	}
	if s.fused != nil {
		flat := e.alloc(s, x)
		st[s.out] = storage{flat: flat, owned: true, refs: e.uses[s.out], dtype: n.shape.DType}
		if err := s.fused.exec(e.backend, ins, flat); err != nil {
			return err
		}
		for _, in := range s.ins {
			e.consume(in, x)
		}
	} else if s.overwrites && reusable(&st[s.ins[0]]) {
		o := &st[s.ins[0]]
		if err := e.backend.exec(n, ins, o.flat); err != nil {
			return err
		}
		// The result takes over the operand's storage: the operand's last
		// use is this one, so the slot moves to the result.
		st[s.out] = storage{flat: o.flat, owned: true, refs: e.uses[s.out], dtype: n.shape.DType}
		o.flat, o.refs = nil, 0
		for _, in := range s.ins[1:] {
			e.consume(in, x)
		}
	} else {
		flat := e.alloc(s, x)
		st[s.out] = storage{flat: flat, owned: true, refs: e.uses[s.out], dtype: n.shape.DType}
		if err := e.backend.exec(n, ins, flat); err != nil {
			return err
		}
		for _, in := range s.ins {
			e.consume(in, x)
		}
	}
	clear(ins)
	return nil
}
