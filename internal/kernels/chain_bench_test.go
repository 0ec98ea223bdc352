package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkDecodeChain runs the weight products of one SmolLM2-135M decode step at batch 1 (30
// layers of q|k|v, o, gate|up and down, then the LM head: 134M weights, larger than any cache)
// back to back, and reports the rate of weight bytes read, its fraction of the pool's reader
// bandwidth measured just before (of-bw), and the steps per second the products alone allow.
func BenchmarkDecodeChain(b *testing.B) {
	p := benchPool()
	type mat struct{ n, k int }
	var shapes []mat
	for range 30 {
		shapes = append(shapes, mat{960, 576}, mat{576, 576}, mat{3072, 576}, mat{576, 1536})
	}
	shapes = append(shapes, mat{49152, 576})
	for _, dtype := range []string{"f32", "bf16"} {
		b.Run(dtype, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			wf := make([][]float32, len(shapes))
			wb := make([][]uint16, len(shapes))
			bytes := 0
			for i, s := range shapes {
				wf[i], wb[i], _ = weights(r, dtype, s.n, s.k)
				bytes += s.n * s.k * map[string]int{"f32": 4, "bf16": 2}[dtype]
			}
			x := randF32(r, 1536)
			out := make([]float32, 49152)
			bw := medianBandwidth()
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				for i, s := range shapes {
					if dtype == "f32" {
						LinearF32(p, out[:s.n], x[:s.k], 1, s.k, wf[i], s.n)
					} else {
						LinearBF16(p, out[:s.n], x[:s.k], 1, s.k, wb[i], s.n)
					}
				}
			}
			rate := float64(bytes) * float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate/1e9, "GB/s")
			b.ReportMetric(rate/bw, "of-bw")
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "steps/s")
		})
	}
}

// BenchmarkWeightStreams compares, on one goroutine, reading a 49152×576 weight matrix (larger
// than any cache) one row at a time (one memory stream, the order LinearF32 uses for a single x
// row: the one-row kernel, gemv) against four interleaved rows at a time (the 1×4 tile, four
// streams), for f32 and bf16. Measured on this project's 2-core EPYC VM: one stream read f32 at
// 19 GB/s and bf16 at 20 GB/s, the 4-row tile at 14 and 12 GB/s (with four-accumulator dot
// products per row); with gemv, f32 at 25 and bf16 at 24 GB/s, the tile at 14 and 11 GB/s.
func BenchmarkWeightStreams(b *testing.B) {
	const n, k = 49152, 576
	r := rand.New(rand.NewPCG(1, 2))
	wf, _, _ := weights(r, "f32", n, k)
	_, wb, _ := weights(r, "bf16", n, k)
	x := randF32(r, k)
	out := make([]float32, n)
	ks := active.Load()
	if ks.f32.gemv == nil {
		b.Skip("the portable kernels have no one-row kernel")
	}
	for _, c := range []struct {
		dtype   string
		streams int
	}{{"f32", 1}, {"f32", 4}, {"bf16", 1}, {"bf16", 4}} {
		b.Run(fmt.Sprintf("%s/streams=%d", c.dtype, c.streams), func(b *testing.B) {
			bytes := 4 * n * k
			if c.dtype == "bf16" {
				bytes /= 2
			}
			b.SetBytes(int64(bytes))
			for b.Loop() {
				for j := 0; j < n; j += 4 {
					switch {
					case c.dtype == "f32" && c.streams == 1:
						ks.f32.gemv(&x[0], &wf[j*k], k, k, &out[j], 4)
					case c.dtype == "f32":
						ks.f32.row(&x[0], k, &wf[j*k], k, k, &out[j], n)
					case c.streams == 1:
						ks.bf16.gemv(&x[0], &wb[j*k], k, k, &out[j], 4)
					default:
						ks.bf16.row(&x[0], k, &wb[j*k], k, k, &out[j], n)
					}
				}
			}
		})
	}
}
