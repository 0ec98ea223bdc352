package testmodels

import (
	"testing"

	"tether/weights"
)

// TestLlamaJSON: the rendered config.json parses, through the weights
// package's own parser, to the fields it was built from.
func TestLlamaJSON(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Llama
		wantTheta float64
	}{
		{"tiny chat", TinyChat, 10000},
		{"other rope theta", Llama{Hidden: 64, Intermediate: 128, Layers: 6, Heads: 4, KVHeads: 2, Vocab: 300,
			MaxPositions: 256, BOS: 1, EOS: 2, RopeTheta: 20000}, 20000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := weights.ParseConfig(tc.cfg.JSON(), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			c := tc.cfg
			if got.HiddenSize != c.Hidden || got.IntermediateSize != c.Intermediate || got.NumLayers != c.Layers ||
				got.NumHeads != c.Heads || got.NumKVHeads != c.KVHeads || got.VocabSize != c.Vocab ||
				got.MaxPositions != c.MaxPositions || got.RopeTheta != tc.wantTheta ||
				got.BOSTokenID != c.BOS || len(got.EOSTokenIDs) != 1 || got.EOSTokenIDs[0] != c.EOS {
				t.Fatalf("parsed %+v from %+v", got, c)
			}
		})
	}
}
