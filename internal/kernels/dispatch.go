package kernels

import "sync/atomic"

// tile computes a block of dot products over the first k&^(vw-1) elements (the whole k for the
// generic set): out[i*ldo+j] = sum_t x[i*ldx+t] * widen(w[j*ldw+t]) for the tile's rows i of x
// and rows j of w. Pointers must address at least the rows the tile reads.
type tile[W float32 | uint16] func(x *float32, ldx int, w *W, ldw int, k int, out *float32, ldo int)

// gemvRows computes out[r] = sum_{t<k} x[t] * widen(w[r*ldw+t]) for r < rows, k a multiple of
// the vector width, row after row (the weights read strictly in order), each row with the bits
// the tiles give it.
type gemvRows[W float32 | uint16] func(x *float32, w *W, ldw, k int, out *float32, rows int)

// tiles holds one weight dtype's kernels: 1x1, 1x4 and R x 4 (R = kernelSet.rows), and the
// one-row product (nil where the tiles serve one row as well).
type tiles[W float32 | uint16] struct {
	one, row, block tile[W]
	gemv            gemvRows[W]
}

// kernelSet is one implementation level of every kernel.
type kernelSet struct {
	name string
	vw   int // float32 lanes the vector kernels consume at a time; the caller adds the tail
	rows int // x rows of the block tile
	f32  tiles[float32]
	bf16 tiles[uint16]
	f16  tiles[uint16]
	// colsF32, colsBF16 and colsF16 compute out[j] = sum_{t<k} a[t]*b[t*ldb+j] over float32,
	// bfloat16 and float16 b (16-bit b widened: the bits of float32 b holding the same values).
	colsF32           cols[float32]
	colsBF16, colsF16 cols[uint16]
	// read xors the 64-bit words of p[:n&^255] (a bandwidth probe).
	read func(p *byte, n int) uint64
	// exp and logistic are Exp and Logistic over whole slices of equal length.
	exp, logistic func(dst, src []float32)
}

var (
	startup = detect()
	active  atomic.Pointer[kernelSet]
)

func init() { active.Store(startup) }

// Features reports the SIMD level in use: "avx512", "avx2" or "generic". It is the level chosen
// at start-up from the CPU's features unless SetGeneric(true) forced the portable path.
func Features() string { return active.Load().name }

// SetGeneric(true) switches every kernel to the portable Go implementation (for tests and for
// comparing against the SIMD path); SetGeneric(false) restores the level chosen at start-up.
// Products already running finish on the level they started with.
func SetGeneric(on bool) {
	if on {
		active.Store(genericSet)
	} else {
		active.Store(startup)
	}
}

// cols is one dtype's column kernels: four for 4*vw columns, one for vw.
type cols[W float32 | uint16] struct {
	four, one func(out, a *float32, b *W, ldb, k int)
}
