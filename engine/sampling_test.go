package engine

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// randomLogits returns n logits drawn from a normal distribution with the given spread.
func randomLogits(seed uint64, n int, spread float64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * spread)
	}
	return out
}

// referenceProbabilities mirrors transformers' generate() step by step on a float64 copy, with
// removed tokens set to -Inf, and returns the final distribution (0 for removed tokens). It is
// written from the transformers semantics, independently of Sampler's shortcuts (no heap, no
// threshold search, full sorts, ascending cumulative sums).
func referenceProbabilities(logits []float32, history []int, p SamplingParams) []float64 {
	n := len(logits)
	scores := make([]float64, n)
	for i, v := range logits {
		scores[i] = float64(v)
		if math.IsNaN(scores[i]) {
			scores[i] = math.Inf(-1)
		}
	}
	if p.RepetitionPenalty != 0 && p.RepetitionPenalty != 1 {
		penalised := slices.Clone(scores)
		for _, id := range history {
			if s := scores[id]; s > 0 {
				penalised[id] = s / p.RepetitionPenalty
			} else {
				penalised[id] = s * p.RepetitionPenalty
			}
		}
		scores = penalised
	}
	for i := range scores {
		scores[i] /= p.Temperature
	}
	if p.TopK > 0 && p.TopK < n {
		sorted := slices.Clone(scores)
		sort.Sort(sort.Reverse(sort.Float64Slice(sorted)))
		kth := sorted[p.TopK-1]
		for i := range scores {
			if scores[i] < kth {
				scores[i] = math.Inf(-1)
			}
		}
	}
	if p.TopP > 0 && p.TopP < 1 {
		probs := softmax64(scores)
		ascending := make([]int, n)
		for i := range ascending {
			ascending[i] = i
		}
		sort.SliceStable(ascending, func(a, b int) bool { return probs[ascending[a]] < probs[ascending[b]] })
		cum := 0.0
		for rank, id := range ascending {
			cum += probs[id]
			if cum <= 1-p.TopP && rank < n-1 {
				scores[id] = math.Inf(-1)
			}
		}
	}
	if p.MinP > 0 {
		probs := softmax64(scores)
		top := slices.Max(probs)
		for i := range scores {
			if probs[i] < p.MinP*top {
				scores[i] = math.Inf(-1)
			}
		}
	}
	return softmax64(scores)
}

// softmax64 is a plain float64 softmax; -Inf scores get probability 0.
func softmax64(scores []float64) []float64 {
	top := slices.Max(scores)
	out := make([]float64, len(scores))
	total := 0.0
	for i, s := range scores {
		out[i] = math.Exp(s - top)
		total += out[i]
	}
	for i := range out {
		out[i] /= total
	}
	return out
}

// keptBySampler runs the sampler's filtering steps once and returns the surviving ids, sorted.
func keptBySampler(p SamplingParams, logits []float32, history []int) []int {
	s := NewSampler(p)
	w := s.penalized(logits, history)
	s.filter(w, w[argmax(w)])
	kept := make([]int, len(s.cand))
	for i, id := range s.cand {
		kept[i] = int(id)
	}
	slices.Sort(kept)
	return kept
}

// positiveIDs returns the ids with non-zero probability, sorted.
func positiveIDs(probs []float64) []int {
	var ids []int
	for i, q := range probs {
		if q > 0 {
			ids = append(ids, i)
		}
	}
	return ids
}

// chiSquare compares observed counts with the expected distribution over the ids where it is
// positive; it also reports how many draws fell on ids with expected probability 0.
func chiSquare(counts []int, probs []float64, draws int) (stat float64, df int, impossible int) {
	for id, q := range probs {
		if q == 0 {
			impossible += counts[id]
			continue
		}
		expected := q * float64(draws)
		d := float64(counts[id]) - expected
		stat += d * d / expected
		df++
	}
	return stat, df - 1, impossible
}

// chiSquareBound is a generous acceptance bound: the mean plus ten standard deviations.
func chiSquareBound(df int) float64 {
	return float64(df) + 10*math.Sqrt(2*float64(df)) + 10
}

func TestSamplingParamsValidate(t *testing.T) {
	cases := []struct {
		name    string
		params  SamplingParams
		wantErr bool
	}{
		{"zero value is greedy", SamplingParams{}, false},
		{"typical sampling", SamplingParams{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 3}, false},
		{"top-p one is off", SamplingParams{Temperature: 1, TopP: 1}, false},
		{"min-p one", SamplingParams{Temperature: 1, MinP: 1}, false},
		{"penalty below one", SamplingParams{RepetitionPenalty: 0.8}, false},
		{"negative temperature", SamplingParams{Temperature: -0.1}, true},
		{"NaN temperature", SamplingParams{Temperature: math.NaN()}, true},
		{"infinite temperature", SamplingParams{Temperature: math.Inf(1)}, true},
		{"negative top-k", SamplingParams{TopK: -1}, true},
		{"negative top-p", SamplingParams{TopP: -0.5}, true},
		{"top-p above one", SamplingParams{TopP: 1.5}, true},
		{"NaN top-p", SamplingParams{TopP: math.NaN()}, true},
		{"negative min-p", SamplingParams{MinP: -0.01}, true},
		{"min-p above one", SamplingParams{MinP: 2}, true},
		{"negative penalty", SamplingParams{RepetitionPenalty: -1}, true},
		{"infinite penalty", SamplingParams{RepetitionPenalty: math.Inf(1)}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.params.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestSamplerGreedy(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct {
		name   string
		logits []float32
		want   int
	}{
		{"single", []float32{-3}, 0},
		{"max in middle", []float32{0.5, 2.25, -1, 2.0}, 1},
		{"all negative", []float32{-5, -4, -4.5}, 1},
		{"tie goes to lowest id", []float32{1, 3, 0, 3}, 1},
		{"NaN ignored", []float32{1, nan, 0.5}, 0},
		{"NaN first ignored", []float32{nan, -7, -2}, 2},
		{"positive infinity wins", []float32{9, inf, 1e30}, 1},
		{"all negative infinity", []float32{-inf, -inf}, 0},
		{"all NaN", []float32{nan, nan, nan}, 0},
		{"empty", nil, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []SamplingParams{{}, {TopK: 1, TopP: 0.5, MinP: 0.5}} {
				if got := NewSampler(p).Sample(tc.logits, nil); got != tc.want {
					t.Errorf("params %+v: Sample = %d, want %d", p, got, tc.want)
				}
			}
		})
	}
}

func TestSamplerGreedyMatchesArgmaxOnLargeVocab(t *testing.T) {
	logits := randomLogits(7, 262144, 3)
	want, best := 0, math.Inf(-1)
	for i, v := range logits {
		if float64(v) > best {
			want, best = i, float64(v)
		}
	}
	if got := NewSampler(SamplingParams{}).Sample(logits, nil); got != want {
		t.Errorf("Sample = %d (logit %v), want argmax %d (logit %v)", got, logits[got], want, best)
	}
}

func TestRepetitionPenalty(t *testing.T) {
	cases := []struct {
		name    string
		logits  []float32
		history []int
		penalty float64
		want    []float32
	}{
		{"positive divided, negative multiplied, zero kept", []float32{2, -2, 0, 1}, []int{0, 1, 2}, 2, []float32{1, -4, 0, 1}},
		{"repeated id penalised once", []float32{3, 1}, []int{0, 0, 0}, 1.5, []float32{2, 1}},
		{"penalty below one rewards", []float32{1, -1}, []int{0, 1}, 0.5, []float32{2, -0.5}},
		{"ids outside vocabulary ignored", []float32{1, 1}, []int{-1, 2, 99}, 2, []float32{1, 1}},
		{"penalty one is off", []float32{4, -4}, []int{0, 1}, 1, []float32{4, -4}},
		{"infinity stays infinite", []float32{float32(math.Inf(1)), float32(math.Inf(-1))}, []int{0, 1}, 3, []float32{float32(math.Inf(1)), float32(math.Inf(-1))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			original := slices.Clone(tc.logits)
			got := NewSampler(SamplingParams{RepetitionPenalty: tc.penalty}).penalized(tc.logits, tc.history)
			if !slices.Equal(got, tc.want) {
				t.Errorf("penalised logits = %v, want %v", got, tc.want)
			}
			if !slices.Equal(tc.logits, original) {
				t.Errorf("input logits modified: %v, was %v", tc.logits, original)
			}
		})
	}
	// The penalty changes the greedy choice: 2/2 = 1 < 1.5.
	if got := NewSampler(SamplingParams{RepetitionPenalty: 2}).Sample([]float32{2, 1.5}, []int{0}); got != 1 {
		t.Errorf("greedy with penalty chose %d, want 1", got)
	}
}

// TestSamplingFrequenciesMatchSoftmax draws many tokens at several temperatures and compares the
// counts with softmax(logits/T) by a chi-square test.
func TestSamplingFrequenciesMatchSoftmax(t *testing.T) {
	logits := []float32{1.5, 0.2, -0.7, 2.1, 0, -2.5, 1.1, 0.9}
	const draws = 100000
	for _, temp := range []float64{0.5, 1, 2} {
		p := SamplingParams{Temperature: temp, Seed: 42}
		probs := referenceProbabilities(logits, nil, p)
		s := NewSampler(p)
		counts := make([]int, len(logits))
		for range draws {
			counts[s.Sample(logits, nil)]++
		}
		stat, df, impossible := chiSquare(counts, probs, draws)
		if impossible != 0 || stat > chiSquareBound(df) {
			t.Errorf("T=%v: chi-square %.1f with %d df (bound %.1f), %d impossible draws; counts %v, probabilities %v",
				temp, stat, df, chiSquareBound(df), impossible, counts, probs)
		}
	}
}

// TestFilteredSamplingFrequencies checks that draws follow the renormalised distribution of the
// tokens that survive every filter, and never land outside them.
func TestFilteredSamplingFrequencies(t *testing.T) {
	logits := randomLogits(11, 64, 1.5)
	history := []int{3, 5, 8, 13}
	cases := []SamplingParams{
		{Temperature: 1.3, TopK: 6, Seed: 1},
		{Temperature: 0.8, TopP: 0.7, Seed: 2},
		{Temperature: 1, MinP: 0.2, Seed: 3},
		{Temperature: 0.7, TopK: 20, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.3, Seed: 4},
	}
	const draws = 60000
	for _, p := range cases {
		probs := referenceProbabilities(logits, history, p)
		s := NewSampler(p)
		counts := make([]int, len(logits))
		for range draws {
			counts[s.Sample(logits, history)]++
		}
		stat, df, impossible := chiSquare(counts, probs, draws)
		if impossible != 0 || stat > chiSquareBound(df) {
			t.Errorf("%+v: chi-square %.1f with %d df (bound %.1f), %d draws outside the kept set",
				p, stat, df, chiSquareBound(df), impossible)
		}
	}
}

// TestKeptSetsMatchReference compares the exact set of surviving tokens with the reference on
// vocabularies small and large (the large ones take the threshold path of top-p).
func TestKeptSetsMatchReference(t *testing.T) {
	type vocab struct {
		size   int
		spread float64
	}
	vocabs := []vocab{{50, 1}, {1000, 2}, {32000, 1}, {32000, 3}, {50000, 6}, {151936, 0.5}}
	params := []SamplingParams{
		{Temperature: 1, TopK: 1},
		{Temperature: 1, TopK: 40},
		{Temperature: 0.6, TopK: 500},
		{Temperature: 1, TopP: 0.9},
		{Temperature: 0.7, TopP: 0.95},
		{Temperature: 1.5, TopP: 0.5},
		{Temperature: 1, TopP: 0.999},
		{Temperature: 1, MinP: 0.1},
		{Temperature: 0.5, MinP: 0.01},
		{Temperature: 0.7, TopK: 50, TopP: 0.9, MinP: 0.05},
		{Temperature: 1.2, TopP: 0.8, MinP: 0.02, RepetitionPenalty: 1.2},
	}
	for _, v := range vocabs {
		logits := randomLogits(uint64(v.size), v.size, v.spread)
		history := []int{0, 1, 2, v.size / 2, v.size - 1}
		for _, p := range params {
			want := positiveIDs(referenceProbabilities(logits, history, p))
			got := keptBySampler(p, logits, history)
			if !slices.Equal(got, want) {
				t.Errorf("vocab %d spread %v, %+v: sampler keeps %d tokens, reference %d",
					v.size, v.spread, p, len(got), len(want))
			}
			if p.TopK > 0 && len(got) > p.TopK {
				t.Errorf("vocab %d, top-k %d kept %d tokens", v.size, p.TopK, len(got))
			}
		}
	}
}

// TestTopKNeverLeavesTheKBest draws at a high temperature, where the tail would often be chosen
// without top-k, and checks every draw is among the k highest logits.
func TestTopKNeverLeavesTheKBest(t *testing.T) {
	logits := randomLogits(5, 5000, 1)
	const k = 10
	order := make([]int, len(logits))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return logits[order[a]] > logits[order[b]] })
	best := map[int]bool{}
	for _, id := range order[:k] {
		best[id] = true
	}
	s := NewSampler(SamplingParams{Temperature: 10, TopK: k, Seed: 9})
	seen := map[int]bool{}
	for range 5000 {
		id := s.Sample(logits, nil)
		if !best[id] {
			t.Fatalf("drew %d (logit %v), not among the %d best", id, logits[id], k)
		}
		seen[id] = true
	}
	if len(seen) != k {
		t.Errorf("drew %d distinct tokens at T=10, want all %d", len(seen), k)
	}
}

func TestTopKKeepsTiesWithKth(t *testing.T) {
	logits := []float32{5, 3, 3, 3, 1}
	got := keptBySampler(SamplingParams{Temperature: 1, TopK: 2}, logits, nil)
	if want := []int{0, 1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("top-2 kept %v, want %v (ties with the 2nd value are kept)", got, want)
	}
}

func TestSeedDeterminism(t *testing.T) {
	logits := randomLogits(3, 1000, 0.5)
	run := func(seed uint64) []int {
		s := NewSampler(SamplingParams{Temperature: 1, TopP: 0.95, Seed: seed})
		out := make([]int, 50)
		for i := range out {
			out[i] = s.Sample(logits, out[:i])
		}
		return out
	}
	a, b, c := run(1), run(1), run(2)
	if !slices.Equal(a, b) {
		t.Errorf("same seed gave different sequences:\n%v\n%v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 1 and 2 gave the same sequence %v", a)
	}
}

func TestNonFiniteLogits(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	sampling := SamplingParams{Temperature: 1, Seed: 5}

	t.Run("NaN never drawn", func(t *testing.T) {
		logits := []float32{nan, 0, nan, 0.5, nan}
		s := NewSampler(sampling)
		for range 2000 {
			if id := s.Sample(logits, nil); id != 1 && id != 3 {
				t.Fatalf("drew %d, a NaN logit", id)
			}
		}
	})
	t.Run("positive infinity drawn uniformly among infinities", func(t *testing.T) {
		logits := []float32{100, inf, 3, inf, nan}
		s := NewSampler(sampling)
		counts := map[int]int{}
		for range 2000 {
			counts[s.Sample(logits, nil)]++
		}
		if counts[1]+counts[3] != 2000 || counts[1] < 800 || counts[3] < 800 {
			t.Errorf("counts %v, want only ids 1 and 3, about evenly", counts)
		}
	})
	t.Run("negative infinity never drawn", func(t *testing.T) {
		logits := []float32{-inf, -50, -inf}
		s := NewSampler(SamplingParams{Temperature: 100, Seed: 1})
		for range 1000 {
			if id := s.Sample(logits, nil); id != 1 {
				t.Fatalf("drew %d, want 1", id)
			}
		}
	})
	t.Run("all NaN or -Inf gives 0", func(t *testing.T) {
		for _, logits := range [][]float32{{nan, nan}, {-inf, -inf, -inf}, {nan, -inf}} {
			if id := NewSampler(sampling).Sample(logits, nil); id != 0 {
				t.Errorf("Sample(%v) = %d, want 0", logits, id)
			}
		}
	})
	t.Run("empty gives -1", func(t *testing.T) {
		if id := NewSampler(sampling).Sample(nil, []int{1, 2}); id != -1 {
			t.Errorf("Sample(nil) = %d, want -1", id)
		}
	})
	t.Run("extreme finite logits do not overflow", func(t *testing.T) {
		logits := []float32{3e38, -3e38, 2.9e38}
		s := NewSampler(SamplingParams{Temperature: 0.01, TopP: 0.9, MinP: 0.1, Seed: 1})
		if id := s.Sample(logits, nil); id != 0 {
			t.Errorf("Sample = %d, want 0", id)
		}
	})
}

// BenchmarkSample measures one draw over a Gemma-sized vocabulary (262144) for each filter mix.
func BenchmarkSample(b *testing.B) {
	logits := randomLogits(1, 262144, 3)
	history := make([]int, 512)
	for i := range history {
		history[i] = i * 97
	}
	cases := []struct {
		name   string
		params SamplingParams
	}{
		{"greedy", SamplingParams{}},
		{"temperature", SamplingParams{Temperature: 0.7}},
		{"top-k 50", SamplingParams{Temperature: 0.7, TopK: 50}},
		{"top-p 0.9", SamplingParams{Temperature: 0.7, TopP: 0.9}},
		{"min-p 0.05", SamplingParams{Temperature: 0.7, MinP: 0.05}},
		{"paper T0.7 top-p 0.9", SamplingParams{Temperature: 0.7, TopP: 0.9, RepetitionPenalty: 1.1}},
		{"top-k 40 top-p 0.95 min-p", SamplingParams{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.05}},
		{"flat top-p 0.9", SamplingParams{Temperature: 5, TopP: 0.9}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s := NewSampler(c.params)
			for b.Loop() {
				s.Sample(logits, history)
			}
		})
	}
}

func TestTopPTiesGoToLowestIDs(t *testing.T) {
	cases := []struct {
		name   string
		logits []float32
		topP   float64
		want   []int
	}{
		{"four equal, half the mass", []float32{1, 1, 1, 1}, 0.5, []int{0, 1}},
		{"four equal, just over half", []float32{1, 1, 1, 1}, 0.51, []int{0, 1, 2}},
		{"tie below the top", []float32{0, 5, 0, 0}, 0.999999, []int{0, 1, 2, 3}},
		{"top alone", []float32{0, 50, 0, 0}, 0.9, []int{1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := keptBySampler(SamplingParams{Temperature: 1, TopP: tc.topP}, tc.logits, nil)
			if !slices.Equal(got, tc.want) {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSelectTopMassMatchesSort checks the quickselect against a full sort on inputs with many
// tied weights.
func TestSelectTopMassMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for trial := range 300 {
		n := 1 + r.IntN(300)
		levels := 1 + r.IntN(6)
		items := make([]weightedID, n)
		for i := range items {
			items[i] = weightedID{id: int32(i), weight: float64(1 + r.IntN(levels))}
		}
		total := 0.0
		for _, c := range items {
			total += c.weight
		}
		target := total * r.Float64()
		sorted := slices.Clone(items)
		sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].weight > sorted[b].weight })
		var want []int
		before := 0.0
		for _, c := range sorted {
			if before >= target && len(want) > 0 {
				break
			}
			want = append(want, int(c.id))
			before += c.weight
		}
		r.Shuffle(n, func(a, b int) { items[a], items[b] = items[b], items[a] })
		kept := selectTopMass(items, target)
		got := make([]int, kept)
		for i, c := range items[:kept] {
			got[i] = int(c.id)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n=%d, target %.2f of %.0f): kept %v, want %v", trial, n, target, total, got, want)
		}
	}
}
