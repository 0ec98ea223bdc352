package bench

import (
	"path/filepath"
	"slices"
	"testing"

	"tether/internal/testmodels"
)

// TestSteerOverhead: on a 10-layer model the default caps are the 8 layers centred in it
// (1..8), every variant decodes, and the ratios are the rates' quotients.
func TestSteerOverhead(t *testing.T) {
	cfg := testmodels.Llama{Hidden: 32, Intermediate: 64, Layers: 10, Heads: 4, KVHeads: 2, Vocab: 300,
		MaxPositions: 64, BOS: 1, EOS: 2}
	m := testmodels.Open(t, testmodels.Write(t, filepath.Join(t.TempDir(), "m"), cfg, 3))
	r, err := SteerOverhead(t.Context(), m.Engine, SteerOptions{PromptTokens: 4, DecodeTokens: 4, Repeats: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Layers, []int{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("capped layers %v, want the 8 centred layers 1..8", r.Layers)
	}
	if r.BaselineTPS <= 0 || r.CappedTPS <= 0 || r.CappedRecordTPS <= 0 {
		t.Fatalf("rates %+v, want every variant to decode", r)
	}
	if r.Ratio != r.CappedTPS/r.BaselineTPS || r.RecordRatio != r.CappedRecordTPS/r.BaselineTPS {
		t.Fatalf("ratios %+v are not the rates' quotients", r)
	}
}
