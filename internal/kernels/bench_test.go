package kernels

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// benchPool is shared by the benchmarks: one persistent pool over GOMAXPROCS, as the backend uses.
var benchPool = sync.OnceValue(func() *Pool { return NewPool(0) })

// bandwidthBuf is larger than any last-level cache this project runs on.
const bandwidthBuf = 256 << 20

// bandwidthBufOnce is the reader's buffer, allocated and touched once per process.
var bandwidthBufOnce = sync.OnceValue(func() []byte {
	buf := make([]byte, bandwidthBuf)
	for i := range buf {
		buf[i] = byte(i)
	}
	return buf
})

// medianBandwidth is the median of three ReadBandwidth passes over 256 MiB on the shared pool, in
// bytes per second: the floor each Linear sub-benchmark measures just before it runs, so that
// both see the same load on a shared machine.
func medianBandwidth() float64 {
	buf := bandwidthBufOnce()
	rates := make([]float64, 3)
	for i := range rates {
		rates[i] = ReadBandwidth(benchPool(), buf)
	}
	slices.Sort(rates)
	return rates[1]
}

// BenchmarkReadBandwidth measures the vectorised multi-core reader (SetBytes: MB/s is the rate).
func BenchmarkReadBandwidth(b *testing.B) {
	buf := bandwidthBufOnce()
	p := benchPool()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		ReadBandwidth(p, buf)
	}
}

// decodeShapes are SmolLM2-135M's products at batch 1: attention/MLP in, MLP out, LM head.
var decodeShapes = []struct{ k, n int }{{576, 1536}, {1536, 576}, {576, 49152}}

// BenchmarkLinear reports, for each weight dtype and decode shape, the rate of weight bytes read
// (GB/s) and its fraction of the pool's reader bandwidth measured just before it (of-bw).
func BenchmarkLinear(b *testing.B) {
	p := benchPool()
	for _, dtype := range []string{"f32", "bf16", "f16"} {
		for _, s := range decodeShapes {
			for _, m := range []int{1, 8} {
				b.Run(fmt.Sprintf("%s/m=%d/k=%d/n=%d", dtype, m, s.k, s.n), func(b *testing.B) {
					r := rand.New(rand.NewPCG(1, 2))
					x := randF32(r, m*s.k)
					out := make([]float32, m*s.n)
					wf, wb, _ := weights(r, dtype, s.n, s.k)
					bytes := 4 * s.n * s.k
					if dtype != "f32" {
						bytes /= 2
					}
					b.SetBytes(int64(bytes))
					bw := medianBandwidth()
					b.ResetTimer()
					start := time.Now()
					for b.Loop() {
						switch dtype {
						case "f32":
							LinearF32(p, out, x, m, s.k, wf, s.n)
						case "bf16":
							LinearBF16(p, out, x, m, s.k, wb, s.n)
						case "f16":
							LinearF16(p, out, x, m, s.k, wb, s.n)
						}
					}
					rate := float64(bytes) * float64(b.N) / time.Since(start).Seconds()
					b.ReportMetric(rate/1e9, "GB/s")
					b.ReportMetric(rate/bw, "of-bw")
					b.ReportMetric(2*float64(m*s.n*s.k)*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkPrefill times LinearF32 and LinearBF16 at a 128-token prefill of the MLP up
// projection (compute-bound), in GFLOP/s.
func BenchmarkPrefill(b *testing.B) {
	p := benchPool()
	const m, k, n = 128, 576, 1536
	r := rand.New(rand.NewPCG(1, 2))
	x := randF32(r, m*k)
	out := make([]float32, m*n)
	for _, dtype := range []string{"f32", "bf16"} {
		wf, wb, _ := weights(r, dtype, n, k)
		b.Run(dtype, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				if dtype == "f32" {
					LinearF32(p, out, x, m, k, wf, n)
				} else {
					LinearBF16(p, out, x, m, k, wb, n)
				}
			}
			b.ReportMetric(2*float64(m*n*k)*float64(b.N)/time.Since(start).Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttention times decode attention at 9 heads, head size 64, 1024 cache slots: scores
// (BatchMatMulTransB) and weights times V (BatchMatMul).
func BenchmarkAttention(b *testing.B) {
	p := benchPool()
	const heads, d, slots = 9, 64, 1024
	r := rand.New(rand.NewPCG(1, 2))
	q, keys, v := randF32(r, heads*d), randF32(r, heads*slots*d), randF32(r, heads*slots*d)
	scores, out := make([]float32, heads*slots), make([]float32, heads*d)
	b.Run("scores", func(b *testing.B) {
		for b.Loop() {
			BatchMatMulTransB(p, scores, q, keys, heads, 1, slots, d)
		}
	})
	b.Run("values", func(b *testing.B) {
		for b.Loop() {
			BatchMatMul(p, out, scores, v, heads, 1, d, slots)
		}
	})
}

// spins are the spin times the pool benchmarks compare: pure parking, the default and a longer spin.
var spins = []time.Duration{0, DefaultSpin, 50 * time.Microsecond}

// BenchmarkParallelOverhead times Parallel on trivial work (one chunk per worker, each touching
// one cache line) back to back and with a busy 20µs gap between calls (the caller's own work
// between products), for each spin time. cpu-µs/op is the process CPU time per call (gap
// included), which shows what spinning burns.
func BenchmarkParallelOverhead(b *testing.B) {
	for _, gap := range []time.Duration{0, 20 * time.Microsecond} {
		for _, spin := range spins {
			b.Run(fmt.Sprintf("gap=%v/spin=%v", gap, spin), func(b *testing.B) {
				p := NewPoolSpin(0, spin)
				defer p.Close()
				sink := make([]int64, 8*p.Workers()*chunksPerWorker)
				fn := func(lo, hi int) { sink[lo*8]++ }
				cpu0 := cpuTime()
				for b.Loop() {
					p.Parallel(p.Workers(), fn)
					for t := time.Now(); time.Since(t) < gap; {
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
			})
		}
	}
}

// BenchmarkDecodeLayer runs the seven products of one SmolLM2-135M layer at batch 1 with bf16
// weights (q, k, v, o, gate, up, down: 4.4 MB of weights, in cache on most machines) back to
// back, for each spin time: the case spinning is for, many short products in a row.
func BenchmarkDecodeLayer(b *testing.B) {
	shapes := []struct{ k, n int }{{576, 576}, {576, 192}, {576, 192}, {576, 576}, {576, 1536}, {576, 1536}, {1536, 576}}
	r := rand.New(rand.NewPCG(1, 2))
	ws := make([][]uint16, len(shapes))
	for i, s := range shapes {
		_, ws[i], _ = weights(r, "bf16", s.n, s.k)
	}
	x := randF32(r, 1536)
	out := make([]float32, 1536)
	for _, spin := range spins {
		b.Run(fmt.Sprintf("spin=%v", spin), func(b *testing.B) {
			p := NewPoolSpin(0, spin)
			defer p.Close()
			cpu0 := cpuTime()
			for b.Loop() {
				for i, s := range shapes {
					LinearBF16(p, out, x, 1, s.k, ws[i], s.n)
				}
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}
