package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"tether/weights"
)

// smolLM2Config has the shape of SmolLM2-135M.
func smolLM2Config() *weights.Config {
	return &weights.Config{
		Family: weights.FamilyLlama, VocabSize: 49152, HiddenSize: 576, IntermediateSize: 1536, NumLayers: 30,
		NumHeads: 9, NumKVHeads: 3, HeadDim: 64, MaxPositions: 8192, RMSNormEps: 1e-5, RopeTheta: 100000,
		Activation: "silu", TieEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: -1,
		SlidingLayers: make([]bool, 30),
	}
}

// loadSmolLM2Bench loads the random SmolLM2-135M-shaped model (seed 9) of the
// benchmarks on $TETHER_BENCH_BACKEND (default "go"; e.g. "cpu",
// "go:dotgeneral_large" or "xla:cuda") with the matrices held in
// $TETHER_BENCH_DTYPE (e.g. "bfloat16"; default the backend's) and the K and V
// caches in $TETHER_BENCH_CACHE_DTYPE (e.g. "bf16"; default float32), closed when
// the benchmark ends. It skips in -short mode.
func loadSmolLM2Bench(b *testing.B) (*Model, *weights.Config) {
	b.Helper()
	if testing.Short() {
		b.Skip("skipping the 540 MB model benchmark in -short mode")
	}
	backendName := "go"
	if name := os.Getenv("TETHER_BENCH_BACKEND"); name != "" {
		backendName = name
	}
	be, err := NewBackend(backendName)
	if err != nil {
		b.Fatal(err)
	}
	cfg := smolLM2Config()
	m, err := LoadWithOptions(be, cfg, randomSource(cfg, 9), LoadOptions{WeightDType: os.Getenv("TETHER_BENCH_DTYPE"), CacheDType: os.Getenv("TETHER_BENCH_CACHE_DTYPE")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.Close)
	return m, cfg
}

// BenchmarkDecodeSmolLM2Shape measures batched decoding steps (one new token
// per sequence per step, with a KV cache) on a random model of SmolLM2-135M's
// shape. Run: go test ./engine/ -run '^$' -bench DecodeSmolLM2Shape -benchtime 40x
// (loadSmolLM2Bench: $TETHER_BENCH_BACKEND, $TETHER_BENCH_DTYPE and
// $TETHER_BENCH_CACHE_DTYPE choose the backend, weight and cache dtypes;
// $TETHER_BENCH_SLOTS the cache length, 256 by default).
func BenchmarkDecodeSmolLM2Shape(b *testing.B) {
	m, cfg := loadSmolLM2Bench(b)
	slots := 256
	if v := os.Getenv("TETHER_BENCH_SLOTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 16 {
			b.Fatalf("TETHER_BENCH_SLOTS=%q: expected a cache length above the 16-token prompt", v)
		}
		slots = n
	}
	for _, batch := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			prompts := make([][]int, batch)
			for i := range prompts {
				prompts[i] = randomTokens(rng, 16, cfg.VocabSize)
			}
			T := 16
			rows, pad := m.leftPad(prompts, T)
			m.mu.Lock()
			defer m.mu.Unlock()
			cache := m.newKVCache(batch, slots)
			defer cache.free()
			plan := stepPlan{}
			if _, err := m.runStep(stepRequest{tokens: rows, pad: pad, cache: cache, plan: plan}); err != nil {
				b.Fatal(err)
			}
			feed := make([][]int32, batch)
			for i := range feed {
				feed[i] = []int32{int32(rng.IntN(cfg.VocabSize))}
			}
			slot := T
			b.ResetTimer()
			start := time.Now()
			best := time.Duration(math.MaxInt64)
			for range b.N {
				if slot == slots {
					slot = T
				}
				stepStart := time.Now()
				if _, err := m.runStep(stepRequest{tokens: feed, pad: pad, slot: int32(slot), cache: cache, plan: plan}); err != nil {
					b.Fatal(err)
				}
				best = min(best, time.Since(stepStart))
				slot++
			}
			b.ReportMetric(float64(batch*b.N)/time.Since(start).Seconds(), "tokens/s")
			// The fastest step is the least disturbed by other processes on a
			// shared machine.
			b.ReportMetric(float64(batch)/best.Seconds(), "best-step-tokens/s")
		})
	}
}

// BenchmarkPrefillSmolLM2Shape measures a 64-token prompt step at batch 1 on
// the SmolLM2-135M-shaped random model.
func BenchmarkPrefillSmolLM2Shape(b *testing.B) {
	m, cfg := loadSmolLM2Bench(b)
	rng := rand.New(rand.NewPCG(1, 1))
	const T = 64
	rows, pad := m.leftPad([][]int{randomTokens(rng, T, cfg.VocabSize)}, T)
	m.mu.Lock()
	defer m.mu.Unlock()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		cache := m.newKVCache(1, 128)
		if _, err := m.runStep(stepRequest{tokens: rows, pad: pad, cache: cache}); err != nil {
			b.Fatal(err)
		}
		cache.free()
	}
	b.ReportMetric(float64(T*b.N)/time.Since(start).Seconds(), "prompt-tokens/s")
}

// BenchmarkDecodeCappedSmolLM2Shape measures what capping 8 layers (one
// floor clamp each, as `tether bench perf --steer` does) costs a batch-1
// decoding step on the SmolLM2-135M-shaped random model. Capped and
// uncapped steps alternate (each on its own cache, the order swapped every
// pair), so that both see the same load on a shared machine; it reports
// the median over pairs of uncapped/capped step time (the speed ratio,
// "capped/uncapped") and of their difference. Run:
// TETHER_BENCH_BACKEND=cpu go test ./engine/ -run '^$' -bench DecodeCapped -benchtime 200x
func BenchmarkDecodeCappedSmolLM2Shape(b *testing.B) {
	m, cfg := loadSmolLM2Bench(b)
	rng := rand.New(rand.NewPCG(1, 1))
	hooks := Hooks{}
	for l := 11; l < 19; l++ {
		hooks[l] = &LayerHook{Clamps: []Clamp{floorClamp(unitVector(rng, cfg.HiddenSize), 0)}}
	}
	const T, S = 16, 256
	rows, pad := m.leftPad([][]int{randomTokens(rng, T, cfg.VocabSize)}, T)
	m.mu.Lock()
	defer m.mu.Unlock()
	plain, err := m.makePlan(nil, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	capped, err := m.makePlan(hooks, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	type variant struct {
		plan  stepPlan
		hooks Hooks
		cache *kvCache
	}
	vs := []*variant{{plan: plain}, {plan: capped, hooks: hooks}}
	for _, v := range vs {
		v.cache = m.newKVCache(1, S)
		defer v.cache.free()
		if _, err := m.runStep(stepRequest{tokens: rows, pad: pad, cache: v.cache, plan: v.plan, hooks: v.hooks}); err != nil {
			b.Fatal(err)
		}
	}
	feed := [][]int32{{int32(rng.IntN(cfg.VocabSize))}}
	slot := T
	step := func(v *variant) time.Duration {
		start := time.Now()
		if _, err := m.runStep(stepRequest{tokens: feed, pad: pad, slot: int32(slot), cache: v.cache, plan: v.plan, hooks: v.hooks}); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var ratios, extra []float64
	b.ResetTimer()
	for i := range b.N {
		if slot == S {
			slot = T
		}
		var d [2]time.Duration
		if i%2 == 0 {
			d[0] = step(vs[0])
			d[1] = step(vs[1])
		} else {
			d[1] = step(vs[1])
			d[0] = step(vs[0])
		}
		slot++
		ratios = append(ratios, d[0].Seconds()/d[1].Seconds())
		extra = append(extra, float64(d[1]-d[0])/1e3)
	}
	b.ReportMetric(medianF(ratios), "capped/uncapped")
	b.ReportMetric(medianF(extra), "extra-µs/step")
}

// medianF returns the median of xs (sorted in place).
func medianF(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	if n := len(xs); n%2 == 0 {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	return xs[len(xs)/2]
}
