package kernels

import (
	"math"
	"unsafe"

	"github.com/x448/float16"
)

// genericSet is the portable implementation, used on every platform without SIMD kernels and on
// amd64 after SetGeneric(true).
var genericSet = &kernelSet{
	name:  "generic",
	vw:    1,
	rows:  4,
	f32:   tiles[float32]{one: genericOne(widenF32), row: genericRow(widenF32), block: genericBlock(widenF32)},
	bf16:  tiles[uint16]{one: genericOne(widenBF16), row: genericRow(widenBF16), block: genericBlock(widenBF16)},
	f16:   tiles[uint16]{one: genericOne(widenF16), row: genericRow(widenF16), block: genericBlock(widenF16)},
	cols4: func(out, a, b *float32, ldb, k int) { genericCols(out, a, b, ldb, k, 4) },
	cols1: func(out, a, b *float32, ldb, k int) { genericCols(out, a, b, ldb, k, 1) },
	read:  genericRead,
}

func widenF32(v float32) float32 { return v }

// widenBF16 widens bfloat16 bits to float32 exactly (bf16 is the top half of a float32).
func widenBF16(v uint16) float32 { return math.Float32frombits(uint32(v) << 16) }

// widenF16 widens IEEE 754 half-precision bits to float32 exactly.
func widenF16(v uint16) float32 { return float16.Frombits(v).Float32() }

// dotWiden is the portable dot product of x and widened w, with eight independent accumulators.
func dotWiden[W float32 | uint16](x []float32, w []W, widen func(W) float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	t := 0
	for ; t+8 <= len(x); t += 8 {
		s0 += x[t] * widen(w[t])
		s1 += x[t+1] * widen(w[t+1])
		s2 += x[t+2] * widen(w[t+2])
		s3 += x[t+3] * widen(w[t+3])
		s4 += x[t+4] * widen(w[t+4])
		s5 += x[t+5] * widen(w[t+5])
		s6 += x[t+6] * widen(w[t+6])
		s7 += x[t+7] * widen(w[t+7])
	}
	for ; t < len(x); t++ {
		s0 += x[t] * widen(w[t])
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

func genericOne[W float32 | uint16](widen func(W) float32) tile[W] {
	return func(x *float32, _ int, w *W, _ int, k int, out *float32, _ int) {
		*out = dotWiden(unsafe.Slice(x, k), unsafe.Slice(w, k), widen)
	}
}

// genericRow computes one x row against four w rows, reading each x element once.
func genericRow[W float32 | uint16](widen func(W) float32) tile[W] {
	return func(x *float32, _ int, w *W, ldw int, k int, out *float32, _ int) {
		xs := unsafe.Slice(x, k)
		ws := unsafe.Slice(w, 3*ldw+k)
		w0, w1, w2, w3 := ws[:k], ws[ldw:ldw+k], ws[2*ldw:2*ldw+k], ws[3*ldw:3*ldw+k]
		var s0, s1, s2, s3 float32
		for t, xv := range xs {
			s0 += xv * widen(w0[t])
			s1 += xv * widen(w1[t])
			s2 += xv * widen(w2[t])
			s3 += xv * widen(w3[t])
		}
		o := unsafe.Slice(out, 4)
		o[0], o[1], o[2], o[3] = s0, s1, s2, s3
	}
}

// genericBlock computes four x rows against four w rows as four genericRow calls.
func genericBlock[W float32 | uint16](widen func(W) float32) tile[W] {
	row := genericRow(widen)
	return func(x *float32, ldx int, w *W, ldw int, k int, out *float32, ldo int) {
		xs := unsafe.Slice(x, 3*ldx+k)
		os := unsafe.Slice(out, 3*ldo+4)
		for i := range 4 {
			row(&xs[i*ldx], ldx, w, ldw, k, &os[i*ldo], ldo)
		}
	}
}

// genericCols computes out[j] = sum_t a[t]*b[t*ldb+j] for j < cols.
func genericCols(out, a, b *float32, ldb, k, cols int) {
	o := unsafe.Slice(out, cols)
	clear(o)
	if k == 0 {
		return
	}
	as := unsafe.Slice(a, k)
	bs := unsafe.Slice(b, (k-1)*ldb+cols)
	for t, av := range as {
		row := bs[t*ldb : t*ldb+cols]
		for j, bv := range row {
			o[j] += av * bv
		}
	}
}

// genericRead xors the 64-bit words of p[:n&^255] with four independent streams.
func genericRead(p *byte, n int) uint64 {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(p)), (n&^255)/8)
	var a, b, c, d uint64
	for i := 0; i+4 <= len(words); i += 4 {
		a ^= words[i]
		b ^= words[i+1]
		c ^= words[i+2]
		d ^= words[i+3]
	}
	return a ^ b ^ c ^ d
}
