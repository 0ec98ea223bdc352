package cpubackend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/notimplemented"
	"github.com/gomlx/gomlx/backends/shapeinference"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// node is one operation of a computation under construction.
type node struct {
	id      int
	kind    backends.OpType
	shape   shapes.Shape
	inputs  []*node
	builder *Builder

	axes                    []int // reduce axes, permutation, broadcast axes, iota/concat axis
	starts, limits, strides []int // Slice
	flat                    any   // Constant value
	param                   int   // Parameter index
	name                    string
	gather                  *gatherAttrs
	dot                     *dotAttrs
}

// gatherAttrs are the static arguments of Gather.
type gatherAttrs struct {
	indexVectorAxis                                                 int
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int
}

// dotAttrs are the static arguments of DotGeneral.
type dotAttrs struct {
	lhsContract, lhsBatch, rhsContract, rhsBatch []int
}

// Builder builds one computation. Operations not listed in opKinds answer
// "not implemented" through the embedded notimplemented.Builder.
type Builder struct {
	notimplemented.Builder
	backend  *Backend
	name     string
	nodes    []*node
	params   []*node
	compiled bool
}

var _ backends.Builder = (*Builder)(nil)

func newBuilder(b *Backend, name string) *Builder {
	bl := &Builder{backend: b, name: name}
	bl.Builder.ErrFn = func(op backends.OpType) error {
		return fmt.Errorf("cpubackend: operation %s is not implemented by the %q backend (use the \"go\" backend)", op, BackendName)
	}
	return bl
}

// opKinds are the operations the backend implements.
var opKinds = map[backends.OpType]bool{}

func init() {
	for _, op := range []backends.OpType{
		backends.OpTypeParameter, backends.OpTypeConstant, backends.OpTypeIdentity,
		backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv, backends.OpTypeRem,
		backends.OpTypeMax, backends.OpTypeMin,
		backends.OpTypeEqual, backends.OpTypeLessThan, backends.OpTypeLessOrEqual,
		backends.OpTypeGreaterThan, backends.OpTypeGreaterOrEqual,
		backends.OpTypeLogicalAnd, backends.OpTypeLogicalOr, backends.OpTypeLogicalNot,
		backends.OpTypeExp, backends.OpTypeRsqrt, backends.OpTypeCos, backends.OpTypeSin, backends.OpTypeTanh, backends.OpTypeLogistic,
		backends.OpTypeIsFinite,
		backends.OpTypeReshape, backends.OpTypeTranspose, backends.OpTypeBroadcastInDim,
		backends.OpTypeSlice, backends.OpTypeConcatenate, backends.OpTypeIota, backends.OpTypeConvertDType,
		backends.OpTypeWhere, backends.OpTypeReduceSum, backends.OpTypeReduceMax,
		backends.OpTypeDotGeneral, backends.OpTypeGather, backends.OpTypeDynamicUpdateSlice,
	} {
		opKinds[op] = true
	}
}

// Name returns the computation's name.
func (b *Builder) Name() string { return b.name }

func (b *Builder) add(n *node) (backends.Op, error) {
	if b.compiled {
		return nil, fmt.Errorf("cpubackend: computation %q is already compiled", b.name)
	}
	if !supportedDTypes[n.shape.DType] {
		return nil, fmt.Errorf("cpubackend: %s with dtype %s is not supported by the %q backend (float32, int32, bool, bfloat16, float16)", n.kind, n.shape.DType, BackendName)
	}
	n.id = len(b.nodes)
	n.builder = b
	b.nodes = append(b.nodes, n)
	return n, nil
}

// in checks that ops are nodes of this builder.
func (b *Builder) in(ops ...backends.Op) ([]*node, error) {
	out := make([]*node, len(ops))
	for i, op := range ops {
		n, ok := op.(*node)
		if !ok || n == nil || n.builder != b {
			return nil, fmt.Errorf("cpubackend: operand %d (%T) was not built by computation %q", i, op, b.name)
		}
		out[i] = n
	}
	return out, nil
}

// OpShape returns the shape of op.
func (b *Builder) OpShape(op backends.Op) (shapes.Shape, error) {
	ns, err := b.in(op)
	if err != nil {
		return shapes.Invalid(), err
	}
	return ns[0].shape, nil
}

// Parameter declares the next input of the computation.
func (b *Builder) Parameter(name string, shape shapes.Shape, _ *backends.ShardingSpec) (backends.Op, error) {
	n := &node{kind: backends.OpTypeParameter, shape: shape, param: len(b.params), name: name}
	op, err := b.add(n)
	if err == nil {
		b.params = append(b.params, n)
	}
	return op, err
}

// Constant stores a copy of flat with the given dimensions.
func (b *Builder) Constant(flat any, dims ...int) (backends.Op, error) {
	dtype, n, err := flatInfo(flat)
	if err != nil {
		return nil, err
	}
	shape := shapes.Make(dtype, dims...)
	if shape.Size() != n {
		return nil, fmt.Errorf("cpubackend: Constant of %d values with dimensions %v", n, dims)
	}
	if !supportedDTypes[dtype] {
		return nil, fmt.Errorf("cpubackend: Constant of dtype %s is not supported", dtype)
	}
	c := makeFlat(dtype, n)
	if err := copyFlat(c, flat); err != nil {
		return nil, err
	}
	return b.add(&node{kind: backends.OpTypeConstant, shape: shape, flat: c})
}

func (b *Builder) unary(kind backends.OpType, x backends.Op) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	shape := ns[0].shape.Clone()
	if kind == backends.OpTypeIsFinite {
		if !shape.DType.IsFloat() {
			return nil, fmt.Errorf("cpubackend: IsFinite of %s: expected a float", shape)
		}
		shape.DType = dtypes.Bool
	} else if shape, err = shapeinference.UnaryOp(kind, shape); err != nil {
		return nil, err
	}
	return b.add(&node{kind: kind, shape: shape, inputs: ns})
}

func (b *Builder) binary(kind backends.OpType, lhs, rhs backends.Op) (backends.Op, error) {
	ns, err := b.in(lhs, rhs)
	if err != nil {
		return nil, err
	}
	var shape shapes.Shape
	if shapeinference.ComparisonOperations.Has(kind) {
		shape, err = shapeinference.ComparisonOp(kind, ns[0].shape, ns[1].shape)
	} else {
		shape, err = shapeinference.BinaryOp(kind, ns[0].shape, ns[1].shape)
	}
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: kind, shape: shape, inputs: ns})
}

// Identity returns x.
func (b *Builder) Identity(x backends.Op) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	return ns[0], nil
}

// Add returns lhs + rhs.
func (b *Builder) Add(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeAdd, lhs, rhs)
}

// Sub returns lhs - rhs.
func (b *Builder) Sub(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeSub, lhs, rhs)
}

// Mul returns lhs * rhs.
func (b *Builder) Mul(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMul, lhs, rhs)
}

// Div returns lhs / rhs.
func (b *Builder) Div(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeDiv, lhs, rhs)
}

// Rem returns the remainder of lhs / rhs (sign of lhs).
func (b *Builder) Rem(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeRem, lhs, rhs)
}

// Max returns the element-wise maximum.
func (b *Builder) Max(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMax, lhs, rhs)
}

// Min returns the element-wise minimum.
func (b *Builder) Min(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeMin, lhs, rhs)
}

// Equal compares element-wise.
func (b *Builder) Equal(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeEqual, lhs, rhs)
}

// LessThan compares element-wise.
func (b *Builder) LessThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLessThan, lhs, rhs)
}

// LessOrEqual compares element-wise.
func (b *Builder) LessOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLessOrEqual, lhs, rhs)
}

// GreaterThan compares element-wise.
func (b *Builder) GreaterThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeGreaterThan, lhs, rhs)
}

// GreaterOrEqual compares element-wise.
func (b *Builder) GreaterOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeGreaterOrEqual, lhs, rhs)
}

// LogicalAnd is the element-wise and of booleans.
func (b *Builder) LogicalAnd(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLogicalAnd, lhs, rhs)
}

// LogicalOr is the element-wise or of booleans.
func (b *Builder) LogicalOr(lhs, rhs backends.Op) (backends.Op, error) {
	return b.binary(backends.OpTypeLogicalOr, lhs, rhs)
}

// LogicalNot negates booleans.
func (b *Builder) LogicalNot(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeLogicalNot, x)
}

// Exp returns e^x.
func (b *Builder) Exp(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeExp, x) }

// Rsqrt returns 1/sqrt(x).
func (b *Builder) Rsqrt(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeRsqrt, x) }

// Cos returns the cosine.
func (b *Builder) Cos(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeCos, x) }

// Sin returns the sine.
func (b *Builder) Sin(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeSin, x) }

// Tanh returns the hyperbolic tangent.
func (b *Builder) Tanh(x backends.Op) (backends.Op, error) { return b.unary(backends.OpTypeTanh, x) }

// Logistic returns 1/(1+e^-x).
func (b *Builder) Logistic(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeLogistic, x)
}

// IsFinite reports element-wise whether x is neither NaN nor infinite.
func (b *Builder) IsFinite(x backends.Op) (backends.Op, error) {
	return b.unary(backends.OpTypeIsFinite, x)
}

// Reshape returns x with new dimensions (a view, no copy).
func (b *Builder) Reshape(x backends.Op, dims ...int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.ReshapeOp(ns[0].shape, dims)
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: backends.OpTypeReshape, shape: shape, inputs: ns})
}

// Transpose permutes the axes of x.
func (b *Builder) Transpose(x backends.Op, perm ...int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.TransposeOp(ns[0].shape, perm)
	if err != nil {
		return nil, err
	}
	if inOrder(ns[0].shape.Dimensions, perm) {
		// Only axes of size 1 move: the values stay in order.
		return b.Reshape(x, shape.Dimensions...)
	}
	return b.add(&node{kind: backends.OpTypeTranspose, shape: shape, inputs: ns, axes: slices.Clone(perm)})
}

// BroadcastInDim broadcasts x to outputShape, x's axis i becoming axis
// broadcastAxes[i].
func (b *Builder) BroadcastInDim(x backends.Op, outputShape shapes.Shape, broadcastAxes []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	if err := shapeinference.BroadcastInDimOp(ns[0].shape, outputShape, broadcastAxes); err != nil {
		return nil, err
	}
	shape := outputShape.Clone()
	shape.DType = ns[0].shape.DType
	if shape.Size() == ns[0].shape.Size() && inOrder(ns[0].shape.Dimensions, readOrder(broadcastAxes, shape.Rank())) {
		// Nothing is repeated and the values stay in order (a [1, n] to
		// [1, 1, n] "broadcast"): a view.
		return b.Reshape(x, shape.Dimensions...)
	}
	return b.add(&node{kind: backends.OpTypeBroadcastInDim, shape: shape, inputs: ns, axes: slices.Clone(broadcastAxes)})
}

// Slice takes x[starts:limits:strides] per axis.
func (b *Builder) Slice(x backends.Op, starts, limits, strides []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.SliceOp(ns[0].shape, starts, limits, strides)
	if err != nil {
		return nil, err
	}
	st := slices.Clone(strides)
	if len(st) == 0 {
		st = make([]int, len(starts))
		for i := range st {
			st[i] = 1
		}
	}
	if shape.Equal(ns[0].shape) && !slices.ContainsFunc(starts, func(s int) bool { return s != 0 }) {
		return ns[0], nil // the whole operand
	}
	return b.add(&node{kind: backends.OpTypeSlice, shape: shape, inputs: ns, starts: slices.Clone(starts), strides: st})
}

// Concatenate joins operands along axis.
func (b *Builder) Concatenate(axis int, operands ...backends.Op) (backends.Op, error) {
	ns, err := b.in(operands...)
	if err != nil {
		return nil, err
	}
	in := make([]shapes.Shape, len(ns))
	for i, n := range ns {
		in[i] = n.shape
	}
	shape, err := shapeinference.ConcatenateOp(in, axis)
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: backends.OpTypeConcatenate, shape: shape, inputs: ns, axes: []int{axis}})
}

// Iota fills shape with the index along iotaAxis.
func (b *Builder) Iota(shape shapes.Shape, iotaAxis int) (backends.Op, error) {
	if iotaAxis < 0 || iotaAxis >= shape.Rank() {
		return nil, fmt.Errorf("cpubackend: Iota axis %d out of range for %s", iotaAxis, shape)
	}
	return b.add(&node{kind: backends.OpTypeIota, shape: shape, axes: []int{iotaAxis}})
}

// ConvertDType converts x to dtype.
func (b *Builder) ConvertDType(x backends.Op, dtype dtypes.DType) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	shape := ns[0].shape.Clone()
	shape.DType = dtype
	return b.add(&node{kind: backends.OpTypeConvertDType, shape: shape, inputs: ns})
}

// Where selects onTrue where condition holds, else onFalse.
func (b *Builder) Where(condition, onTrue, onFalse backends.Op) (backends.Op, error) {
	ns, err := b.in(condition, onTrue, onFalse)
	if err != nil {
		return nil, err
	}
	shape, err := shapeinference.WhereOp(ns[0].shape, ns[1].shape, ns[2].shape)
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: backends.OpTypeWhere, shape: shape, inputs: ns})
}

func (b *Builder) reduce(kind backends.OpType, x backends.Op, axes []int) (backends.Op, error) {
	ns, err := b.in(x)
	if err != nil {
		return nil, err
	}
	if len(axes) == 0 {
		axes = make([]int, ns[0].shape.Rank())
		for i := range axes {
			axes[i] = i
		}
	}
	shape, err := shapeinference.ReduceOp(ns[0].shape, axes)
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: kind, shape: shape, inputs: ns, axes: slices.Clone(axes)})
}

// ReduceSum sums over axes (all when none).
func (b *Builder) ReduceSum(x backends.Op, axes ...int) (backends.Op, error) {
	return b.reduce(backends.OpTypeReduceSum, x, axes)
}

// ReduceMax takes the maximum over axes (all when none).
func (b *Builder) ReduceMax(x backends.Op, axes ...int) (backends.Op, error) {
	return b.reduce(backends.OpTypeReduceMax, x, axes)
}

// Gather is XLA's gather.
func (b *Builder) Gather(operand, startIndices backends.Op, indexVectorAxis int,
	offsetOutputAxes, collapsedSliceAxes, startIndexMap, sliceSizes []int, indicesAreSorted bool) (backends.Op, error) {
	ns, err := b.in(operand, startIndices)
	if err != nil {
		return nil, err
	}
	if ns[1].shape.DType != dtypes.Int32 {
		return nil, fmt.Errorf("cpubackend: Gather indices must be int32, got %s", ns[1].shape)
	}
	shape, err := shapeinference.Gather(ns[0].shape, ns[1].shape, indexVectorAxis, offsetOutputAxes,
		collapsedSliceAxes, startIndexMap, sliceSizes, indicesAreSorted)
	if err != nil {
		return nil, err
	}
	return b.add(&node{kind: backends.OpTypeGather, shape: shape, inputs: ns, gather: &gatherAttrs{
		indexVectorAxis: indexVectorAxis, offsetOutputAxes: slices.Clone(offsetOutputAxes),
		collapsedSliceAxes: slices.Clone(collapsedSliceAxes), startIndexMap: slices.Clone(startIndexMap),
		sliceSizes: slices.Clone(sliceSizes),
	}})
}

// DynamicUpdateSlice writes update into operand at startIndices (scalars,
// clamped so the update fits). A donated operand is written in place.
func (b *Builder) DynamicUpdateSlice(operand, update backends.Op, startIndices []backends.Op) (backends.Op, error) {
	ns, err := b.in(append([]backends.Op{operand, update}, startIndices...)...)
	if err != nil {
		return nil, err
	}
	op, up := ns[0].shape, ns[1].shape
	if op.DType != up.DType || op.Rank() != up.Rank() || len(startIndices) != op.Rank() {
		return nil, fmt.Errorf("cpubackend: DynamicUpdateSlice of %s into %s with %d indices", up, op, len(startIndices))
	}
	for i := range op.Rank() {
		if up.Dimensions[i] > op.Dimensions[i] {
			return nil, fmt.Errorf("cpubackend: DynamicUpdateSlice update %s larger than operand %s", up, op)
		}
		if s := ns[2+i].shape; !s.IsScalar() || s.DType != dtypes.Int32 {
			return nil, fmt.Errorf("cpubackend: DynamicUpdateSlice start index %d must be an int32 scalar, got %s", i, s)
		}
	}
	return b.add(&node{kind: backends.OpTypeDynamicUpdateSlice, shape: op, inputs: ns})
}

// DotGeneral is XLA's general dot product: output axes are the batch axes,
// then lhs's free axes, then rhs's free axes.
func (b *Builder) DotGeneral(lhs backends.Op, lhsContract, lhsBatch []int, rhs backends.Op, rhsContract, rhsBatch []int) (backends.Op, error) {
	ns, err := b.in(lhs, rhs)
	if err != nil {
		return nil, err
	}
	l, r := ns[0].shape, ns[1].shape
	if len(lhsContract) != len(rhsContract) || len(lhsBatch) != len(rhsBatch) {
		return nil, fmt.Errorf("cpubackend: DotGeneral axes do not pair up: contracting %v/%v, batch %v/%v", lhsContract, rhsContract, lhsBatch, rhsBatch)
	}
	for i := range lhsContract {
		if l.Dimensions[lhsContract[i]] != r.Dimensions[rhsContract[i]] {
			return nil, fmt.Errorf("cpubackend: DotGeneral contracting axes differ: %s vs %s", l, r)
		}
	}
	dims := []int{}
	for i := range lhsBatch {
		if l.Dimensions[lhsBatch[i]] != r.Dimensions[rhsBatch[i]] {
			return nil, fmt.Errorf("cpubackend: DotGeneral batch axes differ: %s vs %s", l, r)
		}
		dims = append(dims, l.Dimensions[lhsBatch[i]])
	}
	for _, a := range freeAxes(l.Rank(), lhsContract, lhsBatch) {
		dims = append(dims, l.Dimensions[a])
	}
	for _, a := range freeAxes(r.Rank(), rhsContract, rhsBatch) {
		dims = append(dims, r.Dimensions[a])
	}
	dtype := l.DType
	if !dtype.IsFloat() {
		return nil, fmt.Errorf("cpubackend: DotGeneral of %s: only float dtypes", l)
	}
	return b.add(&node{kind: backends.OpTypeDotGeneral, shape: shapes.Make(dtype, dims...), inputs: ns, dot: &dotAttrs{
		lhsContract: slices.Clone(lhsContract), lhsBatch: slices.Clone(lhsBatch),
		rhsContract: slices.Clone(rhsContract), rhsBatch: slices.Clone(rhsBatch),
	}})
}

// readOrder returns, for broadcast axes (operand axis i becomes output
// axis to[i]), the operand axes in the order the output reads them.
func readOrder(to []int, outRank int) []int {
	from := make([]int, outRank)
	for i := range from {
		from[i] = -1
	}
	for i, a := range to {
		from[a] = i
	}
	return slices.DeleteFunc(from, func(a int) bool { return a < 0 })
}

// freeAxes returns the axes of a rank-r operand that are neither contracted
// nor batch, in order.
func freeAxes(rank int, contract, batch []int) []int {
	var out []int
	for a := range rank {
		if !slices.Contains(contract, a) && !slices.Contains(batch, a) {
			out = append(out, a)
		}
	}
	return out
}

// flatInfo returns the dtype and length of a flat slice.
func flatInfo(flat any) (dtypes.DType, int, error) {
	switch f := flat.(type) {
	case []float32:
		return dtypes.Float32, len(f), nil
	case []int32:
		return dtypes.Int32, len(f), nil
	case []bool:
		return dtypes.Bool, len(f), nil
	}
	dt, n := dtypes.InvalidDType, 0
	if v := reflectSlice(flat); v != nil {
		dt, n = dtypes.FromGoType(v.elem), v.n
	}
	if !supportedDTypes[dt] {
		return dt, 0, fmt.Errorf("cpubackend: constant of type %T is not supported", flat)
	}
	return dt, n, nil
}
