package engine

import (
	"context"
	"maps"
	"math/rand/v2"
	"testing"

	"tether/weights"
)

// TestCompilesOncePerBucket runs a persona-run-like workload (several
// batches of rollouts whose prompts differ in length) with XLA's coarse
// buckets and checks that each step shape is compiled once, during the
// first batch that reaches it, and never again.
func TestCompilesOncePerBucket(t *testing.T) {
	m, _ := loadTiny(t, weights.FamilyLlama)
	m.slowCompile = true // XLA's buckets: powers of two
	m.cfg.EOSTokenIDs = nil
	rng := rand.New(rand.NewPCG(3, 4))
	const batch, newTokens = 4, 10
	rollouts := func(minLen, maxLen int) {
		t.Helper()
		reqs := make([]Request, batch)
		for i := range reqs {
			reqs[i] = Request{Prompt: randomTokens(rng, minLen+rng.IntN(maxLen-minLen+1), m.cfg.VocabSize), MaxNewTokens: newTokens}
		}
		if _, err := m.Generate(context.Background(), reqs, GenerateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Warm-up: one batch in each prompt bucket. Prompts of 9-16 tokens pad
	// to 16, of 17-32 to 32; the cache holds prompt + 10 new + 1 slots,
	// at most 43, which rounds up to the 64 minimum.
	rollouts(9, 16)
	rollouts(17, 32)
	want := map[CompileBucket]int{
		{Batch: batch, Tokens: 16, CacheSlots: 64}: 1, // prefill, short prompts
		{Batch: batch, Tokens: 32, CacheSlots: 64}: 1, // prefill, long prompts
		{Batch: batch, Tokens: 1, CacheSlots: 64}:  1, // every decoding step
	}
	if got := m.CompileBuckets(); !maps.Equal(got, want) {
		t.Fatalf("after warm-up, graphs per bucket %v; want %v", got, want)
	}
	warm := m.Compilations()
	if warm != 3 {
		t.Errorf("Compilations() = %d after warm-up, want the 3 buckets' sum", warm)
	}
	for range 4 {
		rollouts(9, 16)
		rollouts(17, 32)
	}
	if got := m.Compilations(); got != warm {
		t.Errorf("the run compiled %d more graphs after warm-up: %v", got-warm, m.CompileBuckets())
	}
	// A longer prompt reaches a new bucket, compiled once.
	rollouts(40, 40)
	if got := m.CompileBuckets()[CompileBucket{Batch: batch, Tokens: 64, CacheSlots: 128}]; got != 1 {
		t.Errorf("a 40-token prompt: %d graphs for batch %d x tokens 64 x cache 128 (40 pads to 64, 64+10+1 slots round to 128), want 1; all: %v",
			got, batch, m.CompileBuckets())
	}
}

func TestSortedCompileBuckets(t *testing.T) {
	b := map[CompileBucket]int{{8, 1, 64}: 1, {1, 16, 64}: 1, {1, 1, 128}: 1, {1, 1, 64}: 2}
	got := SortedCompileBuckets(b)
	want := []CompileBucket{{1, 1, 64}, {1, 1, 128}, {1, 16, 64}, {8, 1, 64}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("sorted %v, want %v", got, want)
		}
	}
	if s := want[0].String(); s != "batch 1 x tokens 1 x cache 64" {
		t.Errorf("String() = %q", s)
	}
}
