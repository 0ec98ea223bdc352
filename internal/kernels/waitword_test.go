package kernels

import (
	"sync"
	"testing"
	"time"
)

// TestWaitWordWakesSleepers checks that wait returns once the counter moves, for sleepers in the
// kernel and on the sync.Cond that went to sleep before the bump, and that it returns at once
// when the counter already differs.
func TestWaitWordWakesSleepers(t *testing.T) {
	var w waitWord
	const sleepers = 8
	var wg sync.WaitGroup
	woke := make(chan int, sleepers)
	for i := range sleepers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.wait(0, i%2 == 0) // half in the kernel, half on the sync.Cond
			woke <- i
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); w.kernelSleepers.Load()+w.condSleepers.Load() < sleepers && time.Now().Before(deadline); {
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
	if k, c := w.kernelSleepers.Load(), w.condSleepers.Load(); k != 0 || c != 0 {
		t.Fatalf("sleepers: %d in the kernel, %d on the cond after all returned, want 0", k, c)
	}
	w.wait(0, true) // the counter is 1: both return at once
	w.wait(0, false)
	if got := w.load(); got != 1 {
		t.Fatalf("counter = %d after one bump, want 1", got)
	}
}

// TestWaitWordManyRounds bumps the counter many times while a goroutine waits for each value in
// turn, sleeping in the kernel, on the sync.Cond, or alternating: no bump may be lost (a lost
// wake-up hangs the test, which fails after its deadline).
func TestWaitWordManyRounds(t *testing.T) {
	for _, mode := range []string{"kernel", "cond", "alternating"} {
		t.Run(mode, func(t *testing.T) {
			inKernel := func(r uint32) bool { return mode == "kernel" || (mode == "alternating" && r%2 == 0) }
			var ping, pong waitWord
			const rounds = 2000
			go func() {
				for r := uint32(0); r < rounds; r++ {
					ping.wait(r, inKernel(r))
					pong.bump()
				}
			}()
			finished := make(chan struct{})
			go func() {
				for r := uint32(0); r < rounds; r++ {
					ping.bump()
					pong.wait(r, inKernel(r+1))
				}
				close(finished)
			}()
			select {
			case <-finished:
			case <-time.After(30 * time.Second):
				t.Fatalf("ping-pong stalled at round %d of %d: a wake-up was lost", pong.load(), rounds)
			}
		})
	}
}
