package cpubackend

import (
	"fmt"
	"math"
	"slices"

	"github.com/gomlx/gomlx/backends"
)

// binaryOp applies an element-wise binary operation with broadcasting of
// size-1 axes and scalars.
func binaryOp(n *node, ins []any, out any) error {
	size := n.shape.Size()
	lsize, rsize := n.inputs[0].shape.Size(), n.inputs[1].shape.Size()
	if (lsize == size || lsize == 1) && (rsize == size || rsize == 1) {
		// Each operand is laid out as the output (same dimensions: its
		// dimensions are the output's or 1, and it has as many values) or
		// is one value: a single run, without walking the axes.
		ld, rd := 1, 1
		if lsize != size {
			ld = 0
		}
		if rsize != size {
			rd = 0
		}
		if x, ok := ins[0].([]float32); ok {
			if res, ok := out.([]float32); ok && size > 0 {
				if ok, err := floatRun(n.kind, res, x, ins[1].([]float32), ld, rd); ok {
					return err
				}
			}
		}
		return binaryRun(n.kind, out, ins[0], ins[1], 0, 0, 0, size, ld, rd)
	}
	dims := n.shape.Dimensions
	r := len(dims)
	ls := broadcastStrides(n.inputs[0].shape.Dimensions, r)
	rs := broadcastStrides(n.inputs[1].shape.Dimensions, r)
	strides := [][]int{stridesOf(dims), ls, rs}
	ld, rd := 0, 0
	if r > 0 {
		ld, rd = ls[r-1], rs[r-1]
	}
	var err error
	x, xok := ins[0].([]float32)
	y, yok := ins[1].([]float32)
	res, rok := out.([]float32)
	walk(dims, strides, []int{0, 0, 0}, func(offs []int, cnt int) {
		if err != nil {
			return
		}
		if xok && yok && rok && ld <= 1 && rd <= 1 {
			// A run of the last axis is a whole operand or one value each:
			// the plain loops of floatRun (same results).
			var ok bool
			if ok, err = floatRun(n.kind, res[offs[0]:offs[0]+cnt], x[offs[1]:], y[offs[2]:], ld, rd); ok || err != nil {
				return
			}
		}
		err = binaryRun(n.kind, out, ins[0], ins[1], offs[0], offs[1], offs[2], cnt, ld, rd)
	})
	return err
}

// binaryRun computes cnt results at out[o:], reading lhs from l with step
// ld and rhs from r with step rd.
func binaryRun(kind backends.OpType, out, lhs, rhs any, o, l, r, cnt, ld, rd int) error {
	switch x := lhs.(type) {
	case []float32:
		y := rhs.([]float32)
		if res, ok := out.([]bool); ok {
			return compareRun(kind, res[o:o+cnt], x, y, l, r, ld, rd)
		}
		res := out.([]float32)[o : o+cnt]
		switch kind {
		case backends.OpTypeAdd:
			for i := range res {
				res[i] = x[l] + y[r]
				l, r = l+ld, r+rd
			}
		case backends.OpTypeSub:
			for i := range res {
				res[i] = x[l] - y[r]
				l, r = l+ld, r+rd
			}
		case backends.OpTypeMul:
			for i := range res {
				res[i] = x[l] * y[r]
				l, r = l+ld, r+rd
			}
		case backends.OpTypeDiv:
			for i := range res {
				res[i] = x[l] / y[r]
				l, r = l+ld, r+rd
			}
		case backends.OpTypeRem:
			for i := range res {
				res[i] = float32(math.Mod(float64(x[l]), float64(y[r])))
				l, r = l+ld, r+rd
			}
		case backends.OpTypeMax:
			for i := range res {
				res[i] = maxF(x[l], y[r])
				l, r = l+ld, r+rd
			}
		case backends.OpTypeMin:
			for i := range res {
				res[i] = minF(x[l], y[r])
				l, r = l+ld, r+rd
			}
		default:
			return fmt.Errorf("%s of float32", kind)
		}
	case []int32:
		y := rhs.([]int32)
		if res, ok := out.([]bool); ok {
			return compareRun(kind, res[o:o+cnt], x, y, l, r, ld, rd)
		}
		res := out.([]int32)[o : o+cnt]
		for i := range res {
			a, b := x[l], y[r]
			l, r = l+ld, r+rd
			switch kind {
			case backends.OpTypeAdd:
				res[i] = a + b
			case backends.OpTypeSub:
				res[i] = a - b
			case backends.OpTypeMul:
				res[i] = a * b
			case backends.OpTypeDiv, backends.OpTypeRem:
				if b == 0 {
					return fmt.Errorf("%s: integer division by zero", kind)
				}
				if kind == backends.OpTypeDiv {
					res[i] = a / b
				} else {
					res[i] = a % b
				}
			case backends.OpTypeMax:
				res[i] = max(a, b)
			case backends.OpTypeMin:
				res[i] = min(a, b)
			default:
				return fmt.Errorf("%s of int32", kind)
			}
		}
	case []bool:
		y := rhs.([]bool)
		res := out.([]bool)[o : o+cnt]
		for i := range res {
			a, b := x[l], y[r]
			l, r = l+ld, r+rd
			switch kind {
			case backends.OpTypeLogicalAnd:
				res[i] = a && b
			case backends.OpTypeLogicalOr:
				res[i] = a || b
			default:
				return fmt.Errorf("%s of bool", kind)
			}
		}
	default:
		return fmt.Errorf("%s of %T", kind, lhs)
	}
	return nil
}

// floatRun computes a float32 arithmetic operation over whole operands
// (step 1, or 0 for a single value) with loops the compiler keeps free of
// bounds checks; the results are those of binaryRun. It reports false for
// an operation it does not handle.
func floatRun(kind backends.OpType, res, x, y []float32, ld, rd int) (bool, error) {
	n := len(res)
	switch {
	case ld == 1 && rd == 1:
		x, y = x[:n], y[:n]
		switch kind {
		case backends.OpTypeAdd:
			for i := range res {
				res[i] = x[i] + y[i]
			}
		case backends.OpTypeSub:
			for i := range res {
				res[i] = x[i] - y[i]
			}
		case backends.OpTypeMul:
			for i := range res {
				res[i] = x[i] * y[i]
			}
		case backends.OpTypeDiv:
			for i := range res {
				res[i] = x[i] / y[i]
			}
		case backends.OpTypeMax:
			for i := range res {
				res[i] = maxF(x[i], y[i])
			}
		case backends.OpTypeMin:
			for i := range res {
				res[i] = minF(x[i], y[i])
			}
		default:
			return false, nil
		}
	case ld == 1 && rd == 0:
		x, b := x[:n], y[0]
		switch kind {
		case backends.OpTypeAdd:
			for i := range res {
				res[i] = x[i] + b
			}
		case backends.OpTypeSub:
			for i := range res {
				res[i] = x[i] - b
			}
		case backends.OpTypeMul:
			for i := range res {
				res[i] = x[i] * b
			}
		case backends.OpTypeDiv:
			for i := range res {
				res[i] = x[i] / b
			}
		case backends.OpTypeMax:
			for i := range res {
				res[i] = maxF(x[i], b)
			}
		case backends.OpTypeMin:
			for i := range res {
				res[i] = minF(x[i], b)
			}
		default:
			return false, nil
		}
	case ld == 0 && rd == 1:
		a, y := x[0], y[:n]
		switch kind {
		case backends.OpTypeAdd:
			for i := range res {
				res[i] = a + y[i]
			}
		case backends.OpTypeSub:
			for i := range res {
				res[i] = a - y[i]
			}
		case backends.OpTypeMul:
			for i := range res {
				res[i] = a * y[i]
			}
		case backends.OpTypeDiv:
			for i := range res {
				res[i] = a / y[i]
			}
		default:
			return false, nil
		}
	default:
		return false, nil
	}
	return true, nil
}

// maxF and minF propagate NaN, as XLA does.
func maxF(a, b float32) float32 {
	if a != a || a > b {
		return a
	}
	return b
}

func minF(a, b float32) float32 {
	if a != a || a < b {
		return a
	}
	return b
}

func compareRun[T int32 | float32](kind backends.OpType, res []bool, x, y []T, l, r, ld, rd int) error {
	for i := range res {
		a, b := x[l], y[r]
		l, r = l+ld, r+rd
		switch kind {
		case backends.OpTypeEqual:
			res[i] = a == b
		case backends.OpTypeLessThan:
			res[i] = a < b
		case backends.OpTypeLessOrEqual:
			res[i] = a <= b
		case backends.OpTypeGreaterThan:
			res[i] = a > b
		case backends.OpTypeGreaterOrEqual:
			res[i] = a >= b
		default:
			return fmt.Errorf("%s is not a comparison", kind)
		}
	}
	return nil
}

// reduce folds the input over n.axes with sum or max.
func reduce(n *node, in, out any) error {
	inDims := n.inputs[0].shape.Dimensions
	if inner := trailingReduced(inDims, n.axes); inner > 0 {
		// The reduced axes are the last ones: each output value folds one
		// contiguous run, in the order the general walk below takes.
		switch o := out.(type) {
		case []float32:
			reduceRuns(n.kind, o, in.([]float32), inner, float32(math.Inf(-1)))
			return nil
		case []int32:
			reduceRuns(n.kind, o, in.([]int32), inner, math.MinInt32)
			return nil
		}
	}
	// The output read in the input's index space: stride 0 on reduced axes.
	os := make([]int, len(inDims))
	ost := stridesOf(n.shape.Dimensions)
	j := 0
	for a := range inDims {
		reduced := false
		for _, r := range n.axes {
			reduced = reduced || r == a
		}
		if !reduced {
			os[a] = ost[j]
			j++
		}
	}
	strides := [][]int{stridesOf(inDims), os}
	last := 0
	if len(os) > 0 {
		last = os[len(os)-1]
	}
	switch o := out.(type) {
	case []float32:
		return reduceT(n.kind, o, in.([]float32), inDims, strides, last, float32(math.Inf(-1)))
	case []int32:
		return reduceT(n.kind, o, in.([]int32), inDims, strides, last, math.MinInt32)
	}
	return fmt.Errorf("%s of %s", n.kind, n.shape.DType)
}

func reduceT[T int32 | float32](kind backends.OpType, out, in []T, dims []int, strides [][]int, last int, lowest T) error {
	var init T
	if kind == backends.OpTypeReduceMax {
		init = lowest
	}
	for i := range out {
		out[i] = init
	}
	comb := func(a, b T) T {
		if kind == backends.OpTypeReduceMax {
			if b > a || b != b {
				return b
			}
			return a
		}
		return a + b
	}
	walk(dims, strides, []int{0, 0}, func(offs []int, cnt int) {
		x := in[offs[0] : offs[0]+cnt]
		if last == 0 {
			acc := out[offs[1]]
			if kind == backends.OpTypeReduceSum {
				for _, v := range x {
					acc += v
				}
			} else {
				for _, v := range x {
					acc = comb(acc, v)
				}
			}
			out[offs[1]] = acc
			return
		}
		o := offs[1]
		for _, v := range x {
			out[o] = comb(out[o], v)
			o += last
		}
	})
	return nil
}

// trailingReduced returns the number of input values each output value
// folds when axes are exactly the last len(axes) axes of dims, else 0.
func trailingReduced(dims, axes []int) int {
	r := len(dims)
	inner := 1
	for a := r - len(axes); a < r; a++ {
		if a < 0 || !slices.Contains(axes, a) {
			return 0
		}
		inner *= dims[a]
	}
	return inner
}

// reduceRuns folds each run of inner values of in into one value of out
// (sum, or max from lowest propagating NaN), in order.
func reduceRuns[T int32 | float32](kind backends.OpType, out, in []T, inner int, lowest T) {
	for i := range out {
		x := in[i*inner : (i+1)*inner]
		var acc T
		if kind == backends.OpTypeReduceSum {
			for _, v := range x {
				acc += v
			}
		} else {
			acc = lowest
			for _, v := range x {
				if v > acc || v != v {
					acc = v
				}
			}
		}
		out[i] = acc
	}
}
