package kernels

import (
	"math"
	"sync"
	"unsafe"

	"github.com/x448/float16"
)

// genericSet is the portable implementation, used on every platform without SIMD kernels and on
// amd64 after SetGeneric(true).
var genericSet = &kernelSet{
	name: "generic",
	vw:   1,
	rows: 4,
	f32: tiles[float32]{
		one: func(x *float32, _ int, w *float32, _ int, k int, out *float32, _ int) {
			*out = dot8(unsafe.Slice(x, k), unsafe.Slice(w, k))
		},
		row: genericRowF32,
		block: func(x *float32, ldx int, w *float32, ldw, k int, out *float32, ldo int) {
			genericBlock(genericRowF32, x, ldx, w, ldw, k, out, ldo)
		},
	},
	bf16:     tiles16(widenBF16Slice),
	f16:      tiles16(widenF16Slice),
	colsF32:  genericColsOf(widenF32),
	colsBF16: genericColsOf(widenBF16),
	colsF16:  genericColsOf(widenF16),
	read:     genericRead,
	exp:      genericExp,
	logistic: genericLogistic,
}

func widenF32(v float32) float32 { return v }

// widenBF16 widens bfloat16 bits to float32 exactly (bf16 is the top half of a float32).
func widenBF16(v uint16) float32 { return math.Float32frombits(uint32(v) << 16) }

// f16Table maps every IEEE 754 half-precision bit pattern to its float32 value (256 KiB, built
// on first use from the float16 package).
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = float16.Frombits(uint16(i)).Float32()
	}
	return &t
})

// widenF16 widens IEEE 754 half-precision bits to float32 exactly.
func widenF16(v uint16) float32 { return f16Table()[v] }

func widenBF16Slice(dst []float32, src []uint16) {
	for i, v := range src[:len(dst)] {
		dst[i] = math.Float32frombits(uint32(v) << 16)
	}
}

func widenF16Slice(dst []float32, src []uint16) {
	t := f16Table()
	for i, v := range src[:len(dst)] {
		dst[i] = t[v]
	}
}

// dotWiden is the dot product of x and widened w (the vector kernels' tails, under 16 elements).
func dotWiden[W float32 | uint16](x []float32, w []W, widen func(W) float32) float32 {
	var s float32
	for t, xv := range x {
		s += xv * widen(w[t])
	}
	return s
}

// dot8 is the portable dot product, with eight independent accumulators.
func dot8(x, w []float32) float32 {
	w = w[:len(x)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	t := 0
	for ; t+8 <= len(x); t += 8 {
		s0 += x[t] * w[t]
		s1 += x[t+1] * w[t+1]
		s2 += x[t+2] * w[t+2]
		s3 += x[t+3] * w[t+3]
		s4 += x[t+4] * w[t+4]
		s5 += x[t+5] * w[t+5]
		s6 += x[t+6] * w[t+6]
		s7 += x[t+7] * w[t+7]
	}
	for ; t < len(x); t++ {
		s0 += x[t] * w[t]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// dot4 returns the dot products of x with four rows, reading each element of x once.
func dot4(x, w0, w1, w2, w3 []float32) (s0, s1, s2, s3 float32) {
	n := len(x)
	w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
	for t, xv := range x {
		s0 += xv * w0[t]
		s1 += xv * w1[t]
		s2 += xv * w2[t]
		s3 += xv * w3[t]
	}
	return s0, s1, s2, s3
}

// genericRowF32 computes one x row against four w rows.
func genericRowF32(x *float32, _ int, w *float32, ldw, k int, out *float32, _ int) {
	ws := unsafe.Slice(w, 3*ldw+k)
	o := unsafe.Slice(out, 4)
	o[0], o[1], o[2], o[3] = dot4(unsafe.Slice(x, k), ws[:k], ws[ldw:ldw+k], ws[2*ldw:2*ldw+k], ws[3*ldw:3*ldw+k])
}

// genericBlock computes four x rows against four w rows as four row tiles.
func genericBlock[W float32 | uint16](row tile[W], x *float32, ldx int, w *W, ldw, k int, out *float32, ldo int) {
	xs := unsafe.Slice(x, 3*ldx+k)
	os := unsafe.Slice(out, 3*ldo+4)
	for i := range 4 {
		row(&xs[i*ldx], ldx, w, ldw, k, &os[i*ldo], ldo)
	}
}

// chunk16 is how many 16-bit weights per row the portable kernels widen at a time (on the stack).
const chunk16 = 256

// tiles16 builds the portable kernels for 16-bit weights: each chunk of the weight rows is widened
// once into a float32 buffer and then used like float32 weights.
func tiles16(widen func(dst []float32, src []uint16)) tiles[uint16] {
	one := func(x *float32, _ int, w *uint16, _ int, k int, out *float32, _ int) {
		xs, ws := unsafe.Slice(x, k), unsafe.Slice(w, k)
		var buf [chunk16]float32
		var s float32
		for c := 0; c < k; c += chunk16 {
			e := min(k, c+chunk16)
			widen(buf[:e-c], ws[c:e])
			s += dot8(xs[c:e], buf[:e-c])
		}
		*out = s
	}
	// rows computes rows x rows against four w rows, widening each chunk of w once.
	rows := func(rows int, x *float32, ldx int, w *uint16, ldw, k int, out *float32, ldo int) {
		xs := unsafe.Slice(x, (rows-1)*ldx+k)
		ws := unsafe.Slice(w, 3*ldw+k)
		os := unsafe.Slice(out, (rows-1)*ldo+4)
		var buf [4][chunk16]float32
		var acc [4][4]float32
		for c := 0; c < k; c += chunk16 {
			e := min(k, c+chunk16)
			for j := range 4 {
				widen(buf[j][:e-c], ws[j*ldw+c:j*ldw+e])
			}
			for i := range rows {
				s0, s1, s2, s3 := dot4(xs[i*ldx+c:i*ldx+e], buf[0][:], buf[1][:], buf[2][:], buf[3][:])
				acc[i][0] += s0
				acc[i][1] += s1
				acc[i][2] += s2
				acc[i][3] += s3
			}
		}
		for i := range rows {
			copy(os[i*ldo:i*ldo+4], acc[i][:])
		}
	}
	return tiles[uint16]{
		one: one,
		row: func(x *float32, ldx int, w *uint16, ldw, k int, out *float32, ldo int) {
			rows(1, x, ldx, w, ldw, k, out, ldo)
		},
		block: func(x *float32, ldx int, w *uint16, ldw, k int, out *float32, ldo int) {
			rows(4, x, ldx, w, ldw, k, out, ldo)
		},
	}
}

// genericCols computes out[j] = sum_t a[t]*b[t*ldb+j] for j < cols.
// genericColsOf returns the portable column kernels over b widened by widen.
func genericColsOf[W float32 | uint16](widen func(W) float32) cols[W] {
	return cols[W]{
		four: func(out, a *float32, b *W, ldb, k int) { genericCols(out, a, b, ldb, k, 4, widen) },
		one:  func(out, a *float32, b *W, ldb, k int) { genericCols(out, a, b, ldb, k, 1, widen) },
	}
}

func genericCols[W float32 | uint16](out, a *float32, b *W, ldb, k, cols int, widen func(W) float32) {
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
			o[j] += av * widen(bv)
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
