package kernels

import (
	"sync"
	"sync/atomic"
)

// waitWord is a 32-bit counter that goroutines can sleep on until it moves: the pool's epoch
// (workers sleep until work is published) and a job's completion (its caller sleeps until the
// last chunk is done).
//
// A sleeper sleeps one of two ways. In the kernel (Linux's futex system call): a bump wakes the
// sleeping thread directly. On a sync.Cond: the Go scheduler readies the goroutine on the
// waker's run queue, where it runs once that thread yields or another thread steals it. On this
// project's 2-core VM a futex wake took a median 16 µs against 94 µs for the Go scheduler's
// (shorter than most decode products against longer), but with more runnable threads than CPUs
// the Go scheduler's way was faster: the woken goroutine runs on the thread that already has a
// CPU instead of waiting for the kernel to give its own thread one (docs/cpu-backend.md). The
// pool chooses per sleep (Pool.sleepInKernel).
type waitWord struct {
	v              uint32       // the counter, accessed atomically (the futex word)
	kernelSleepers atomic.Int32 // goroutines sleeping (or about to) in the kernel
	condSleepers   atomic.Int32 // goroutines sleeping (or about to) on cond
	mu             sync.Mutex   // guards cond's creation and waits
	cond           *sync.Cond   // made on first use
}

// load returns the counter.
func (w *waitWord) load() uint32 { return atomic.LoadUint32(&w.v) }

// bump increments the counter and wakes every sleeper.
func (w *waitWord) bump() {
	atomic.AddUint32(&w.v, 1)
	// A sleeper counts itself before it checks the counter, so either it sees the new value or
	// we see it counted here.
	if w.kernelSleepers.Load() > 0 {
		futexWakeAll(&w.v)
	}
	if w.condSleepers.Load() > 0 {
		w.mu.Lock()
		if w.cond != nil {
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

// wait returns once the counter differs from old (at once if it already does), sleeping in the
// kernel if inKernel and the platform has a futex, else on a sync.Cond.
func (w *waitWord) wait(old uint32, inKernel bool) {
	if inKernel && haveFutex {
		w.kernelSleepers.Add(1)
		for w.load() == old {
			futexSleep(&w.v, old) // rechecks the counter atomically: no bump is missed
		}
		w.kernelSleepers.Add(-1)
		return
	}
	w.condSleepers.Add(1)
	w.mu.Lock()
	if w.cond == nil {
		w.cond = sync.NewCond(&w.mu)
	}
	for w.load() == old {
		w.cond.Wait()
	}
	w.mu.Unlock()
	w.condSleepers.Add(-1)
}
