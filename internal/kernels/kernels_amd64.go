//go:build amd64

package kernels

import "golang.org/x/sys/cpu"

//go:generate go run gen_amd64.go

// The assembly kernels of kernels_amd64.s (see dispatch.go for their contracts).

func tileF32_1x1AVX2(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileF32_1x4AVX2(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileF32_3x4AVX2(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileBF16_1x1AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileBF16_1x4AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileBF16_3x4AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_1x1AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_1x4AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_3x4AVX2(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func gemvF32AVX2(x *float32, w *float32, ldw, k int, out *float32, rows int)
func gemvBF16AVX2(x *float32, w *uint16, ldw, k int, out *float32, rows int)
func gemvF16AVX2(x *float32, w *uint16, ldw, k int, out *float32, rows int)
func gemvF32AVX512(x *float32, w *float32, ldw, k int, out *float32, rows int)
func gemvBF16AVX512(x *float32, w *uint16, ldw, k int, out *float32, rows int)
func gemvF16AVX512(x *float32, w *uint16, ldw, k int, out *float32, rows int)
func cols4AVX2(out *float32, a *float32, b *float32, ldb int, k int)
func cols1AVX2(out *float32, a *float32, b *float32, ldb int, k int)
func readAVX2(p *byte, n int) uint64
func cols4BF16AVX2(out *float32, a *float32, b *uint16, ldb int, k int)
func cols1BF16AVX2(out *float32, a *float32, b *uint16, ldb int, k int)
func cols4F16AVX2(out *float32, a *float32, b *uint16, ldb int, k int)
func cols1F16AVX2(out *float32, a *float32, b *uint16, ldb int, k int)

func tileF32_1x1AVX512(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileF32_1x4AVX512(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileF32_4x4AVX512(x *float32, ldx int, w *float32, ldw int, k int, out *float32, ldo int)
func tileBF16_1x1AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileBF16_1x4AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileBF16_4x4AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_1x1AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_1x4AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func tileF16_4x4AVX512(x *float32, ldx int, w *uint16, ldw int, k int, out *float32, ldo int)
func cols4AVX512(out *float32, a *float32, b *float32, ldb int, k int)
func cols1AVX512(out *float32, a *float32, b *float32, ldb int, k int)
func readAVX512(p *byte, n int) uint64
func cols4BF16AVX512(out *float32, a *float32, b *uint16, ldb int, k int)
func cols1BF16AVX512(out *float32, a *float32, b *uint16, ldb int, k int)
func cols4F16AVX512(out *float32, a *float32, b *uint16, ldb int, k int)
func cols1F16AVX512(out *float32, a *float32, b *uint16, ldb int, k int)

var avx2Set = &kernelSet{
	name:     "avx2",
	vw:       8,
	rows:     3,
	f32:      tiles[float32]{one: tileF32_1x1AVX2, row: tileF32_1x4AVX2, block: tileF32_3x4AVX2, gemv: gemvF32AVX2},
	bf16:     tiles[uint16]{one: tileBF16_1x1AVX2, row: tileBF16_1x4AVX2, block: tileBF16_3x4AVX2, gemv: gemvBF16AVX2},
	f16:      tiles[uint16]{one: tileF16_1x1AVX2, row: tileF16_1x4AVX2, block: tileF16_3x4AVX2, gemv: gemvF16AVX2},
	colsF32:  cols[float32]{four: cols4AVX2, one: cols1AVX2},
	colsBF16: cols[uint16]{four: cols4BF16AVX2, one: cols1BF16AVX2},
	colsF16:  cols[uint16]{four: cols4F16AVX2, one: cols1F16AVX2},
	read:     readAVX2,
	// The element-wise kernels are AVX2 on both levels.
	exp:      vectorEW(expAVX2, exp32),
	logistic: vectorEW(logisticAVX2, logistic32),
}

var avx512Set = &kernelSet{
	name:     "avx512",
	vw:       16,
	rows:     4,
	f32:      tiles[float32]{one: tileF32_1x1AVX512, row: tileF32_1x4AVX512, block: tileF32_4x4AVX512, gemv: gemvF32AVX512},
	bf16:     tiles[uint16]{one: tileBF16_1x1AVX512, row: tileBF16_1x4AVX512, block: tileBF16_4x4AVX512, gemv: gemvBF16AVX512},
	f16:      tiles[uint16]{one: tileF16_1x1AVX512, row: tileF16_1x4AVX512, block: tileF16_4x4AVX512, gemv: gemvF16AVX512},
	colsF32:  cols[float32]{four: cols4AVX512, one: cols1AVX512},
	colsBF16: cols[uint16]{four: cols4BF16AVX512, one: cols1BF16AVX512},
	colsF16:  cols[uint16]{four: cols4F16AVX512, one: cols1F16AVX512},
	read:     readAVX512,
	exp:      vectorEW(expAVX2, exp32),
	logistic: vectorEW(logisticAVX2, logistic32),
}

// hasAVX2 reports whether the AVX2 kernels can run: AVX2, FMA and F16C (OS support for the
// vector state is part of x/sys/cpu's AVX2 check).
func hasAVX2() bool { return cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C }

// hasAVX512 reports whether the AVX-512 kernels can run (F for the arithmetic, BW for the 16-bit
// widening, VL for the 256-bit EVEX reductions).
func hasAVX512() bool {
	return hasAVX2() && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL
}

// detect picks the widest kernel set this CPU runs.
func detect() *kernelSet {
	switch {
	case hasAVX512():
		return avx512Set
	case hasAVX2():
		return avx2Set
	default:
		return genericSet
	}
}

func expAVX2(dst, src *float32, n int)
func logisticAVX2(dst, src *float32, n int)

// vectorEW runs an element-wise kernel over the multiple of 8 values at the front and the
// portable function over the rest.
func vectorEW(kernel func(dst, src *float32, n int), scalar func(float32) float32) func(dst, src []float32) {
	return func(dst, src []float32) {
		n := len(dst) &^ 7
		if n > 0 {
			kernel(&dst[0], &src[0], n)
		}
		for i := n; i < len(dst); i++ {
			dst[i] = scalar(src[i])
		}
	}
}
