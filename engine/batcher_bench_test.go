package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"tether/weights"
)

// BenchmarkBatcher measures a Batcher's throughput (generated tokens/s)
// with 1, 4 and 8 concurrent requests (16-token prompts, 32 new tokens) on
// a small random model, unsteered and with every row capped on every layer.
func BenchmarkBatcher(b *testing.B) {
	cfg := tinyConfig(weights.FamilyLlama)
	cfg.VocabSize, cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers = 2048, 256, 768, 4
	cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim, cfg.MaxPositions = 8, 2, 32, 256
	cfg.SlidingLayers = make([]bool, cfg.NumLayers)
	m, err := Load(testBackend(b), cfg, randomSource(cfg, 3))
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	u := unitVector(rng, cfg.HiddenSize)
	capped := Hooks{}
	for l := range cfg.NumLayers {
		capped[l] = &LayerHook{Clamps: []Clamp{floorClamp(u, 0.1)}, Record: true}
	}
	const newTokens = 32
	for _, mode := range []string{"unsteered", "capped"} {
		for _, conc := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("%s/concurrent%d", mode, conc), func(b *testing.B) {
				// The cache holds MaxContext slots per row: size it to the requests.
				bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 8, MaxContext: 48})
				if err != nil {
					b.Fatal(err)
				}
				defer bt.Close(context.Background())
				req := BatchRequest{Request: Request{Prompt: randomTokens(rng, 16, cfg.VocabSize), MaxNewTokens: newTokens, IgnoreEOS: true}}
				if mode == "capped" {
					req.Hooks = capped
				}
				round := func() {
					var wg sync.WaitGroup
					for range conc {
						ch, err := bt.Submit(context.Background(), req)
						if err != nil {
							b.Fatal(err)
						}
						wg.Go(func() {
							for range ch {
							}
						})
					}
					wg.Wait()
				}
				round() // compiles this batch size's graphs
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					round()
				}
				b.ReportMetric(float64(b.N*conc*newTokens)/time.Since(start).Seconds(), "tokens/s")
			})
		}
	}
}
