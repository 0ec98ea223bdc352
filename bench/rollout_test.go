package bench

import (
	"path/filepath"
	"testing"

	"tether/model"
	"tether/models"
	"tether/tokenizer"
	"tether/weights"
)

// TestRolloutThroughputStories: the benchmark runs on the bundled real model at batch 1 and 2
// and reports positive rates; extraction covers at least prompt plus response tokens.
func TestRolloutThroughputStories(t *testing.T) {
	dir := t.TempDir()
	ckpt, tok, err := models.ExtractStories260K(filepath.Join(dir, "src"))
	if err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(dir, "hf")
	if err := weights.ConvertLlama2c(ckpt, hf); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.ConvertLlama2cTokenizer(tok, hf); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(hf, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
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
