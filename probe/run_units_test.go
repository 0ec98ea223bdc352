package probe

import (
	"math"
	"slices"
	"testing"
)

// TestRolloutIndependentOfBatch checks the claim sharding rests on: what a rollout generates
// (its tokens) and the activations captured over it (bit for bit) depend only on its spec, not on
// which rollouts share its Generate and Capture calls. Each rollout of a plan whose prompts
// differ in length (so that batches left-pad) is run alone, and in batches of 3 and of 8 that
// mix it with others; the results must be identical.
func TestRolloutIndependentOfBatch(t *testing.T) {
	m := openTiny(t, 21, "")
	plan := PlanRollouts(tinyDataset(), "Tiny", 2, 11)
	type out struct {
		tokens []int
		mean   [][]float32
	}
	runBatches := func(size int) []out {
		p := NewPrompter(m)
		res := make([]out, 0, len(plan))
		for b := 0; b < len(plan); b += size {
			batch := plan[b:min(b+size, len(plan))]
			gen, err := GenerateRollouts(t.Context(), m, p, batch, 6, true)
			if err != nil {
				t.Fatal(err)
			}
			spans := make([]Span, len(batch))
			for i := range batch {
				spans[i] = ResponseSpan(gen[i].Prompt, gen[i].Tokens)
			}
			acts, err := Capture(t.Context(), m.Engine, spans, CaptureOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range batch {
				res = append(res, out{gen[i].Tokens, acts.Mean[i]})
			}
		}
		return res
	}
	alone := runBatches(1)
	// The plan's prompts must differ in length, or no batch pads.
	p := NewPrompter(m)
	lengths := map[int]bool{}
	for _, s := range plan {
		ids, err := p.Prompt(s.System, s.Question)
		if err != nil {
			t.Fatal(err)
		}
		lengths[len(ids)] = true
	}
	if len(lengths) < 2 {
		t.Fatalf("all %d prompts have one length: the test would not exercise padding", len(plan))
	}
	for _, size := range []int{3, 8} {
		got := runBatches(size)
		for i, s := range plan {
			if !slices.Equal(got[i].tokens, alone[i].tokens) {
				t.Errorf("batch %d: rollout %s generated %v, alone %v", size, s.ID, got[i].tokens, alone[i].tokens)
				continue
			}
			worst := 0.0
			for l := range got[i].mean {
				for j, v := range got[i].mean[l] {
					w := alone[i].mean[l][j]
					if math.Float32bits(v) != math.Float32bits(w) {
						worst = max(worst, math.Abs(float64(v-w)))
					}
				}
			}
			if worst != 0 || len(got[i].mean) != len(alone[i].mean) {
				t.Errorf("batch %d: rollout %s: activations differ from the rollout run alone (largest difference %g)", size, s.ID, worst)
			}
		}
	}
}
