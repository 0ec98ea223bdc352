package cpubackend

import (
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"
)

// workPool is a persistent pool of workers that split a range of rows.
type workPool struct {
	workers int
	jobs    chan poolJob
	once    sync.Once
}

type poolJob struct {
	fn     func(lo, hi int)
	lo, hi int
	wg     *sync.WaitGroup
}

func newWorkPool(workers int) *workPool {
	p := &workPool{workers: workers, jobs: make(chan poolJob, workers)}
	for range workers - 1 {
		go func() {
			for j := range p.jobs {
				j.fn(j.lo, j.hi)
				j.wg.Done()
			}
		}()
	}
	return p
}

func (p *workPool) close() { p.once.Do(func() { close(p.jobs) }) }

// parallel runs fn over [0, n) in up to workers contiguous chunks, the
// caller taking the first; chunks are at least grain long.
func (p *workPool) parallel(n, grain int, fn func(lo, hi int)) {
	parts := min(p.workers, max(1, n/max(grain, 1)))
	if parts <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	chunk := (n + parts - 1) / parts
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		p.jobs <- poolJob{fn: fn, lo: lo, hi: min(lo+chunk, n), wg: &wg}
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// dotF32 is the inner product of equal-length vectors with 8 accumulators.
func dotF32(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
		s4 += a[i+4] * b[i+4]
		s5 += a[i+5] * b[i+5]
		s6 += a[i+6] * b[i+6]
		s7 += a[i+7] * b[i+7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
}

// dotBF16 is dotF32 with b as bfloat16 bits, widened per element.
func dotBF16(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * bf(b[i])
		s1 += a[i+1] * bf(b[i+1])
		s2 += a[i+2] * bf(b[i+2])
		s3 += a[i+3] * bf(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += a[i] * bf(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func bf(u uint16) float32 { return bfloat16.BFloat16(u).Float32() }

// linearF32 computes out [m, n] = x [m, k] · wᵀ, w row-major [n, k],
// splitting the n output rows over the pool.
func linearF32(p *workPool, out, x []float32, m, k int, w []float32, n int) {
	p.parallel(n, 16, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			wr := w[j*k : (j+1)*k]
			for i := range m {
				out[i*n+j] = dotF32(x[i*k:(i+1)*k], wr)
			}
		}
	})
}

// linearBF16 is linearF32 with bfloat16 weights.
func linearBF16(p *workPool, out, x []float32, m, k int, w []uint16, n int) {
	p.parallel(n, 16, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			wr := w[j*k : (j+1)*k]
			for i := range m {
				out[i*n+j] = dotBF16(x[i*k:(i+1)*k], wr)
			}
		}
	})
}

// linearF16 is linearF32 with float16 weights (widened a row at a time).
func linearF16(p *workPool, out, x []float32, m, k int, w []uint16, n int) {
	p.parallel(n, 16, func(lo, hi int) {
		row := make([]float32, k)
		for j := lo; j < hi; j++ {
			for t, u := range w[j*k : (j+1)*k] {
				row[t] = float16.Frombits(u).Float32()
			}
			for i := range m {
				out[i*n+j] = dotF32(x[i*k:(i+1)*k], row)
			}
		}
	})
}

// batchMatMulTransB computes out[b] = a[b] [m, k] · bT[b]ᵀ (bT [n, k]).
func batchMatMulTransB(p *workPool, out, a, bT []float32, batch, m, n, k int) {
	p.parallel(batch*m, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b := r / m
			ar := a[r*k : (r+1)*k]
			o := out[r*n : (r+1)*n]
			bb := bT[b*n*k:]
			for j := range o {
				o[j] = dotF32(ar, bb[j*k:(j+1)*k])
			}
		}
	})
}

// batchMatMul computes out[b] = a[b] [m, k] · bm[b] [k, n].
func batchMatMul(p *workPool, out, a, bm []float32, batch, m, n, k int) {
	p.parallel(batch*m, 1, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			b := r / m
			o := out[r*n : (r+1)*n]
			clear(o)
			bb := bm[b*k*n:]
			for t, av := range a[r*k : (r+1)*k] {
				row := bb[t*n : (t+1)*n]
				for j := range o {
					o[j] += av * row[j]
				}
			}
		}
	})
}

// bits16 views 16-bit float values as their bits.
func bits16[T ~uint16](s []T) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&s[0])), len(s))
}
