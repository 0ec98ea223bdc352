package cpubackend

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"
)

// gather is XLA's Gather: for every index vector of the start indices it
// copies a slice of sliceSizes from the operand (starts clamped so the
// slice fits) into the output's offset axes.
func gather(n *node, ins []any, out any) error {
	g := n.gather
	opDims := n.inputs[0].shape.Dimensions
	idxDims := n.inputs[1].shape.Dimensions
	indices := ins[1].([]int32)
	outDims := n.shape.Dimensions
	outSt := stridesOf(outDims)
	opSt := stridesOf(opDims)

	// Batch axes of the output: those not in offsetOutputAxes, in order;
	// they follow the index axes other than indexVectorAxis.
	var batchOut []int
	for a := range outDims {
		if !slices.Contains(g.offsetOutputAxes, a) {
			batchOut = append(batchOut, a)
		}
	}
	var batchIdx []int
	for a := range idxDims {
		if a != g.indexVectorAxis {
			batchIdx = append(batchIdx, a)
		}
	}
	idxSt := stridesOf(idxDims)
	vecStride := 0
	if g.indexVectorAxis < len(idxDims) {
		vecStride = idxSt[g.indexVectorAxis]
	}
	// The slice block: operand axes not collapsed, mapped to offset axes.
	var blockDims, blockOp, blockOut []int
	j := 0
	for a := range opDims {
		if slices.Contains(g.collapsedSliceAxes, a) {
			continue
		}
		blockDims = append(blockDims, g.sliceSizes[a])
		blockOp = append(blockOp, opSt[a])
		blockOut = append(blockOut, outSt[g.offsetOutputAxes[j]])
		j++
	}
	batchDims := make([]int, len(batchIdx))
	for i, a := range batchIdx {
		batchDims[i] = idxDims[a]
	}
	bIdx := make([]int, len(batchDims))
	total := 1
	for _, d := range batchDims {
		total *= d
	}
	var err error
	for range total {
		idxOff, outOff := 0, 0
		for i, a := range batchIdx {
			idxOff += bIdx[i] * idxSt[a]
			outOff += bIdx[i] * outSt[batchOut[i]]
		}
		opOff := 0
		for k, a := range g.startIndexMap {
			s := int(indices[idxOff+k*vecStride])
			s = max(0, min(s, opDims[a]-g.sliceSizes[a]))
			opOff += s * opSt[a]
		}
		if e := moveBlock(out, ins[0], blockDims, blockOut, blockOp, outOff, opOff); e != nil && err == nil {
			err = e
		}
		for a := len(bIdx) - 1; a >= 0; a-- {
			bIdx[a]++
			if bIdx[a] < batchDims[a] {
				break
			}
			bIdx[a] = 0
		}
	}
	return err
}

// moveBlock copies a block of dims from src (strides srcSt, at srcOff) to
// dst (strides dstSt, at dstOff).
func moveBlock(dst, src any, dims, dstSt, srcSt []int, dstOff, srcOff int) error {
	switch d := dst.(type) {
	case []float32:
		blockT(d, src.([]float32), dims, dstSt, srcSt, dstOff, srcOff)
	case []int32:
		blockT(d, src.([]int32), dims, dstSt, srcSt, dstOff, srcOff)
	case []bool:
		blockT(d, src.([]bool), dims, dstSt, srcSt, dstOff, srcOff)
	default:
		return moveBlock16(dst, src, dims, dstSt, srcSt, dstOff, srcOff)
	}
	return nil
}

func blockT[T any](dst, src []T, dims, dstSt, srcSt []int, dstOff, srcOff int) {
	r := len(dims)
	ds, ss := 1, 1
	if r > 0 {
		ds, ss = dstSt[r-1], srcSt[r-1]
	}
	walk(dims, [][]int{dstSt, srcSt}, []int{dstOff, srcOff}, func(offs []int, n int) {
		o, s := offs[0], offs[1]
		if ds == 1 && ss == 1 {
			copy(dst[o:o+n], src[s:s+n])
			return
		}
		for range n {
			dst[o] = src[s]
			o, s = o+ds, s+ss
		}
	})
}

// dynamicUpdateSlice writes the update into out (the operand, or a copy of
// it when out is a fresh buffer) at the clamped start indices.
func dynamicUpdateSlice(n *node, ins []any, out any) error {
	opDims := n.shape.Dimensions
	upDims := n.inputs[1].shape.Dimensions
	if flatLen(out) > 0 && !sameStorage(out, ins[0]) {
		if err := copyFlat(out, ins[0]); err != nil {
			return err
		}
	}
	opSt := stridesOf(opDims)
	off := 0
	for a := range opDims {
		s := int(ins[2+a].([]int32)[0])
		s = max(0, min(s, opDims[a]-upDims[a]))
		off += s * opSt[a]
	}
	if err := moveBlock(out, ins[1], upDims, opSt, stridesOf(upDims), off, 0); err != nil {
		return fmt.Errorf("DynamicUpdateSlice: %w", err)
	}
	return nil
}

func moveBlock16(dst, src any, dims, dstSt, srcSt []int, dstOff, srcOff int) error {
	switch d := dst.(type) {
	case []bfloat16.BFloat16:
		blockT(d, src.([]bfloat16.BFloat16), dims, dstSt, srcSt, dstOff, srcOff)
	case []float16.Float16:
		blockT(d, src.([]float16.Float16), dims, dstSt, srcSt, dstOff, srcOff)
	default:
		return fmt.Errorf("unsupported buffer %T", dst)
	}
	return nil
}
