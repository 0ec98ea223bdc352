package kernels

import (
	"sync/atomic"
	"testing"
	"time"
)

// waitFor fails the test when ch is not closed within a generous bound (a hang is the bug).
func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: not within 20s", what)
	}
}

func TestBackgroundRunsOnIdleWorker(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	ran := make(chan struct{})
	bg := NewBackground(func(stop func() bool) { close(ran) })
	p.Post(bg)
	waitFor(t, ran, "posted background work ran")
	bg.Cancel() // after it ran: returns at once
}

func TestBackgroundYieldsToParallel(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	started, returned := make(chan struct{}), make(chan struct{})
	var sawStop atomic.Bool
	bg := NewBackground(func(stop func() bool) {
		close(started)
		for !stop() {
		}
		sawStop.Store(true)
		close(returned)
	})
	p.Post(bg)
	waitFor(t, started, "background work started")
	// A Parallel call must make stop report true, so the worker comes back to help.
	const n = 64
	var hits [n]atomic.Int32
	p.Parallel(n, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
	})
	for i := range hits {
		if hits[i].Load() != 1 {
			t.Fatalf("index %d covered %d times", i, hits[i].Load())
		}
	}
	waitFor(t, returned, "background work returned after Parallel")
	if !sawStop.Load() {
		t.Fatal("background work returned without stop reporting true")
	}
	bg.Cancel()
}

func TestBackgroundCancelWaitsForRunningWork(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	started := make(chan struct{})
	var finished atomic.Bool
	bg := NewBackground(func(stop func() bool) {
		close(started)
		for !stop() {
		}
		time.Sleep(time.Millisecond) // still reading after stop: Cancel must wait for this
		finished.Store(true)
	})
	p.Post(bg)
	waitFor(t, started, "background work started")
	bg.Cancel()
	if !finished.Load() {
		t.Fatal("Cancel returned while the background work was still running")
	}
}

func TestBackgroundNeverRunsWithoutWorkers(t *testing.T) {
	p := NewPool(1) // the caller only: nobody to run background work
	defer p.Close()
	var ran atomic.Bool
	bg := NewBackground(func(stop func() bool) { ran.Store(true) })
	p.Post(bg)
	bg.Cancel()
	time.Sleep(5 * time.Millisecond)
	if ran.Load() {
		t.Fatal("background work ran on a pool without workers")
	}
}

func TestBackgroundCancelledBeforeStartNeverRuns(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	// Keep the only worker busy in a first piece of work, so the second stays queued.
	busy, release := make(chan struct{}), make(chan struct{})
	first := NewBackground(func(stop func() bool) {
		close(busy)
		<-release
	})
	p.Post(first)
	waitFor(t, busy, "first background work started")
	var ran atomic.Bool
	second := NewBackground(func(stop func() bool) { ran.Store(true) })
	p.Post(second)
	second.Cancel() // queued: cancelled without waiting
	close(release)
	first.Cancel()
	// Give the worker the chance to look for more work.
	p.Parallel(8, func(lo, hi int) {})
	time.Sleep(5 * time.Millisecond)
	if ran.Load() {
		t.Fatal("background work cancelled before it started ran anyway")
	}
}

func TestTouch(t *testing.T) {
	b := make([]byte, 3*touchChunk+100) // not a multiple of the chunk or of a cache line
	if got := Touch(b, func() bool { return false }); got != len(b) {
		t.Errorf("Touch read %d bytes, want all %d", got, len(b))
	}
	if got := Touch(b, func() bool { return true }); got != 0 {
		t.Errorf("Touch with stop already true read %d bytes, want 0", got)
	}
	calls := 0
	got := Touch(b, func() bool { calls++; return calls > 2 })
	if got != 2*touchChunk {
		t.Errorf("Touch stopped at the third look read %d bytes, want %d", got, 2*touchChunk)
	}
	if got := Touch(nil, func() bool { return false }); got != 0 {
		t.Errorf("Touch(nil) = %d", got)
	}
}
