package engine

import (
	"fmt"
	"maps"
	"slices"
)

// CompileBucket is the shape of a step graph: lengths are padded to buckets
// (see promptLength and cacheLength), so a workload compiles one graph per
// bucket it reaches (and per hook structure), never one per prompt.
type CompileBucket struct {
	// Batch is the number of sequences in the step.
	Batch int
	// Tokens is the padded number of positions per sequence: the padded
	// prompt length for a prefill step, 1 for a decoding step.
	Tokens int
	// CacheSlots is the KV cache length per sequence.
	CacheSlots int
}

// String is "batch B x tokens T x cache S".
func (b CompileBucket) String() string {
	return fmt.Sprintf("batch %d x tokens %d x cache %d", b.Batch, b.Tokens, b.CacheSlots)
}

// noteCompiles records that n step graphs were built for a step of batch
// sequences of tokens positions over slots cache positions. Callers hold m.mu.
func (m *Model) noteCompiles(n int64, batch, tokens, slots int) {
	if n <= 0 {
		return
	}
	if m.buckets == nil {
		m.buckets = map[CompileBucket]int{}
	}
	m.buckets[CompileBucket{Batch: batch, Tokens: tokens, CacheSlots: slots}] += int(n)
}

// CompileBuckets returns how many step graphs the model has built for each
// step shape so far (a bucket appears once per hook structure used with
// it), in a fresh map. Compilations is their sum.
func (m *Model) CompileBuckets() map[CompileBucket]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.buckets)
}

// SortedCompileBuckets returns the keys of buckets ordered by batch, then
// tokens, then cache slots (for reports).
func SortedCompileBuckets(buckets map[CompileBucket]int) []CompileBucket {
	return slices.SortedFunc(maps.Keys(buckets), func(a, b CompileBucket) int {
		if a.Batch != b.Batch {
			return a.Batch - b.Batch
		}
		if a.Tokens != b.Tokens {
			return a.Tokens - b.Tokens
		}
		return a.CacheSlots - b.CacheSlots
	})
}
