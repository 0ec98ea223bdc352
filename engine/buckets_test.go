package engine

import "testing"

func TestBuckets(t *testing.T) {
	cases := []struct {
		slow               bool
		prompt, wantPrompt int
		slots, wantSlots   int
	}{
		{false, 1, 8, 1, 64},
		{false, 9, 16, 65, 128},
		{false, 600, 600, 700, 704},
		{true, 1, 8, 1, 64},
		{true, 9, 16, 65, 128},
		{true, 300, 512, 3000, 4096},
		{true, 600, 1024, 5000, 5120},
	}
	for _, c := range cases {
		m := &Model{slowCompile: c.slow}
		if got := m.promptLength(c.prompt); got != c.wantPrompt || got < c.prompt {
			t.Errorf("slow=%v: promptLength(%d) = %d, expected %d", c.slow, c.prompt, got, c.wantPrompt)
		}
		if got := m.cacheLength(c.slots); got != c.wantSlots || got < c.slots {
			t.Errorf("slow=%v: cacheLength(%d) = %d, expected %d", c.slow, c.slots, got, c.wantSlots)
		}
	}
}

func TestSplitFor(t *testing.T) {
	cases := []struct{ workers, rows, want int }{
		{2, 49152, 12}, // SmolLM2 lm_head: 12 blocks of 4096 rows
		{2, 960, 2},
		{2, 576, 2},
		{2, 7, 1},
		{1, 49152, 1},
		{3, 8, 2},
		{4, 262144, 64},
	}
	for _, c := range cases {
		m := &Model{split: c.workers}
		got := m.splitFor(c.rows)
		if got != c.want || c.rows%got != 0 {
			t.Errorf("splitFor(%d) with %d workers = %d, expected %d", c.rows, c.workers, got, c.want)
		}
	}
}
