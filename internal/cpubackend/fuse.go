package cpubackend

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

// fused is a chain of operations that Compile runs as one step, with the
// same result bits as the operations one by one. The step takes the place
// of the chain's last node; the nodes inside the chain are not run.
type fused interface {
	// exec computes the chain's result into out from the step's inputs.
	exec(b *Backend, ins []any, out any) error
	// inputs returns the nodes the step reads.
	inputs() []*node
	// inside returns the nodes the step replaces, its last node excluded.
	inside() []*node
	// name describes the step in errors.
	name() string
}

// graphUses counts, per node id, the reads of each node among the needed
// nodes (an input read twice counts twice) plus one per output.
type graphUses struct {
	count  []int
	output []bool
}

// single reports whether n is read exactly once, not as an output.
func (u graphUses) single(n *node) bool { return u.count[n.id] == 1 && !u.output[n.id] }

// findFusions returns, per node id, the fused step ending at that node.
func findFusions(nodes []*node, needed []bool, outs []*node) map[int]fused {
	u := graphUses{count: make([]int, len(nodes)), output: make([]bool, len(nodes))}
	for _, n := range nodes {
		if needed[n.id] {
			for _, in := range n.inputs {
				u.count[in.id]++
			}
		}
	}
	for _, o := range outs {
		u.output[o.id] = true
	}
	fs := map[int]fused{}
	for _, n := range nodes {
		if !needed[n.id] {
			continue
		}
		var f fused
		if d := matchRoundedDot(n, u); d != nil {
			f = d
		} else if c := matchNonFiniteCount(n, u); c != nil {
			f = c
		} else if r := matchRotateHalf(n, u); r != nil {
			f = r
		} else if r := matchRMSNorm(n, u); r != nil {
			f = r
		} else if sm := matchSoftmax(n, u); sm != nil {
			f = sm
		} else if sw := matchSwiGLU(n, u); sw != nil {
			f = sw
		} else if wd := matchWidenedDot(n, u); wd != nil {
			f = wd
		}
		if f != nil {
			fs[n.id] = f
		}
	}
	return fs
}

// roundedDot is ConvertDType(DotGeneral(ConvertDType(x, T) [reshaped,
// broadcast along the batch axes], w), float32) with w and the product of
// 16-bit type T (bfloat16 or float16), w in the N × K layout: the engine's
// product of float32 activations with 16-bit weights. It rounds x to T
// (as ConvertDType does) in a float32 scratch, runs the same kernel as the
// product, and rounds each result through T (as the two conversions of the
// result do), without the 16-bit intermediates.
type roundedDot struct {
	last, dot, lower, bcast *node // bcast: nil, or the broadcast of the rounded x
	chain                   []*node
	dtype                   dtypes.DType
	batch, M, K, N          int
	repeat                  bool // one x for every batch (broadcast along the batch axes)
}

// matchRoundedDot recognises a roundedDot ending at n.
func matchRoundedDot(n *node, u graphUses) *roundedDot {
	if n.kind != backends.OpTypeConvertDType || n.shape.DType != dtypes.Float32 {
		return nil
	}
	d := n.inputs[0]
	t := d.shape.DType
	if d.kind != backends.OpTypeDotGeneral || !u.single(d) || (t != dtypes.BFloat16 && t != dtypes.Float16) {
		return nil
	}
	da := d.dot
	l, r := d.inputs[0].shape, d.inputs[1].shape
	lFree := freeAxes(l.Rank(), da.lhsContract, da.lhsBatch)
	rFree := freeAxes(r.Rank(), da.rhsContract, da.rhsBatch)
	if r.DType != t || !inOrder(l.Dimensions, concat(da.lhsBatch, lFree, da.lhsContract)) ||
		!inOrder(r.Dimensions, concat(da.rhsBatch, rFree, da.rhsContract)) {
		return nil
	}
	f := &roundedDot{last: n, dot: d, dtype: t}
	prod := func(dims []int, axes []int) int {
		p := 1
		for _, a := range axes {
			p *= dims[a]
		}
		return p
	}
	f.batch, f.M, f.K, f.N = prod(l.Dimensions, da.lhsBatch), prod(l.Dimensions, lFree), prod(l.Dimensions, da.lhsContract), prod(r.Dimensions, rFree)
	x := d.inputs[0]
	if x.kind == backends.OpTypeBroadcastInDim {
		if !u.single(x) || !batchRepeat(x, da.lhsBatch) {
			return nil
		}
		f.bcast, f.repeat = x, true
		f.chain = append(f.chain, x)
		x = x.inputs[0]
	}
	for x.kind == backends.OpTypeReshape {
		if !u.single(x) {
			return nil
		}
		f.chain = append(f.chain, x)
		x = x.inputs[0]
	}
	if x.kind != backends.OpTypeConvertDType || x.shape.DType != t || x.inputs[0].shape.DType != dtypes.Float32 || !u.single(x) {
		return nil
	}
	f.lower = x
	f.chain = append(f.chain, x, d)
	return f
}

// widenedDot is DotGeneral(x, ConvertDType(w, float32)) with x float32, w
// bfloat16 or float16 in the N × K or K × N layout, and the conversion read
// only here: attention over a 16-bit KV cache (the engine widens the cache
// to attend over it). The step hands w's 16-bit storage to the product,
// whose kernels widen it (exactly, so with the same bits), instead of a
// float32 copy of the whole cache each step.
type widenedDot struct {
	dot, widen *node
}

// matchWidenedDot recognises a widenedDot ending at n.
func matchWidenedDot(n *node, u graphUses) *widenedDot {
	if n.kind != backends.OpTypeDotGeneral || n.shape.DType != dtypes.Float32 || n.inputs[0].shape.DType != dtypes.Float32 {
		return nil
	}
	c := n.inputs[1]
	if c.kind != backends.OpTypeConvertDType || !u.single(c) {
		return nil
	}
	if t := c.inputs[0].shape.DType; t != dtypes.BFloat16 && t != dtypes.Float16 {
		return nil
	}
	d, r := n.dot, c.shape
	rFree := freeAxes(r.Rank(), d.rhsContract, d.rhsBatch)
	if !inOrder(r.Dimensions, concat(d.rhsBatch, rFree, d.rhsContract)) && !inOrder(r.Dimensions, concat(d.rhsBatch, d.rhsContract, rFree)) {
		return nil // a transposed copy would be needed: leave it to the two steps
	}
	return &widenedDot{dot: n, widen: c}
}

func (f *widenedDot) inputs() []*node { return []*node{f.dot.inputs[0], f.widen.inputs[0]} }
func (f *widenedDot) inside() []*node { return []*node{f.widen} }
func (f *widenedDot) name() string {
	return fmt.Sprintf("DotGeneral widening %s", f.widen.inputs[0].shape)
}

// exec runs the product with the 16-bit operand as it is stored (dotGeneral
// widens it in the kernels).
func (f *widenedDot) exec(b *Backend, ins []any, out any) error { return b.dotGeneral(f.dot, ins, out) }

// batchRepeat reports whether broadcast b only repeats its operand along
// batch axes (the operand keeps b's rank and axis order, with size 1 on
// every batch axis and b's size on the others), so that every batch of b
// holds the operand's values.
func batchRepeat(b *node, batch []int) bool {
	in, out := b.inputs[0].shape.Dimensions, b.shape.Dimensions
	if len(in) != len(out) {
		return false
	}
	for i, a := range b.axes {
		if a != i {
			return false
		}
		if slices.Contains(batch, i) {
			if in[i] != 1 {
				return false
			}
		} else if in[i] != out[i] {
			return false
		}
	}
	return true
}

func (f *roundedDot) inputs() []*node { return []*node{f.lower.inputs[0], f.dot.inputs[1]} }
func (f *roundedDot) inside() []*node { return f.chain }
func (f *roundedDot) name() string {
	return fmt.Sprintf("DotGeneral of %s rounded to %s", f.dot.inputs[1].shape, f.dtype)
}

func (f *roundedDot) exec(b *Backend, ins []any, out any) error {
	x, ok := ins[0].([]float32)
	res, ok2 := out.([]float32)
	if !ok || !ok2 {
		return fmt.Errorf("rounded product of %T into %T", ins[0], out)
	}
	a := b.alloc(dtypes.Float32, len(x)).([]float32)
	defer b.release(dtypes.Float32, a)
	var (
		round  func(dst, src []float32) // through the 16-bit type and back
		linear func(p *kernels.Pool, out, x []float32, m, k int, w []uint16, n int)
		w      []uint16
	)
	switch wt := ins[1].(type) {
	case []bfloat16.BFloat16:
		round, linear, w = roundBF16, kernels.LinearBF16, bits16(wt)
	case []float16.Float16:
		round, linear, w = roundF16, kernels.LinearF16, bits16(wt)
	default:
		return fmt.Errorf("rounded product with weights %T", ins[1])
	}
	M, K, N := f.M, f.K, f.N
	round(a, x)
	for bi := range f.batch {
		ab := a
		if !f.repeat {
			ab = a[bi*M*K : (bi+1)*M*K]
		}
		linear(b.pool, res[bi*M*N:(bi+1)*M*N], ab, M, K, w[bi*N*K:(bi+1)*N*K], N)
	}
	round(res, res)
	return nil
}

// nonFiniteCount is ReduceSum over all axes of ConvertDType(int32) of
// LogicalNot(IsFinite(x)), optionally LogicalAnd a mask (read through its
// broadcast when the broadcast has no other use), x optionally Mul(y, y):
// the engine's finite check. It counts in one pass.
type nonFiniteCount struct {
	last  *node
	x     *node // the float32 values checked (y when square)
	sq    bool  // x*x is checked
	mask  *node // nil, or the bool mask read with maskStrides
	chain []*node
	dims  []int // the shape checked
	ms    []int // the mask's strides in dims' index space
}

// matchNonFiniteCount recognises a nonFiniteCount ending at n.
func matchNonFiniteCount(n *node, u graphUses) *nonFiniteCount {
	if n.kind != backends.OpTypeReduceSum || n.shape.Rank() != 0 || n.shape.DType != dtypes.Int32 {
		return nil
	}
	conv := n.inputs[0]
	if conv.kind != backends.OpTypeConvertDType || !u.single(conv) || conv.inputs[0].shape.DType != dtypes.Bool {
		return nil
	}
	f := &nonFiniteCount{last: n, chain: []*node{conv}}
	bad := conv.inputs[0]
	if bad.kind == backends.OpTypeLogicalAnd {
		and := bad
		if !u.single(and) || !and.inputs[1].shape.Equal(and.shape) || !and.inputs[0].shape.Equal(and.shape) {
			return nil
		}
		f.chain = append(f.chain, and)
		bad = and.inputs[0]
		m := and.inputs[1]
		f.dims = and.shape.Dimensions
		if m.kind == backends.OpTypeBroadcastInDim && u.single(m) {
			f.chain = append(f.chain, m)
			in := m.inputs[0].shape.Dimensions
			st := stridesOf(in)
			f.ms = make([]int, len(f.dims))
			for i, a := range m.axes {
				if in[i] != 1 {
					f.ms[a] = st[i]
				}
			}
			m = m.inputs[0]
		} else {
			f.ms = stridesOf(f.dims)
		}
		f.mask = m
	}
	if bad.kind != backends.OpTypeLogicalNot || !u.single(bad) {
		return nil
	}
	fin := bad.inputs[0]
	if fin.kind != backends.OpTypeIsFinite || !u.single(fin) || fin.inputs[0].shape.DType != dtypes.Float32 {
		return nil
	}
	f.chain = append(f.chain, bad, fin)
	f.dims = fin.shape.Dimensions
	f.x = fin.inputs[0]
	if sq := f.x; sq.kind == backends.OpTypeMul && sq.inputs[0] == sq.inputs[1] && u.count[sq.id] == 1 && !u.output[sq.id] {
		f.chain = append(f.chain, sq)
		f.x, f.sq = sq.inputs[0], true
	}
	return f
}

func (f *nonFiniteCount) inputs() []*node {
	if f.mask == nil {
		return []*node{f.x}
	}
	return []*node{f.x, f.mask}
}
func (f *nonFiniteCount) inside() []*node { return f.chain }
func (f *nonFiniteCount) name() string    { return "count of non-finite values" }

// notFinite reports whether v (its square when sq) is NaN or infinite.
func notFinite(v float32, sq bool) bool {
	if sq {
		v = float32(v * v)
	}
	return math.Float32bits(v)&0x7f800000 == 0x7f800000
}

func (f *nonFiniteCount) exec(_ *Backend, ins []any, out any) error {
	x, ok := ins[0].([]float32)
	res, ok2 := out.([]int32)
	if !ok || !ok2 {
		return fmt.Errorf("non-finite count of %T into %T", ins[0], out)
	}
	var count int32
	if f.mask == nil {
		for _, v := range x {
			if notFinite(v, f.sq) {
				count++
			}
		}
		res[0] = count
		return nil
	}
	m, ok := ins[1].([]bool)
	if !ok {
		return fmt.Errorf("non-finite count with mask %T", ins[1])
	}
	last := 0
	if len(f.ms) > 0 {
		last = f.ms[len(f.ms)-1]
	}
	walk(f.dims, [][]int{stridesOf(f.dims), f.ms}, []int{0, 0}, func(offs []int, n int) {
		xs := x[offs[0] : offs[0]+n]
		if last == 0 {
			if !m[offs[1]] {
				return
			}
			for _, v := range xs {
				if notFinite(v, f.sq) {
					count++
				}
			}
			return
		}
		o := offs[1]
		for _, v := range xs {
			if m[o] && notFinite(v, f.sq) {
				count++
			}
			o += last
		}
	})
	res[0] = count
	return nil
}

// rotateHalf is the rotary embedding's rotate-half step: with x1 and x2
// the first and second halves of x's last axis,
// Concatenate(x1*cos - x2*sin, x2*cos + x1*sin) along that axis, cos and sin
// broadcast over x's other axes (each a size-1 axis or x's). It computes
// each value with the same float32 operations, in one pass.
type rotateHalf struct {
	last, x, cos, sin *node
	chain             []*node
	dims              []int // the halves' shape
	half              int
}

// matchRotateHalf recognises a rotateHalf ending at n.
func matchRotateHalf(n *node, u graphUses) *rotateHalf {
	if n.kind != backends.OpTypeConcatenate || len(n.inputs) != 2 || n.shape.DType != dtypes.Float32 || n.axes[0] != n.shape.Rank()-1 {
		return nil
	}
	sub, add := n.inputs[0], n.inputs[1]
	if sub.kind != backends.OpTypeSub || add.kind != backends.OpTypeAdd || !u.single(sub) || !u.single(add) {
		return nil
	}
	m1, m2, m3, m4 := sub.inputs[0], sub.inputs[1], add.inputs[0], add.inputs[1]
	for _, m := range []*node{m1, m2, m3, m4} {
		if m.kind != backends.OpTypeMul || !u.single(m) {
			return nil
		}
	}
	x1, x2, cos, sin := m1.inputs[0], m2.inputs[0], m1.inputs[1], m2.inputs[1]
	if m3.inputs[0] != x2 || m3.inputs[1] != cos || m4.inputs[0] != x1 || m4.inputs[1] != sin || x1 == x2 || cos == sin {
		return nil
	}
	if x1.kind != backends.OpTypeSlice || x2.kind != backends.OpTypeSlice || x1.inputs[0] != x2.inputs[0] ||
		u.count[x1.id] != 2 || u.count[x2.id] != 2 || u.output[x1.id] || u.output[x2.id] {
		return nil
	}
	x := x1.inputs[0]
	r := x.shape.Rank()
	hd := x.shape.Dimensions[r-1]
	half := hd / 2
	if x.shape.DType != dtypes.Float32 || hd%2 != 0 || !x1.shape.Equal(x2.shape) || !m1.shape.Equal(x1.shape) || !n.shape.Equal(x.shape) {
		return nil
	}
	for a := range r {
		for _, sl := range []*node{x1, x2} {
			if sl.strides[a] != 1 && sl.shape.Dimensions[a] > 1 {
				return nil
			}
		}
		if a < r-1 && (x1.shape.Dimensions[a] != x.shape.Dimensions[a] || x1.starts[a] != 0 || x2.starts[a] != 0) {
			return nil
		}
	}
	if x1.starts[r-1] != 0 || x2.starts[r-1] != half || x1.shape.Dimensions[r-1] != half {
		return nil
	}
	for _, c := range []*node{cos, sin} {
		if c.shape.DType != dtypes.Float32 || c.shape.Rank() != r {
			return nil
		}
		for a, d := range c.shape.Dimensions {
			if d != 1 && d != x1.shape.Dimensions[a] {
				return nil
			}
		}
	}
	return &rotateHalf{last: n, x: x, cos: cos, sin: sin, dims: x1.shape.Dimensions, half: half,
		chain: []*node{x1, x2, m1, m2, m3, m4, sub, add}}
}

func (f *rotateHalf) inputs() []*node { return []*node{f.x, f.cos, f.sin} }
func (f *rotateHalf) inside() []*node { return f.chain }
func (f *rotateHalf) name() string    { return "rotate-half (rotary embedding)" }

func (f *rotateHalf) exec(_ *Backend, ins []any, out any) error {
	x, ok1 := ins[0].([]float32)
	c, ok2 := ins[1].([]float32)
	s, ok3 := ins[2].([]float32)
	res, ok4 := out.([]float32)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return fmt.Errorf("rotate-half of %T, %T, %T into %T", ins[0], ins[1], ins[2], out)
	}
	r := len(f.dims)
	full := slices.Clone(f.dims)
	full[r-1] *= 2
	xs := stridesOf(full)
	cs := broadcastStrides(f.cos.shape.Dimensions, r)
	ss := broadcastStrides(f.sin.shape.Dimensions, r)
	cStep, sStep := cs[r-1], ss[r-1]
	h := f.half
	walk(f.dims, [][]int{xs, cs, ss}, []int{0, 0, 0}, func(offs []int, n int) {
		o, ci, si := offs[0], offs[1], offs[2]
		x1, x2 := x[o:o+n], x[o+h:o+h+n]
		r1, r2 := res[o:o+n], res[o+h:o+h+n]
		for i := range x1 {
			cv, sv := c[ci], s[si]
			// Explicit conversions: each product rounded, as apart (no FMA).
			r1[i] = float32(x1[i]*cv) - float32(x2[i]*sv)
			r2[i] = float32(x2[i]*cv) + float32(x1[i]*sv)
			ci += cStep
			si += sStep
		}
	})
	return nil
}

// rmsNorm is the RMS norm over x's last axis, as GoMLX builds it:
// Mul(Mul(x, Rsqrt(Add(Reshape(Mul(ReduceSum(Mul(x, x), last), 1/n)), eps))),
// w) with w of n values along the last axis. It computes each row with the
// same float32 operations in the same order, in one pass over the row for
// the sum and one for the result.
type rmsNorm struct {
	last, x, scale, eps, w *node
	chain                  []*node
	n                      int // the last axis
}

// scalarBeside returns, of binary node b's operands, the one of kind k and
// the other when that one is a single float32 value, or nils.
func scalarBeside(b *node, k backends.OpType) (scalar, other *node) {
	for i := range 2 {
		if o, s := b.inputs[i], b.inputs[1-i]; o.kind == k && s.shape.Size() == 1 && s.shape.DType == dtypes.Float32 && s.shape.Rank() <= b.shape.Rank() {
			return s, o
		}
	}
	return nil, nil
}

// matchRMSNorm recognises an rmsNorm ending at n.
func matchRMSNorm(n *node, u graphUses) *rmsNorm {
	if n.kind != backends.OpTypeMul || n.shape.DType != dtypes.Float32 || n.shape.Rank() == 0 {
		return nil
	}
	normed, w := n.inputs[0], n.inputs[1]
	if normed.kind != backends.OpTypeMul || !u.single(normed) || !normed.shape.Equal(n.shape) {
		return nil
	}
	x, r := normed.inputs[0], normed.inputs[1]
	if !x.shape.Equal(n.shape) {
		return nil
	}
	rank := x.shape.Rank()
	H := x.shape.Dimensions[rank-1]
	if w.shape.Size() != H || w.shape.Rank() != rank || w.shape.Dimensions[rank-1] != H || w.shape.DType != dtypes.Float32 {
		return nil
	}
	if r.kind != backends.OpTypeRsqrt || !u.single(r) {
		return nil
	}
	add := r.inputs[0]
	if add.kind != backends.OpTypeAdd || !u.single(add) {
		return nil
	}
	eps, keep := scalarBeside(add, backends.OpTypeReshape)
	if eps == nil || !u.single(keep) {
		return nil
	}
	// r holds one value per row: x's shape with a last axis of 1.
	if !slices.Equal(keep.shape.Dimensions[:rank-1], x.shape.Dimensions[:rank-1]) || keep.shape.Rank() != rank || keep.shape.Dimensions[rank-1] != 1 || !add.shape.Equal(keep.shape) {
		return nil
	}
	mean := keep.inputs[0]
	if mean.kind != backends.OpTypeMul || !u.single(mean) {
		return nil
	}
	scale, sum := scalarBeside(mean, backends.OpTypeReduceSum)
	if scale == nil || !u.single(sum) || !slices.Equal(sum.axes, []int{rank - 1}) {
		return nil
	}
	sq := sum.inputs[0]
	if sq.kind != backends.OpTypeMul || sq.inputs[0] != x || sq.inputs[1] != x || !u.single(sq) {
		return nil
	}
	for a := range rank - 1 {
		if w.shape.Dimensions[a] != 1 {
			return nil
		}
	}
	return &rmsNorm{last: n, x: x, scale: scale, eps: eps, w: w, n: H,
		chain: []*node{sq, sum, mean, keep, add, r, normed}}
}

func (f *rmsNorm) inputs() []*node { return []*node{f.x, f.scale, f.eps, f.w} }
func (f *rmsNorm) inside() []*node { return f.chain }
func (f *rmsNorm) name() string    { return "RMS norm" }

func (f *rmsNorm) exec(_ *Backend, ins []any, out any) error {
	x, ok1 := ins[0].([]float32)
	sc, ok2 := ins[1].([]float32)
	eps, ok3 := ins[2].([]float32)
	w, ok4 := ins[3].([]float32)
	res, ok5 := out.([]float32)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return fmt.Errorf("RMS norm of %T, %T, %T, %T into %T", ins[0], ins[1], ins[2], ins[3], out)
	}
	H := f.n
	w = w[:H]
	for row := 0; row+H <= len(x); row += H {
		xs, rs := x[row:row+H], res[row:row+H]
		var acc float32
		for _, v := range xs {
			acc += float32(v * v)
		}
		a := float32(acc*sc[0]) + eps[0]
		r := float32(1 / math.Sqrt(float64(a)))
		for i, v := range xs {
			rs[i] = float32(v*r) * w[i]
		}
	}
	return nil
}

// softmax is GoMLX's Softmax over the last axis (ReduceMax, Sub, Exp,
// ReduceSum, Div, with the reductions reshaped to keep the axis), and, when
// the logits are a Where of full-size operands and a single fill value
// read only by the softmax, that Where too, and a Mul of its values by a
// single value (the engine's scaled, masked attention scores). It computes
// each row with the same float32 operations, in order, and the same Exp
// kernel.
type softmax struct {
	last, logits *node
	cond, fill   *node // the Where: nil when logits are an input
	scale        *node // nil, or the value logits (or the Where's values) are scaled by
	chain        []*node
	n            int // the last axis
}

// keepOf returns the reduction under a Reshape that restores the reduced
// last axis of a rank-r x with size 1, when it reduces exactly that axis of
// x with kind k and both have one use; else nil.
func keepOf(keep *node, x *node, k backends.OpType, u graphUses) *node {
	r := x.shape.Rank()
	if keep.kind != backends.OpTypeReshape || !u.single(keep) || keep.shape.Rank() != r ||
		!slices.Equal(keep.shape.Dimensions[:r-1], x.shape.Dimensions[:r-1]) || keep.shape.Dimensions[r-1] != 1 {
		return nil
	}
	red := keep.inputs[0]
	if red.kind != k || red.inputs[0] != x || !u.single(red) || !slices.Equal(red.axes, []int{r - 1}) {
		return nil
	}
	return red
}

// matchSoftmax recognises a softmax ending at n.
func matchSoftmax(n *node, u graphUses) *softmax {
	if n.kind != backends.OpTypeDiv || n.shape.DType != dtypes.Float32 || n.shape.Rank() == 0 {
		return nil
	}
	e := n.inputs[0]
	if e.kind != backends.OpTypeExp || u.count[e.id] != 2 || u.output[e.id] || !e.shape.Equal(n.shape) {
		return nil
	}
	sumR := keepOf(n.inputs[1], e, backends.OpTypeReduceSum, u)
	sub := e.inputs[0]
	if sumR == nil || sub.kind != backends.OpTypeSub || !u.single(sub) || !sub.shape.Equal(n.shape) {
		return nil
	}
	logits := sub.inputs[0]
	maxR := keepOf(sub.inputs[1], logits, backends.OpTypeReduceMax, u)
	if maxR == nil || !logits.shape.Equal(n.shape) {
		return nil
	}
	f := &softmax{last: n, logits: logits, n: n.shape.Dimensions[n.shape.Rank()-1],
		chain: []*node{sumR, n.inputs[1], e, sub, maxR, sub.inputs[1]}}
	if w := logits; w.kind == backends.OpTypeWhere && u.count[w.id] == 2 && !u.output[w.id] &&
		w.inputs[0].shape.Size() == w.shape.Size() && w.inputs[1].shape.Size() == w.shape.Size() &&
		w.inputs[2].shape.Size() == 1 && w.shape.DType == dtypes.Float32 {
		f.chain = append(f.chain, w)
		f.cond, f.logits, f.fill = w.inputs[0], w.inputs[1], w.inputs[2]
		if m := f.logits; m.kind == backends.OpTypeMul && u.single(m) {
			for i := range 2 {
				x, sc := m.inputs[i], m.inputs[1-i]
				if sc.shape.Size() == 1 && sc.shape.DType == dtypes.Float32 && x.shape.Size() == m.shape.Size() {
					f.chain = append(f.chain, m)
					f.logits, f.scale = x, sc
					break
				}
			}
		}
	}
	return f
}

func (f *softmax) inputs() []*node {
	ins := []*node{f.logits}
	if f.cond != nil {
		ins = append(ins, f.cond, f.fill)
	}
	if f.scale != nil {
		ins = append(ins, f.scale)
	}
	return ins
}
func (f *softmax) inside() []*node { return f.chain }
func (f *softmax) name() string    { return "softmax" }

func (f *softmax) exec(_ *Backend, ins []any, out any) error {
	x, ok1 := ins[0].([]float32)
	res, ok2 := out.([]float32)
	if !ok1 || !ok2 {
		return fmt.Errorf("softmax of %T into %T", ins[0], out)
	}
	var cond []bool
	var fill, scale float32
	k := 1
	if f.cond != nil {
		c, ok3 := ins[1].([]bool)
		v, ok4 := ins[2].([]float32)
		if !ok3 || !ok4 {
			return fmt.Errorf("softmax's Where of %T and %T", ins[1], ins[2])
		}
		cond, fill, k = c, v[0], 3
	}
	if f.scale != nil {
		s, ok := ins[k].([]float32)
		if !ok {
			return fmt.Errorf("softmax's scale %T", ins[k])
		}
		scale = s[0]
	}
	S := f.n
	for row := 0; row+S <= len(res); row += S {
		r := res[row : row+S]
		copy(r, x[row:row+S])
		if f.scale != nil {
			for i, v := range r {
				r[i] = v * scale
			}
		}
		if cond != nil {
			for i, c := range cond[row : row+S] {
				if !c {
					r[i] = fill
				}
			}
		}
		m := float32(math.Inf(-1))
		for _, v := range r {
			if v > m || v != v {
				m = v
			}
		}
		for i, v := range r {
			r[i] = v - m
		}
		kernels.Exp(r, r)
		var sum float32
		for _, v := range r {
			sum += v
		}
		for i, v := range r {
			r[i] = v / sum
		}
	}
	return nil
}

// swiGLU is Mul(Mul(g, Logistic(g)), up) of float32 operands of one shape
// (SiLU(gate) times up, the gated MLP's activation). It runs the same
// Logistic kernel and the same two rounded products per value, in one pass.
type swiGLU struct {
	last, gate, up *node
	chain          []*node
}

// matchSwiGLU recognises a swiGLU ending at n.
func matchSwiGLU(n *node, u graphUses) *swiGLU {
	if n.kind != backends.OpTypeMul || n.shape.DType != dtypes.Float32 {
		return nil
	}
	for i := range 2 {
		act, up := n.inputs[i], n.inputs[1-i]
		if act.kind != backends.OpTypeMul || !u.single(act) || !act.shape.Equal(n.shape) || !up.shape.Equal(n.shape) {
			continue
		}
		g, l := act.inputs[0], act.inputs[1]
		if l.kind != backends.OpTypeLogistic || l.inputs[0] != g || !u.single(l) || !g.shape.Equal(n.shape) {
			continue
		}
		return &swiGLU{last: n, gate: g, up: up, chain: []*node{act, l}}
	}
	return nil
}

func (f *swiGLU) inputs() []*node { return []*node{f.gate, f.up} }
func (f *swiGLU) inside() []*node { return f.chain }
func (f *swiGLU) name() string    { return "SiLU(gate) times up" }

func (f *swiGLU) exec(_ *Backend, ins []any, out any) error {
	g, ok1 := ins[0].([]float32)
	up, ok2 := ins[1].([]float32)
	res, ok3 := out.([]float32)
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("SiLU(gate) times up of %T and %T into %T", ins[0], ins[1], out)
	}
	kernels.Logistic(res, g)
	g, up = g[:len(res)], up[:len(res)]
	for i, l := range res {
		res[i] = float32(g[i]*l) * up[i]
	}
	return nil
}

// roundBF16 sets dst[i] to src[i] rounded to bfloat16 (as ConvertDType rounds) and widened back.
func roundBF16(dst, src []float32) {
	for i, v := range src {
		dst[i] = bfloat16.FromFloat32(v).Float32()
	}
}

// roundF16 sets dst[i] to src[i] rounded to float16 (as ConvertDType rounds) and widened back.
func roundF16(dst, src []float32) {
	for i, v := range src {
		dst[i] = float16.Fromfloat32(v).Float32()
	}
}
