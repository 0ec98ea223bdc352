package kernels

import (
	"sync"
	"testing"
	"time"
)

// TestWaitWordWakesSleepers checks that wait returns once the counter moves, for sleepers that
// went to sleep before the bump and for ones that arrive after it, and that it returns at once
// when the counter already differs.
func TestWaitWordWakesSleepers(t *testing.T) {
	var w waitWord
	const sleepers = 8
	var wg sync.WaitGroup
	woke := make(chan int, 2*sleepers)
	for i := range sleepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.wait(0)
			woke <- i
		}()
	}
	// Let them reach the sleep (a sleeper that has not yet slept must still see the bump).
	for deadline := time.Now().Add(5 * time.Second); w.sleepers.Load() < sleepers && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	select {
	case i := <-woke:
		t.Fatalf("sleeper %d returned before the counter moved", i)
	case <-time.After(20 * time.Millisecond):
	}
	w.bump()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%d of %d sleepers still asleep 10 s after the bump", sleepers-len(woke), sleepers)
	}
	if w.sleepers.Load() != 0 {
		t.Fatalf("sleepers = %d after all returned, want 0", w.sleepers.Load())
	}
	w.wait(0) // the counter is 1: returns at once
	if got := w.load(); got != 1 {
		t.Fatalf("counter = %d after one bump, want 1", got)
	}
}

// TestWaitWordManyRounds bumps the counter many times while a goroutine waits for each value in
// turn: no bump may be lost (a lost wake-up hangs the test, which fails after its deadline).
func TestWaitWordManyRounds(t *testing.T) {
	var ping, pong waitWord
	const rounds = 2000
	go func() {
		for r := uint32(0); r < rounds; r++ {
			ping.wait(r)
			pong.bump()
		}
	}()
	finished := make(chan struct{})
	go func() {
		for r := uint32(0); r < rounds; r++ {
			ping.bump()
			pong.wait(r)
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatalf("ping-pong stalled at round %d of %d: a wake-up was lost", pong.load(), rounds)
	}
}
