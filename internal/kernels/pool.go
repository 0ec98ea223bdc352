// Package kernels holds tether's CPU compute kernels (matrix products over f32, bf16 and f16
// weights, accumulated in float32) and the persistent worker pool that runs them on every core.
//
// On amd64 the kernels use AVX-512 or AVX2+FMA (F16C for half-precision weights), chosen at
// start-up from the CPU's features; every other platform, and amd64 after SetGeneric(true), uses a
// portable Go implementation with several independent accumulators.
package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSpin is how long an idle worker (and a caller waiting for its chunks) polls for new work
// before parking. Decode issues products a few microseconds apart, so a short spin saves the
// wake-up latency of a parked goroutine; parking afterwards keeps an idle pool from burning cores
// on a shared machine. Measured on a loaded 2-core machine (BenchmarkDecodeLayer,
// BenchmarkParallelOverhead), 10µs did as well as 50µs in wall time and burned less CPU.
const DefaultSpin = 10 * time.Microsecond

// crowdCheckEvery is how often a pool looks again at whether the machine is crowded (crowded),
// and crowdedLooks how many looks in a row must find it so before its idle goroutines sleep in
// the Go scheduler instead of the kernel (sleepInKernel).
const (
	crowdCheckEvery = 50 * time.Millisecond
	crowdedLooks    = 3
)

// chunksPerWorker is how many chunks Parallel cuts per worker, so that a worker slowed by another
// process on a shared machine does not hold up the whole product.
const chunksPerWorker = 4

// Pool runs work on a fixed set of persistent goroutines. Idle workers spin briefly, then sleep
// on the pool's epoch, as does a caller waiting for the workers' last chunks: in the kernel
// while the machine has a CPU for every runnable thread, in the Go scheduler while it is
// crowded (see waitWord). No goroutine is started per call. A Pool is safe for concurrent use,
// and fn passed to Parallel may itself call Parallel on the same pool (the calling goroutine
// always works on its own job, so nested calls cannot deadlock).
type Pool struct {
	workers int
	spin    time.Duration

	mu      sync.Mutex
	jobs    []*job // jobs that may still have unclaimed chunks (guarded by mu)
	closed  atomic.Bool
	epoch   waitWord // bumped whenever a job or background work is published or the pool closes
	stopped sync.WaitGroup

	published atomic.Uint64              // Parallel jobs published so far
	bg        atomic.Pointer[Background] // background work waiting for an idle worker

	crowdedRun atomic.Int32 // how many looks in a row found the machine crowded
	checkedAt  atomic.Int64 // when the machine was last looked at, nanoseconds after poolClock
}

// poolClock is the origin of Pool.checkedAt.
var poolClock = time.Now()

// sleepInKernel reports whether an idle goroutine of the pool sleeps in the kernel (a futex)
// rather than in the Go scheduler (see waitWord): unless the machine was crowded the last
// crowdedLooks times it was looked at (every crowdCheckEvery), so that a moment's extra thread
// (this process's garbage collector, a kernel thread) does not count.
func (p *Pool) sleepInKernel() bool {
	now := int64(time.Since(poolClock))
	if last := p.checkedAt.Load(); now-last >= int64(crowdCheckEvery) && p.checkedAt.CompareAndSwap(last, now) {
		if crowded() {
			p.crowdedRun.Store(min(p.crowdedRun.Load()+1, crowdedLooks))
		} else {
			p.crowdedRun.Store(0)
		}
	}
	return p.crowdedRun.Load() < crowdedLooks
}

// job is one Parallel call: [0,n) cut into nchunks contiguous chunks.
type job struct {
	fn        func(lo, hi int)
	n         int
	nchunks   int
	next      atomic.Int64 // next chunk to claim
	remaining atomic.Int64 // chunks not yet finished
	done      waitWord     // bumped once, by the goroutine that finishes the last chunk
	panicked  atomic.Pointer[panicValue]
}

type panicValue struct{ v any }

// NewPool starts a pool of workers goroutines in all (the caller of Parallel counts as one of
// them, so workers-1 goroutines are started). workers <= 0 means runtime.GOMAXPROCS(0).
// Idle workers spin for DefaultSpin before parking.
func NewPool(workers int) *Pool { return NewPoolSpin(workers, DefaultSpin) }

// NewPoolSpin is NewPool with an explicit spin time; spin = 0 parks idle workers at once (the
// pure-parking pool the benchmarks compare against).
func NewPoolSpin(workers int, spin time.Duration) *Pool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if spin < 0 {
		spin = 0
	}
	p := &Pool{workers: workers, spin: spin}
	for i := 1; i < workers; i++ {
		p.stopped.Add(1)
		go p.worker()
	}
	return p
}

// Workers reports how many goroutines (the caller included) share the work of one Parallel call.
func (p *Pool) Workers() int { return p.workers }

// Close stops the pool's goroutines and waits for them to exit. Parallel calls after Close run
// entirely on the calling goroutine. Close is idempotent.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.epoch.bump()
	p.stopped.Wait()
}

// Parallel splits [0,n) into contiguous chunks, runs fn on each chunk on the pool's workers and
// the calling goroutine, and returns when all chunks are done. Chunks never overlap and cover
// [0,n) exactly; n <= 0 returns at once. A panic in fn is re-raised on the caller once the other
// chunks have finished.
func (p *Pool) Parallel(n int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	nchunks := min(n, p.workers*chunksPerWorker)
	if p.workers == 1 || nchunks == 1 {
		fn(0, n)
		return
	}
	if p.closed.Load() {
		fn(0, n)
		return
	}
	j := &job{fn: fn, n: n, nchunks: nchunks}
	j.remaining.Store(int64(nchunks))

	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.mu.Unlock()
	p.published.Add(1)
	p.epoch.bump()

	p.run(j)

	// Every chunk is claimed now: withdraw the job so idle workers stop looking at it.
	p.mu.Lock()
	for i, q := range p.jobs {
		if q == j {
			p.jobs = append(p.jobs[:i], p.jobs[i+1:]...)
			break
		}
	}
	p.mu.Unlock()

	p.waitDone(j)
	if pv := j.panicked.Load(); pv != nil {
		panic(pv.v)
	}
}

// waitDone waits for the other goroutines' chunks of j: spin (spinUntil), then sleep until the
// last chunk's goroutine bumps j.done.
func (p *Pool) waitDone(j *job) {
	if !p.spinUntil(func() bool { return j.done.load() != 0 }) {
		j.done.wait(0, p.sleepInKernel())
	}
}

// spinUntil polls ready for up to p.spin, yielding the processor to other goroutines every 64
// polls, and reports whether ready became true.
func (p *Pool) spinUntil(ready func() bool) bool {
	if ready() {
		return true
	}
	if p.spin <= 0 {
		return false
	}
	deadline := time.Now().Add(p.spin)
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		if i&63 == 63 {
			if time.Now().After(deadline) {
				return false
			}
			runtime.Gosched()
		}
	}
}

// run claims and runs chunks of j until none is left; the goroutine that finishes the job's last
// chunk bumps j.done.
func (p *Pool) run(j *job) {
	for {
		c := int(j.next.Add(1) - 1)
		if c >= j.nchunks {
			return
		}
		lo := c * j.n / j.nchunks
		hi := (c + 1) * j.n / j.nchunks
		j.call(lo, hi)
		if j.remaining.Add(-1) == 0 {
			j.done.bump()
		}
	}
}

// call runs one chunk, recording a panic instead of letting it kill a worker goroutine.
func (j *job) call(lo, hi int) {
	defer func() {
		if r := recover(); r != nil {
			j.panicked.CompareAndSwap(nil, &panicValue{v: fmt.Errorf("kernels: panic in Parallel chunk [%d,%d): %v", lo, hi, r)})
		}
	}()
	j.fn(lo, hi)
}

// grab returns a job with unclaimed chunks, or nil.
func (p *Pool) grab() *job {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range p.jobs {
		if int(j.next.Load()) < j.nchunks {
			return j
		}
	}
	return nil
}

// worker is the loop of one pool goroutine: run any job with unclaimed chunks, else background
// work; otherwise spin watching the epoch (spinUntil), then sleep until the epoch moves.
func (p *Pool) worker() {
	defer p.stopped.Done()
	for {
		e := p.epoch.load()
		if p.closed.Load() {
			return
		}
		if j := p.grab(); j != nil {
			p.run(j)
			continue
		}
		if bg := p.bg.Swap(nil); bg != nil {
			bg.run(p)
			continue
		}
		if !p.spinUntil(func() bool { return p.epoch.load() != e }) {
			p.epoch.wait(e, p.sleepInKernel())
		}
	}
}

// Background is work that one idle worker does while the caller of Post goes on: reading the
// weights of the next matrix products into the cache while the caller runs the small operations
// between them (cpubackend's prefetch). It yields to Parallel: fn is asked to return as soon as
// its stop function reports true, which it does once a Parallel call has been made on the pool
// since fn started (its workers are wanted there) or the caller has called Cancel.
type Background struct {
	fn     func(stop func() bool)
	state  atomic.Int32 // bgQueued, bgRunning, bgDone or bgCancelled
	cancel atomic.Bool
}

const (
	bgQueued = iota
	bgRunning
	bgDone
	bgCancelled
)

// NewBackground wraps fn as background work for Post. fn must return soon after stop() reports
// true, and check it often (every few microseconds of work).
func NewBackground(fn func(stop func() bool)) *Background { return &Background{fn: fn} }

// Post hands bg to the next idle worker, replacing background work posted earlier that no
// worker has started yet (that work is cancelled). With one worker (nobody but the caller) bg
// never runs. Post a Background once.
func (p *Pool) Post(bg *Background) {
	if p.workers == 1 {
		bg.state.Store(bgCancelled)
		return
	}
	if old := p.bg.Swap(bg); old != nil {
		old.state.CompareAndSwap(bgQueued, bgCancelled)
	}
	if p.closed.Load() {
		bg.state.CompareAndSwap(bgQueued, bgCancelled)
		return
	}
	p.epoch.bump()
}

// Cancel stops bg: a worker that has not started it never will, and Cancel waits for a worker
// that has to return from it. After Cancel, bg's fn no longer runs (what it reads may be freed).
func (bg *Background) Cancel() {
	bg.cancel.Store(true)
	if bg.state.CompareAndSwap(bgQueued, bgCancelled) {
		return
	}
	for i := 0; bg.state.Load() == bgRunning; i++ {
		if i&63 == 63 {
			runtime.Gosched()
		}
	}
}

// run runs bg on the calling worker unless it was cancelled first.
func (bg *Background) run(p *Pool) {
	if !bg.state.CompareAndSwap(bgQueued, bgRunning) {
		return
	}
	since := p.published.Load()
	bg.fn(func() bool { return p.published.Load() != since || bg.cancel.Load() })
	bg.state.Store(bgDone)
}
