package cpubackend

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

// dotGeneral canonicalises a DotGeneral to batch × M × K times batch × N × K
// (or batch × K × N) and calls the matrix kernels. An operand already laid
// out that way is used in place, so a weight matrix [P, out, in] or a KV
// cache [B, kvH, S, hd] is never copied; 16-bit right operands in the
// N × K layout go to the kernels as they are, widened in the product.
func (b *Backend) dotGeneral(n *node, ins []any, out any) error {
	d := n.dot
	l, r := n.inputs[0].shape, n.inputs[1].shape
	lFree := freeAxes(l.Rank(), d.lhsContract, d.lhsBatch)
	rFree := freeAxes(r.Rank(), d.rhsContract, d.rhsBatch)
	prod := func(dims []int, axes []int) int {
		p := 1
		for _, a := range axes {
			p *= dims[a]
		}
		return p
	}
	batch := prod(l.Dimensions, d.lhsBatch)
	M := prod(l.Dimensions, lFree)
	K := prod(l.Dimensions, d.lhsContract)
	N := prod(r.Dimensions, rFree)
	var temps []tempBuf
	defer func() {
		for _, t := range temps {
			b.release(t.dtype, t.flat)
		}
	}()
	temp := func(dtype dtypes.DType, size int) any {
		f := b.alloc(dtype, size)
		temps = append(temps, tempBuf{dtype, f})
		return f
	}

	// Left operand as float32 [batch, M, K].
	lhs := ins[0]
	if perm := concat(d.lhsBatch, lFree, d.lhsContract); !inOrder(l.Dimensions, perm) {
		t := temp(l.DType, l.Size())
		if err := transposeTo(t, lhs, l.Dimensions, perm); err != nil {
			return err
		}
		lhs = t
	}
	a, ok := lhs.([]float32)
	if !ok {
		a = temp(dtypes.Float32, l.Size()).([]float32)
		toFloat32(a, lhs)
	}

	res, ok := out.([]float32)
	if !ok {
		res = temp(dtypes.Float32, batch*M*N).([]float32)
	}
	rhs := ins[1]
	nk := inOrder(r.Dimensions, concat(d.rhsBatch, rFree, d.rhsContract))
	kn := inOrder(r.Dimensions, concat(d.rhsBatch, d.rhsContract, rFree))
	// A 16-bit right operand in either layout (weights, a 16-bit KV cache) is
	// widened inside the kernels, with the bits of the float32 product of the
	// widened values.
	type product16 func(p *kernels.Pool, out, a []float32, b []uint16, batch, m, n, k int)
	var w16 []uint16
	var transB16, nn16 product16
	switch w := rhs.(type) {
	case []bfloat16.BFloat16:
		w16, transB16, nn16 = bits16(w), kernels.BatchMatMulTransBBF16, kernels.BatchMatMulBF16
	case []float16.Float16:
		w16, transB16, nn16 = bits16(w), kernels.BatchMatMulTransBF16, kernels.BatchMatMulF16
	}
	if w16 != nil && (nk || kn) {
		if nk {
			transB16(b.pool, res, a, w16, batch, M, N, K)
		} else {
			nn16(b.pool, res, a, w16, batch, M, N, K)
		}
		return finishDot(out, res)
	}
	transB := true
	if !nk {
		if kn {
			transB = false
		} else {
			t := temp(r.DType, r.Size())
			if err := transposeTo(t, rhs, r.Dimensions, concat(d.rhsBatch, rFree, d.rhsContract)); err != nil {
				return err
			}
			rhs = t
		}
	}
	bm, ok := rhs.([]float32)
	if !ok {
		bm = temp(dtypes.Float32, r.Size()).([]float32)
		toFloat32(bm, rhs)
	}
	if transB {
		kernels.BatchMatMulTransB(b.pool, res, a, bm, batch, M, N, K)
	} else {
		kernels.BatchMatMul(b.pool, res, a, bm, batch, M, N, K)
	}
	return finishDot(out, res)
}

// tempBuf is a scratch buffer returned to the pool after the product.
type tempBuf struct {
	dtype dtypes.DType
	flat  any
}

// finishDot narrows the float32 result into a 16-bit output.
func finishDot(out any, res []float32) error {
	if _, ok := out.([]float32); ok {
		return nil
	}
	switch out.(type) {
	case []bfloat16.BFloat16, []float16.Float16:
		convertFlat(out, res)
		return nil
	}
	return fmt.Errorf("DotGeneral output %T", out)
}

// transposeTo writes src (of dims) permuted by perm into dst.
func transposeTo(dst, src any, dims, perm []int) error {
	st := stridesOf(dims)
	outDims := make([]int, len(perm))
	s := make([]int, len(perm))
	for i, p := range perm {
		outDims[i], s[i] = dims[p], st[p]
	}
	return move(dst, src, outDims, s, 0)
}

func concat(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// inOrder reports whether an operand of dims, its axes read in the order
// perm, is already laid out that way: the axes of size above 1 come in
// increasing order (axes of size 1 may move freely), so it needs no copy.
func inOrder(dims, perm []int) bool {
	last := -1
	for _, a := range perm {
		if dims[a] == 1 {
			continue
		}
		if a <= last {
			return false
		}
		last = a
	}
	return true
}
