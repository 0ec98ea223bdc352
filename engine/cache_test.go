package engine

import (
	"context"
	"math/rand/v2"
	"testing"
)

// TestCachedDecodingMatchesFullForward feeds sequences through the KV cache
// in chunks of varying size (prefill, then single tokens and small chunks,
// exercising both cache-write paths) and checks every position's logits
// against one full forward pass of the whole sequences.
func TestCachedDecodingMatchesFullForward(t *testing.T) {
	const tol = 1e-4
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m, _ := loadTiny(t, fam)
			rng := rand.New(rand.NewPCG(3, 4))
			V := m.cfg.VocabSize
			// Two sequences: lengths 5 and 3 in the first chunk, then both grow.
			prompts := [][]int{randomTokens(rng, 5, V), randomTokens(rng, 3, V)}
			chunks := []int{1, 3, 1, 1, 2, 1}
			growth := 0
			for _, c := range chunks {
				growth += c
			}
			full := make([][]int, len(prompts))
			for b := range prompts {
				full[b] = append(append([]int(nil), prompts[b]...), randomTokens(rng, growth, V)...)
			}
			want, err := m.Forward(context.Background(), full, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			T0 := 5
			batch, pad := m.leftPad(prompts, T0)
			m.mu.Lock()
			defer m.mu.Unlock()
			cache := m.newKVCache(2, 64)
			defer cache.free()
			plan := stepPlan{allLogits: true}
			check := func(out *stepResult, T int, firstPos []int) {
				for b := range prompts {
					for tt := range T {
						p := firstPosFor(b, tt, T, pad, prompts, firstPos)
						if p < 0 {
							continue // padding
						}
						got := out.logits[(b*T+tt)*V : (b*T+tt+1)*V]
						if d := maxRelDiff(got, want.AllLogits[b][p]); d > tol {
							t.Errorf("seq %d position %d: cached logits differ from full forward: %g", b, p, d)
						}
					}
				}
			}
			out, err := m.runStep(stepRequest{tokens: batch, pad: pad, slot: 0, cache: cache, plan: plan})
			if err != nil {
				t.Fatal(err)
			}
			check(out, T0, nil)
			slot := T0
			done := 0
			for _, c := range chunks {
				feed := make([][]int32, len(prompts))
				for b := range prompts {
					for i := range c {
						feed[b] = append(feed[b], int32(full[b][len(prompts[b])+done+i]))
					}
				}
				out, err := m.runStep(stepRequest{tokens: feed, pad: pad, slot: int32(slot), cache: cache, plan: plan})
				if err != nil {
					t.Fatal(err)
				}
				starts := []int{len(prompts[0]) + done, len(prompts[1]) + done}
				check(out, c, starts)
				slot += c
				done += c
			}
		})
	}
}

// firstPosFor maps step position tt of sequence b to its position in the
// sequence (-1 for padding). starts nil means the prefill step.
func firstPosFor(b, tt, T int, pad []int32, prompts [][]int, starts []int) int {
	if starts == nil {
		p := tt - int(pad[b])
		return p
	}
	return starts[b] + tt
}
