package kernels

import (
	"fmt"
	"time"
	"unsafe"
)

// mBlock is how many x rows a product keeps in cache while a strip of four weight rows is reused
// across them: the weights are read from memory once per block of mBlock rows.
const mBlock = 64

// streamMinK is the row length from which a single x row reads the weights one row at a time
// (one memory stream) rather than four interleaved rows: below it (attention over a head of 64
// or 128 values) the rows are short and the four-row tile's fewer calls win.
const streamMinK = 256

// inlineWork is the multiply-add count below which a product runs on the calling goroutine: waking
// the pool costs more than the work. Decode attention's products on a short cache (SmolLM2-135M's
// scores at 64 cache slots: 37k multiply-adds) took 17 µs through the pool and 8 µs inline on this
// project's 2-core VM (engine's DecodeSmolLM2Shape with per-operation timers).
const inlineWork = 1 << 17

// LinearF32 computes out[m*n] = x[m*k] · w[n*k]^T with float32 weights stored row-major [n, k]
// (a Hugging Face Linear's layout), accumulating in float32. The product is split over output
// rows n (and over blocks of x rows when m is large) across the pool; for m > 1 each strip of
// weight rows is applied to a whole block of x rows while it is in cache. It panics if a slice
// is shorter than its shape says (the kernels read through raw pointers).
func LinearF32(p *Pool, out, x []float32, m, k int, w []float32, n int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.f32, widenF32, out, x, w, 1, m, n, k, "LinearF32")
}

// LinearBF16 is LinearF32 with bfloat16 weights (raw bits), widened to float32 in registers.
func LinearBF16(p *Pool, out, x []float32, m, k int, w []uint16, n int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.bf16, widenBF16, out, x, w, 1, m, n, k, "LinearBF16")
}

// LinearF16 is LinearF32 with IEEE 754 half-precision weights (raw bits), widened to float32 in
// registers (F16C on amd64).
func LinearF16(p *Pool, out, x []float32, m, k int, w []uint16, n int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.f16, widenF16, out, x, w, 1, m, n, k, "LinearF16")
}

// BatchMatMulTransB computes, for each b < batch, out[b][i][j] = sum_t a[b][i][t] * bT[b][j][t]
// with a [batch, m, k], bT [batch, n, k] and out [batch, m, n], all row-major and contiguous
// (attention scores, and any DotGeneral once canonicalised to this form). It panics if a slice
// is shorter than its shape says.
func BatchMatMulTransB(p *Pool, out, a, bT []float32, batch, m, n, k int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.f32, widenF32, out, a, bT, batch, m, n, k, "BatchMatMulTransB")
}

// BatchMatMulTransBBF16 is BatchMatMulTransB with bT in bfloat16 (raw bits), widened to float32
// in registers: the result has the bits BatchMatMulTransB gives on the widened values.
func BatchMatMulTransBBF16(p *Pool, out, a []float32, bT []uint16, batch, m, n, k int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.bf16, widenBF16, out, a, bT, batch, m, n, k, "BatchMatMulTransBBF16")
}

// BatchMatMulTransBF16 is BatchMatMulTransB with bT in IEEE 754 half precision (raw bits).
func BatchMatMulTransBF16(p *Pool, out, a []float32, bT []uint16, batch, m, n, k int) {
	ks := active.Load()
	gemmNT(p, ks, &ks.f16, widenF16, out, a, bT, batch, m, n, k, "BatchMatMulTransBF16")
}

// Dot returns the float32 dot product of a and b, which must have the same length.
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("kernels: Dot of slices of length %d and %d", len(a), len(b)))
	}
	if len(a) == 0 {
		return 0
	}
	ks := active.Load()
	var s float32
	kv := len(a) &^ (ks.vw - 1)
	if kv > 0 {
		ks.f32.one(&a[0], 0, &b[0], 0, kv, &s, 0)
	}
	return s + dotWiden(a[kv:], b[kv:], widenF32)
}

// checkLen panics with the kernel's name when a slice is shorter than its shape requires.
func checkLen(kernel, what string, have, need int) {
	if have < need {
		panic(fmt.Sprintf("kernels: %s: %s has %d elements, shape needs %d", kernel, what, have, need))
	}
}

// gemmNT computes out[b][i][j] = sum_t x[b][i][t] * widen(w[b][j][t]) for b < batch (w has
// batch*n rows; batch = 1 for Linear). Work is cut into tasks of (batch, block of mBlock x rows,
// four w rows); a chunk of contiguous tasks runs strip by strip, each strip of w rows applied to
// the whole block of x rows.
func gemmNT[W float32 | uint16](p *Pool, ks *kernelSet, t *tiles[W], widen func(W) float32,
	out, x []float32, w []W, batch, m, n, k int, kernel string) {
	if batch <= 0 || m <= 0 || n <= 0 {
		return
	}
	k = max(k, 0)
	checkLen(kernel, "out", len(out), batch*m*n)
	checkLen(kernel, "x", len(x), batch*m*k)
	checkLen(kernel, "w", len(w), batch*n*k)
	if k == 0 {
		clear(out[:batch*m*n])
		return
	}
	nUnits := (n + 3) / 4
	mBlocks := (m + mBlock - 1) / mBlock
	perBatch := mBlocks * nUnits
	kv := k &^ (ks.vw - 1)
	body := func(lo, hi int) {
		for task := lo; task < hi; {
			b, rem := task/perBatch, task%perBatch
			ib, ju := rem/nUnits, rem%nUnits
			end := min(hi, task-ju+nUnits) // tasks sharing (b, ib)
			i0 := ib * mBlock
			ntBlock(ks, t, widen, out[b*m*n:(b+1)*m*n], x[b*m*k:(b+1)*m*k], w[b*n*k:(b+1)*n*k],
				n, k, kv, i0, min(m, i0+mBlock), ju*4, min(n, (ju+end-task)*4))
			task = end
		}
	}
	tasks := batch * perBatch
	if batch*m*n*k < inlineWork {
		body(0, tasks)
		return
	}
	p.Parallel(tasks, body)
}

// ntBlock computes rows [i0,i1) × columns [j0,j1) of one batch's output.
func ntBlock[W float32 | uint16](ks *kernelSet, t *tiles[W], widen func(W) float32,
	out, x []float32, w []W, n, k, kv, i0, i1, j0, j1 int) {
	R := ks.rows
	j := j0
	for ; j+4 <= j1; j += 4 {
		i := i0
		for ; i+R <= i1; i += R {
			t.block(&x[i*k], k, &w[j*k], k, kv, &out[i*n+j], n)
			addTails(out, x, w, widen, n, k, kv, i, i+R, j, j+4)
		}
		for ; i < i1; i++ {
			if k >= streamMinK && t.gemv != nil {
				// Long weight rows: read one after the other (one memory stream),
				// faster than one tile interleaving four rows (the hardware prefetcher
				// follows one stream better than four; BenchmarkWeightStreams), each
				// with one accumulator, so with the bits the tiles give it.
				t.gemv(&x[i*k], &w[j*k], k, kv, &out[i*n+j], 4)
			} else {
				t.row(&x[i*k], k, &w[j*k], k, kv, &out[i*n+j], n)
			}
			addTails(out, x, w, widen, n, k, kv, i, i+1, j, j+4)
		}
	}
	for ; j < j1; j++ {
		for i := i0; i < i1; i++ {
			t.one(&x[i*k], k, &w[j*k], k, kv, &out[i*n+j], n)
			addTails(out, x, w, widen, n, k, kv, i, i+1, j, j+1)
		}
	}
}

// addTails adds the products of elements [kv,k) (those the vector kernels leave) to rows [i0,i1)
// × columns [j0,j1) of out.
func addTails[W float32 | uint16](out, x []float32, w []W, widen func(W) float32, n, k, kv, i0, i1, j0, j1 int) {
	if kv == k {
		return
	}
	for i := i0; i < i1; i++ {
		for j := j0; j < j1; j++ {
			out[i*n+j] += dotWiden(x[i*k+kv:i*k+k], w[j*k+kv:j*k+k], widen)
		}
	}
}

// colsPerTask is how many output columns one task of BatchMatMul computes.
const colsPerTask = 256

// BatchMatMul computes, for each b < batch, out[b][i][j] = sum_t a[b][i][t] * bm[b][t][j] with
// a [batch, m, k], bm [batch, k, n] and out [batch, m, n], all row-major and contiguous
// (attention weights times V). Output rows (and blocks of columns when n is wide) are split
// across the pool. It panics if a slice is shorter than its shape says.
func BatchMatMul(p *Pool, out, a, bm []float32, batch, m, n, k int) {
	ks := active.Load()
	batchMatMul(p, ks, &ks.colsF32, widenF32, out, a, bm, batch, m, n, k, "BatchMatMul")
}

// BatchMatMulBF16 is BatchMatMul with bm in bfloat16 (raw bits), widened to float32 in
// registers: the result has the bits BatchMatMul gives on the widened values.
func BatchMatMulBF16(p *Pool, out, a []float32, bm []uint16, batch, m, n, k int) {
	ks := active.Load()
	batchMatMul(p, ks, &ks.colsBF16, widenBF16, out, a, bm, batch, m, n, k, "BatchMatMulBF16")
}

// BatchMatMulF16 is BatchMatMulBF16 with bm in IEEE 754 half precision (raw bits).
func BatchMatMulF16(p *Pool, out, a []float32, bm []uint16, batch, m, n, k int) {
	ks := active.Load()
	batchMatMul(p, ks, &ks.colsF16, widenF16, out, a, bm, batch, m, n, k, "BatchMatMulF16")
}

// batchMatMul is BatchMatMul over bm of type W with the column kernels c (widen for the columns
// past the last whole vector); tasks are (row of a, block of colsPerTask columns).
func batchMatMul[W float32 | uint16](p *Pool, ks *kernelSet, c *cols[W], widen func(W) float32,
	out, a []float32, bm []W, batch, m, n, k int, kernel string) {
	if batch <= 0 || m <= 0 || n <= 0 {
		return
	}
	k = max(k, 0)
	checkLen(kernel, "out", len(out), batch*m*n)
	checkLen(kernel, "a", len(a), batch*m*k)
	checkLen(kernel, "bm", len(bm), batch*k*n)
	if k == 0 {
		clear(out[:batch*m*n])
		return
	}
	colBlocks := (n + colsPerTask - 1) / colsPerTask
	body := func(lo, hi int) {
		for task := lo; task < hi; task++ {
			row, cb := task/colBlocks, task%colBlocks
			b := row / m
			j0 := cb * colsPerTask
			nnRow(ks, c, widen, out[row*n+j0:row*n+min(n, j0+colsPerTask)], a[row*k:(row+1)*k], bm[b*k*n+j0:(b+1)*k*n], n)
		}
	}
	tasks := batch * m * colBlocks
	if batch*m*n*k < inlineWork {
		body(0, tasks)
		return
	}
	p.Parallel(tasks, body)
}

// nnRow computes o[j] = sum_t a[t]*widen(b[t*ldb+j]) for j < len(o), where b starts at o's first
// column: whole vectors with the kernels, the last len(o) mod vw columns in Go.
func nnRow[W float32 | uint16](ks *kernelSet, c *cols[W], widen func(W) float32, o, a []float32, b []W, ldb int) {
	k := len(a)
	w4, w1 := 4*ks.vw, ks.vw
	j := 0
	for ; j+w4 <= len(o); j += w4 {
		c.four(&o[j], &a[0], &b[j], ldb, k)
	}
	for ; j+w1 <= len(o); j += w1 {
		c.one(&o[j], &a[0], &b[j], ldb, k)
	}
	for ; j < len(o); j++ {
		var s float32
		for t, av := range a {
			s += av * widen(b[t*ldb+j])
		}
		o[j] = s
	}
}

// ReadBandwidth reads buf once with vector loads split across the pool's workers and returns the
// rate in bytes per second of that one pass (the caller repeats it and takes a median; buf should
// be much larger than the last-level cache).
func ReadBandwidth(p *Pool, buf []byte) float64 {
	if len(buf) == 0 {
		return 0
	}
	ks := active.Load()
	const block = 1 << 16
	blocks := (len(buf) + block - 1) / block
	sinks := make([]uint64, blocks) // the reads' results, stored so that they are observable
	start := time.Now()
	p.Parallel(blocks, func(lo, hi int) {
		for bi := lo; bi < hi; bi++ {
			chunk := buf[bi*block : min(len(buf), (bi+1)*block)]
			s := ks.read(unsafe.SliceData(chunk), len(chunk))
			for _, c := range chunk[len(chunk)&^255:] {
				s ^= uint64(c)
			}
			sinks[bi] = s
		}
	})
	return float64(len(buf)) / time.Since(start).Seconds()
}
