package engine

import (
	"context"
	"math/rand/v2"
	"testing"
)

// flatten concatenates rows.
func flatten(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// TestForwardMatchesReference compares the graph's logits and every block's
// output with the plain-Go reference, for every family, on a batch of
// sequences of different lengths (longer than the sliding windows).
func TestForwardMatchesReference(t *testing.T) {
	const tol = 1e-4
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m, src := loadTiny(t, fam)
			ref := &refModel{cfg: m.Config(), src: src}
			rng := rand.New(rand.NewPCG(1, 2))
			seqs := [][]int{randomTokens(rng, 11, m.cfg.VocabSize), randomTokens(rng, 6, m.cfg.VocabSize), randomTokens(rng, 1, m.cfg.VocabSize)}
			layers := []int{0, 1, 2}
			res, err := m.Forward(context.Background(), seqs, ForwardOptions{AllLogits: true, CaptureLayers: layers})
			if err != nil {
				t.Fatal(err)
			}
			for b, seq := range seqs {
				wantLogits, wantHidden := ref.forward(seq, nil)
				if d := maxRelDiff(flatten(res.AllLogits[b]), toF32(wantLogits)); d > tol {
					t.Errorf("seq %d: logits differ from reference: max rel diff %g", b, d)
				}
				for _, l := range layers {
					if d := maxRelDiff(flatten(res.Captured[l][b]), toF32(wantHidden[l])); d > tol {
						t.Errorf("seq %d layer %d: hidden state differs from reference: max rel diff %g", b, l, d)
					}
				}
			}
		})
	}
}
