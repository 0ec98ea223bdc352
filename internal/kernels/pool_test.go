package kernels

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkCover runs Parallel(n) and checks that the chunks are non-empty and cover [0,n) exactly once.
func checkCover(t *testing.T, p *Pool, n int) {
	t.Helper()
	hits := make([]atomic.Int32, max(n, 0))
	var bad atomic.Int32
	p.Parallel(n, func(lo, hi int) {
		if lo >= hi || lo < 0 || hi > n {
			bad.Add(1)
			return
		}
		for i := lo; i < hi; i++ {
			hits[i].Add(1)
		}
	})
	if bad.Load() != 0 {
		t.Fatalf("n=%d: %d chunks empty or out of range", n, bad.Load())
	}
	for i := range hits {
		if h := hits[i].Load(); h != 1 {
			t.Fatalf("n=%d: index %d run %d times, want 1", n, i, h)
		}
	}
}

func TestParallelCovers(t *testing.T) {
	for _, workers := range []int{1, 2, 3, 8} {
		for _, spin := range []time.Duration{0, DefaultSpin} {
			p := NewPoolSpin(workers, spin)
			// n below, at and above the worker count and the chunk count.
			for _, n := range []int{-1, 0, 1, 2, 3, 7, 31, 32, 33, 1000} {
				checkCover(t, p, n)
			}
			p.Close()
		}
	}
}

func TestParallelZeroCallsNothing(t *testing.T) {
	p := NewPool(4)
	defer p.Close()
	called := false
	p.Parallel(0, func(lo, hi int) { called = true })
	if called {
		t.Fatal("Parallel(0) called fn")
	}
}

func TestNewPoolDefaultWorkers(t *testing.T) {
	p := NewPool(0)
	defer p.Close()
	if p.Workers() != runtime.GOMAXPROCS(0) {
		t.Fatalf("NewPool(0).Workers() = %d, want GOMAXPROCS %d", p.Workers(), runtime.GOMAXPROCS(0))
	}
}

// TestParallelUsesWorkers checks that chunks run on more than one goroutine at once: each chunk
// waits until another chunk has started, which only the pool's workers can satisfy.
func TestParallelUsesWorkers(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	var started atomic.Int32
	deadline := time.Now().Add(10 * time.Second)
	p.Parallel(2, func(lo, hi int) {
		started.Add(1)
		for started.Load() < 2 && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	})
	if started.Load() != 2 || time.Now().After(deadline) {
		t.Fatal("the two chunks never ran concurrently")
	}
}

func TestParallelConcurrentAndNested(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	const callers, calls = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for call := range calls {
				n := 1 + (c*calls+call)%97
				var sum atomic.Int64
				p.Parallel(n, func(lo, hi int) {
					for i := lo; i < hi; i++ {
						// A nested product on the same pool.
						var inner atomic.Int64
						p.Parallel(i+1, func(lo, hi int) { inner.Add(int64(hi - lo)) })
						sum.Add(inner.Load())
					}
				})
				if want := int64(n * (n + 1) / 2); sum.Load() != want {
					errs <- fmt.Errorf("caller %d call %d: sum %d, want %d", c, call, sum.Load(), want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestParallelPanicReachesCaller(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "boom at 5") {
				t.Fatalf("recovered %v, want the chunk's panic", r)
			}
		}()
		p.Parallel(8, func(lo, hi int) {
			if lo <= 5 && 5 < hi {
				panic("boom at 5")
			}
		})
	}()
	checkCover(t, p, 100) // the pool still works
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, spin := range []time.Duration{0, DefaultSpin} {
		p := NewPoolSpin(6, spin)
		checkCover(t, p, 100)
		p.Close()
		p.Close()            // idempotent
		checkCover(t, p, 10) // after Close: runs on the caller
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines before the pools, %d after Close", before, after)
	}
}
