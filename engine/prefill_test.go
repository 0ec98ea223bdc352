package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestChunkedPrefillMatchesOneStep runs long prompts through the cache in
// small chunks and compares logits, captured layers and hook telemetry with
// a single-step prefill.
func TestChunkedPrefillMatchesOneStep(t *testing.T) {
	ctx := context.Background()
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m, _ := loadTiny(t, fam)
			rng := rand.New(rand.NewPCG(9, 9))
			V, H := m.cfg.VocabSize, m.cfg.HiddenSize
			seqs := [][]int{randomTokens(rng, 29, V), randomTokens(rng, 13, V)}
			opts := ForwardOptions{AllLogits: true, CaptureLayers: []int{0, 2},
				Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(unitVector(rng, H), 0.1)}, Record: true}}}
			whole, err := m.Forward(ctx, seqs, opts)
			if err != nil {
				t.Fatal(err)
			}
			reqs := []Request{{Prompt: seqs[0], MaxNewTokens: 4}, {Prompt: seqs[1], MaxNewTokens: 4}}
			gopts := GenerateOptions{CaptureLayers: []int{2}, Hooks: opts.Hooks}
			gen, err := m.Generate(ctx, reqs, gopts)
			if err != nil {
				t.Fatal(err)
			}
			defer func(old int) { prefillChunk = old }(prefillChunk)
			prefillChunk = 8
			chunked, err := m.Forward(ctx, seqs, opts)
			if err != nil {
				t.Fatal(err)
			}
			genChunked, err := m.Generate(ctx, reqs, gopts)
			if err != nil {
				t.Fatal(err)
			}
			for b := range reqs {
				if !slices.Equal(gen[b].Tokens, genChunked[b].Tokens) {
					t.Errorf("seq %d: chunked prefill generated %v, one-step %v", b, genChunked[b].Tokens, gen[b].Tokens)
				}
				if d := maxRelDiff(flatten(genChunked[b].Captured[2]), flatten(gen[b].Captured[2])); d > 1e-4 {
					t.Errorf("seq %d: chunked prefill changed Generate's captures: %g", b, d)
				}
			}
			for b := range seqs {
				if d := maxRelDiff(flatten(chunked.AllLogits[b]), flatten(whole.AllLogits[b])); d > 1e-4 {
					t.Errorf("seq %d: chunked logits differ: %g", b, d)
				}
				for _, l := range opts.CaptureLayers {
					if d := maxRelDiff(flatten(chunked.Captured[l][b]), flatten(whole.Captured[l][b])); d > 1e-4 {
						t.Errorf("seq %d layer %d: chunked capture differs: %g", b, l, d)
					}
				}
				for pos := range seqs[b] {
					c, w := chunked.Telemetry[1][b][pos], whole.Telemetry[1][b][pos]
					if d := maxRelDiff(c.Before, w.Before); d > 1e-4 {
						t.Errorf("seq %d pos %d: chunked telemetry differs: %v vs %v", b, pos, c.Before, w.Before)
					}
				}
			}
		})
	}
}
