package cpubackend

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

// inPlace lists the operations whose result may overwrite their first
// operand (element-wise at the same index, or an in-place update).
var inPlace = map[backends.OpType]bool{
	backends.OpTypeAdd: true, backends.OpTypeSub: true, backends.OpTypeMul: true, backends.OpTypeDiv: true,
	backends.OpTypeRem: true, backends.OpTypeMax: true, backends.OpTypeMin: true,
	backends.OpTypeLogicalAnd: true, backends.OpTypeLogicalOr: true, backends.OpTypeLogicalNot: true,
	backends.OpTypeExp: true, backends.OpTypeRsqrt: true, backends.OpTypeCos: true, backends.OpTypeSin: true,
	backends.OpTypeTanh: true, backends.OpTypeLogistic: true,
	backends.OpTypeDynamicUpdateSlice: true,
}

// exec computes node n from its inputs' flat data into out.
func (b *Backend) exec(n *node, ins []any, out any) error {
	switch n.kind {
	case backends.OpTypeAdd, backends.OpTypeSub, backends.OpTypeMul, backends.OpTypeDiv, backends.OpTypeRem,
		backends.OpTypeMax, backends.OpTypeMin, backends.OpTypeEqual,
		backends.OpTypeLessThan, backends.OpTypeLessOrEqual, backends.OpTypeGreaterThan, backends.OpTypeGreaterOrEqual,
		backends.OpTypeLogicalAnd, backends.OpTypeLogicalOr:
		return binaryOp(n, ins, out)
	case backends.OpTypeExp, backends.OpTypeRsqrt, backends.OpTypeCos, backends.OpTypeSin, backends.OpTypeTanh, backends.OpTypeLogistic,
		backends.OpTypeIsFinite, backends.OpTypeLogicalNot:
		return unaryOp(n.kind, ins[0], out)
	case backends.OpTypeTranspose:
		in := n.inputs[0].shape.Dimensions
		st := stridesOf(in)
		perm := make([]int, len(n.axes))
		for a, p := range n.axes {
			perm[a] = st[p]
		}
		return move(out, ins[0], n.shape.Dimensions, perm, 0)
	case backends.OpTypeBroadcastInDim:
		in := n.inputs[0].shape.Dimensions
		st := stridesOf(in)
		s := make([]int, n.shape.Rank())
		for i, a := range n.axes {
			if in[i] != 1 {
				s[a] = st[i]
			}
		}
		return move(out, ins[0], n.shape.Dimensions, s, 0)
	case backends.OpTypeSlice:
		st := stridesOf(n.inputs[0].shape.Dimensions)
		s := make([]int, len(st))
		base := 0
		for a := range st {
			s[a] = st[a] * n.strides[a]
			base += st[a] * n.starts[a]
		}
		return move(out, ins[0], n.shape.Dimensions, s, base)
	case backends.OpTypeConcatenate:
		return concatenate(n, ins, out)
	case backends.OpTypeIota:
		return iotaFill(n, out)
	case backends.OpTypeConvertDType:
		convertFlat(out, ins[0])
		return nil
	case backends.OpTypeWhere:
		return where(n, ins, out)
	case backends.OpTypeReduceSum, backends.OpTypeReduceMax:
		return reduce(n, ins[0], out)
	case backends.OpTypeGather:
		return gather(n, ins, out)
	case backends.OpTypeDynamicUpdateSlice:
		return dynamicUpdateSlice(n, ins, out)
	case backends.OpTypeDotGeneral:
		return b.dotGeneral(n, ins, out)
	}
	return fmt.Errorf("no implementation for %s", n.kind)
}

// move copies src, read with the given strides (in the output's index
// space) from offset base, into out of dims: transpose, broadcast, slice.
func move(out, src any, dims, strides []int, base int) error {
	switch o := out.(type) {
	case []float32:
		moveT(o, src.([]float32), dims, strides, base)
	case []int32:
		moveT(o, src.([]int32), dims, strides, base)
	case []bool:
		moveT(o, src.([]bool), dims, strides, base)
	case []bfloat16.BFloat16:
		moveT(o, src.([]bfloat16.BFloat16), dims, strides, base)
	case []float16.Float16:
		moveT(o, src.([]float16.Float16), dims, strides, base)
	default:
		return fmt.Errorf("unsupported buffer %T", out)
	}
	return nil
}

func moveT[T any](out, src []T, dims, strides []int, base int) {
	r := len(dims)
	step := 0
	if r > 0 {
		step = strides[r-1]
	}
	walk(dims, [][]int{stridesOf(dims), strides}, []int{0, base}, func(offs []int, n int) {
		o, s := out[offs[0]:offs[0]+n], offs[1]
		if step == 1 {
			copy(o, src[s:s+n])
			return
		}
		for i := range o {
			o[i] = src[s]
			s += step
		}
	})
}

// concatenate joins the inputs along n.axes[0].
func concatenate(n *node, ins []any, out any) error {
	axis := n.axes[0]
	dims := n.shape.Dimensions
	outer := 1
	for _, d := range dims[:axis] {
		outer *= d
	}
	inner := 1
	for _, d := range dims[axis+1:] {
		inner *= d
	}
	switch o := out.(type) {
	case []float32:
		concatT(o, ins, n, axis, outer, inner)
	case []int32:
		concatT(o, ins, n, axis, outer, inner)
	case []bool:
		concatT(o, ins, n, axis, outer, inner)
	case []bfloat16.BFloat16:
		concatT(o, ins, n, axis, outer, inner)
	case []float16.Float16:
		concatT(o, ins, n, axis, outer, inner)
	default:
		return fmt.Errorf("unsupported buffer %T", out)
	}
	return nil
}

func concatT[T any](out []T, ins []any, n *node, axis, outer, inner int) {
	pos := 0
	for o := range outer {
		for i, in := range ins {
			chunk := n.inputs[i].shape.Dimensions[axis] * inner
			copy(out[pos:pos+chunk], in.([]T)[o*chunk:(o+1)*chunk])
			pos += chunk
		}
	}
}

// iotaFill fills out with the index along n.axes[0].
func iotaFill(n *node, out any) error {
	dims := n.shape.Dimensions
	axis := n.axes[0]
	stride := stridesOf(dims)[axis]
	dim := dims[axis]
	switch o := out.(type) {
	case []float32:
		for i := range o {
			o[i] = float32((i / stride) % dim)
		}
	case []int32:
		for i := range o {
			o[i] = int32((i / stride) % dim)
		}
	default:
		return fmt.Errorf("Iota of %s", n.shape.DType)
	}
	return nil
}

// where selects per element; each operand is a scalar or full-size.
func where(n *node, ins []any, out any) error {
	cond := ins[0].([]bool)
	switch o := out.(type) {
	case []float32:
		whereT(o, cond, ins[1].([]float32), ins[2].([]float32))
	case []int32:
		whereT(o, cond, ins[1].([]int32), ins[2].([]int32))
	case []bool:
		whereT(o, cond, ins[1].([]bool), ins[2].([]bool))
	default:
		return fmt.Errorf("Where of %s", n.shape.DType)
	}
	return nil
}

func whereT[T any](out []T, cond []bool, t, f []T) {
	at := func(s []T, i int) T {
		if len(s) == 1 {
			return s[0]
		}
		return s[i]
	}
	for i := range out {
		c := cond[0]
		if len(cond) > 1 {
			c = cond[i]
		}
		if c {
			out[i] = at(t, i)
		} else {
			out[i] = at(f, i)
		}
	}
}

// unaryOp applies an element-wise function.
func unaryOp(kind backends.OpType, in, out any) error {
	switch x := in.(type) {
	case []float32:
		if kind == backends.OpTypeIsFinite {
			o := out.([]bool)[:len(x)]
			for i, v := range x {
				// Finite: the exponent is not all ones (infinities and NaN).
				o[i] = math.Float32bits(v)&0x7f800000 != 0x7f800000
			}
			return nil
		}
		o := out.([]float32)
		switch kind {
		case backends.OpTypeExp:
			kernels.Exp(o, x)
		case backends.OpTypeRsqrt:
			for i, v := range x {
				o[i] = float32(1 / math.Sqrt(float64(v)))
			}
		case backends.OpTypeCos:
			for i, v := range x {
				o[i] = float32(math.Cos(float64(v)))
			}
		case backends.OpTypeSin:
			for i, v := range x {
				o[i] = float32(math.Sin(float64(v)))
			}
		case backends.OpTypeTanh:
			for i, v := range x {
				o[i] = float32(math.Tanh(float64(v)))
			}
		case backends.OpTypeLogistic:
			kernels.Logistic(o, x)
		default:
			return fmt.Errorf("%s of float32", kind)
		}
	case []bool:
		if kind != backends.OpTypeLogicalNot {
			return fmt.Errorf("%s of bool", kind)
		}
		o := out.([]bool)
		for i, v := range x {
			o[i] = !v
		}
	default:
		return fmt.Errorf("%s of %T", kind, in)
	}
	return nil
}
