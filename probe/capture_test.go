package probe

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"tether/internal/testmodels"
)

// captureSpans makes sequences of different lengths and spans from a fixed random source.
func captureSpans(vocab int) []Span {
	rng := rand.New(rand.NewPCG(3, 4))
	var out []Span
	for _, n := range []int{5, 17, 9, 12} {
		toks := make([]int, n)
		for i := range toks {
			toks[i] = rng.IntN(vocab - 3)
		}
		start := rng.IntN(n / 2)
		out = append(out, Span{Tokens: toks, Start: start, End: n - rng.IntN(2)})
	}
	out = append(out, Span{Tokens: []int{1, 2, 3}, Start: 2, End: 2}) // empty span
	return out
}

// TestCaptureMatchesForward: the batched means equal the mean of the hidden states of the
// engine's Forward on each sequence alone, computed here; per-token capture holds the same
// states; a byte bound small enough to split sequences and layers gives the same numbers.
func TestCaptureMatchesForward(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stories bool
	}{{"random chat model", false}, {"stories260K", true}} {
		t.Run(tc.name, func(t *testing.T) {
			m := openTiny(t, 2, "")
			if tc.stories {
				m = testmodels.Open(t, testmodels.Stories260K(t))
			}
			spans := captureSpans(m.Config.VocabSize)
			L, H := m.Config.NumLayers, m.Config.HiddenSize
			all, err := Capture(t.Context(), m.Engine, spans, CaptureOptions{})
			if err != nil {
				t.Fatal(err)
			}
			layers := []int{L - 1, 0}
			perTok, err := Capture(t.Context(), m.Engine, spans, CaptureOptions{Layers: layers, PerToken: true})
			if err != nil {
				t.Fatal(err)
			}
			// Room for 24 positions of one layer: sequences run one by one, the longest one layer at a time.
			small, err := Capture(t.Context(), m.Engine, spans, CaptureOptions{MaxBytes: int64(24 * H * 4)})
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range spans {
				if all.Count[i] != s.Len() {
					t.Fatalf("seq %d: count %d, want %d", i, all.Count[i], s.Len())
				}
				for l := 0; l < L; l++ {
					want := forwardMean(t, m, s.Tokens, s.Start, s.End, l)
					assertClose(t, "mean", i, l, all.Mean[i][l], want)
					assertClose(t, "mean with a small byte bound", i, l, small.Mean[i][l], want)
				}
				for li, l := range layers {
					rows := perTok.Tokens[i][li]
					if len(rows) != s.Len() {
						t.Fatalf("seq %d layer %d: %d token rows, want %d", i, l, len(rows), s.Len())
					}
					for p, row := range rows {
						want := forwardMean(t, m, s.Tokens, s.Start+p, s.Start+p+1, l)
						assertClose(t, "token", i, l, row, want)
					}
				}
			}
		})
	}
}

func assertClose(t *testing.T, what string, seq, layer int, got []float32, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s seq %d layer %d: width %d, want %d", what, seq, layer, len(got), len(want))
	}
	for j := range got {
		if d := math.Abs(float64(got[j]) - want[j]); d > 1e-4*(1+math.Abs(want[j])) {
			t.Fatalf("%s seq %d layer %d [%d]: %g, Forward alone gives %g", what, seq, layer, j, got[j], want[j])
		}
	}
}

// TestCaptureErrors: bad layers and spans are errors that say what was wrong.
func TestCaptureErrors(t *testing.T) {
	m := openTiny(t, 2, "")
	ok := []Span{{Tokens: []int{1, 2, 3}, Start: 0, End: 3}}
	for _, tc := range []struct {
		name   string
		spans  []Span
		layers []int
		want   string
	}{
		{"layer too high", ok, []int{3}, "layer 3 out of range"},
		{"negative layer", ok, []int{-1}, "layer -1 out of range"},
		{"duplicate layer", ok, []int{1, 1}, "listed twice"},
		{"no layers", ok, []int{}, "no layers"},
		{"empty sequence", []Span{{}}, nil, "sequence 0 is empty"},
		{"span past the end", []Span{{Tokens: []int{1, 2}, Start: 1, End: 3}}, nil, "outside its 2 tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Capture(t.Context(), m.Engine, tc.spans, CaptureOptions{Layers: tc.layers})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
