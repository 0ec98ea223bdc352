package engine

// Padded lengths are rounded to buckets so that few distinct shapes get
// compiled. Compiling is milliseconds on simplego, so its buckets are fine
// (less padding to compute); on XLA a compile takes seconds, so its buckets
// grow geometrically.
const (
	goPromptBucket = 8  // simplego: prompt length multiple
	goCacheBucket  = 64 // simplego: cache length multiple
)

// promptLength returns the padded prompt length for a longest prompt of n.
func (m *Model) promptLength(n int) int {
	return promptBucket(n, m.fineBuckets())
}

// promptBucket returns the padded prompt length for a longest prompt of n,
// with the fine buckets of a backend where compiling is cheap or the coarse
// ones of XLA.
func promptBucket(n int, fine bool) int {
	if fine {
		return roundUp(n, goPromptBucket)
	}
	if n > prefillChunk {
		return roundUp(n, prefillChunk)
	}
	return nextPow2(max(n, 8))
}

// cacheLength returns the cache length for n slots.
func (m *Model) cacheLength(n int) int {
	return cacheBucket(n, m.fineBuckets())
}

// cacheBucket returns the cache length for n slots, with fine or coarse
// buckets (see promptBucket).
func cacheBucket(n int, fine bool) int {
	if fine {
		return roundUp(n, goCacheBucket)
	}
	if n > 4096 {
		return roundUp(n, 1024)
	}
	return nextPow2(max(n, 64))
}

// fineBuckets reports whether compiling is cheap on the model's backend.
func (m *Model) fineBuckets() bool {
	return !m.slowCompile
}

// nextPow2 returns the smallest power of two >= n.
func nextPow2(n int) int {
	p := 1
	for p < n {
		p *= 2
	}
	return p
}

// roundUp rounds n up to a multiple of q.
func roundUp(n, q int) int {
	return (n + q - 1) / q * q
}
