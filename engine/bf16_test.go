package engine

import (
	"context"
	"math/rand/v2"
	"testing"
)

// TestBFloat16Weights loads each family with bfloat16 matrices and checks
// that its logits stay within bfloat16 precision of the float32 model (and
// are not identical, so bfloat16 was really used).
func TestBFloat16Weights(t *testing.T) {
	ctx := context.Background()
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m32, src := loadTiny(t, fam)
			be := testBackend(t)
			m16, err := LoadWithOptions(be, m32.Config(), src, LoadOptions{WeightDType: "bfloat16"})
			if err != nil {
				t.Fatal(err)
			}
			defer m16.Close()
			rng := rand.New(rand.NewPCG(11, 12))
			seqs := [][]int{randomTokens(rng, 10, m32.cfg.VocabSize), randomTokens(rng, 3, m32.cfg.VocabSize)}
			a, err := m32.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			b, err := m16.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := range seqs {
				d := maxRelDiff(flatten(b.AllLogits[i]), flatten(a.AllLogits[i]))
				t.Logf("seq %d: max rel diff %g", i, d)
				if d > 5e-2 || d == 0 {
					t.Errorf("seq %d: bfloat16 logits differ from float32 by %g, expected within (0, 5e-2]", i, d)
				}
			}
		})
	}
	be := testBackend(t)
	cfg := tinyConfig("llama")
	if _, err := LoadWithOptions(be, cfg, randomSource(cfg, 1), LoadOptions{WeightDType: "int4"}); err == nil {
		t.Errorf("expected an error for an unknown weight dtype")
	}
}
