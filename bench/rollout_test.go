package bench

import (
	"testing"

	"tether/internal/testmodels"
	"tether/model"
)

// TestRolloutThroughputStories: the benchmark runs on the bundled real model at batch 1 and 2
// and reports positive rates; extraction covers at least prompt plus response tokens.
func TestRolloutThroughputStories(t *testing.T) {
	m := testmodels.OpenWith(t, testmodels.Stories260K(t), model.Options{})
	r, err := RolloutThroughput(t.Context(), m, RolloutBenchOptions{Batches: []int{1, 2}, MaxNewTokens: 4, Repeats: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rows) != 2 || r.Layers != 5 || r.HiddenSize != 64 {
		t.Fatalf("report %+v", r)
	}
	for _, row := range r.Rows {
		if row.RolloutTPS <= 0 || row.ExtractTPS <= 0 || row.ExtractTokens < 2*5 {
			t.Fatalf("row %+v", row)
		}
	}
	if _, err := RolloutThroughput(t.Context(), m, RolloutBenchOptions{Batches: []int{0}}); err == nil {
		t.Fatal("batch 0: no error")
	}
}
