package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// ErrQueueFull is returned by Batcher.Submit when BatcherOptions.MaxQueue
// requests are already waiting.
var ErrQueueFull = errors.New("engine: batcher queue is full")

// ErrBatcherClosed is returned by Batcher.Submit after Close, and is the
// Err of the final event of requests that Close cancelled.
var ErrBatcherClosed = errors.New("engine: batcher is closed")

// BatcherOptions configures a Batcher.
type BatcherOptions struct {
	// MaxBatch bounds the rows decoded together (default 8).
	MaxBatch int
	// MaxQueue bounds the requests waiting for a row (default 64).
	MaxQueue int
	// MaxClamps is the number of clamp slots per layer of the row hooks
	// (default 2): a request's hook may hold at most that many clamps.
	MaxClamps int
	// MaxContext bounds a request's prompt plus generated tokens (default
	// the model's context, MaxPositions, at most 4096). The cache's rows
	// are only as long as the longest request in the batch needs.
	MaxContext int
	// Detokenizer, when set, fills the events' and results' text; stop
	// strings need it.
	Detokenizer Detokenizer
}

// BatchRequest is one sequence submitted to a Batcher.
type BatchRequest struct {
	Request
	// Hooks steer this row (nil: untouched); recording hooks give each
	// token's telemetry in Event.Records and Result.Telemetry.
	Hooks Hooks
	// Logprob asks for each token's log-probability in Event.Logprob.
	Logprob bool
	// Logprobs asks for that many most likely tokens per step in
	// Event.TopLogprobs (0: none); it implies Logprob. Log-probabilities
	// are the log-softmax of the model's logits, before sampling's
	// temperature, penalties and filters.
	Logprobs int
}

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	Token   int
	Logprob float64
}

// Event reports one generated token of a BatchRequest, or (Done) its end.
type Event struct {
	// Token is the generated id (not set on the Done event).
	Token int
	// Text is the text new since the previous event (UTF-8 complete; text
	// that may start a stop string is held back until it is known not to).
	Text string
	// Logprob and TopLogprobs are filled as BatchRequest asks.
	Logprob     float64
	TopLogprobs []TokenLogprob
	// Records holds this token's telemetry per recording layer.
	Records map[int]HookRecord
	// Done marks the last event; Result and Err are set on it only.
	Done bool
	// Result holds the whole generation (tokens, text, stop reason,
	// telemetry, timings). Its PrefillDuration is the row's own prefill and
	// DecodeDuration the time from joining the batch to the end.
	Result *Result
	// Err is why generation ended early: the request's context error,
	// ErrBatcherClosed, or an engine error; nil otherwise.
	Err error
}

// BatcherStats are a Batcher's counters.
type BatcherStats struct {
	Queued, Active int   // requests waiting; rows decoding
	Submitted      int64 // requests accepted by Submit
	Completed      int64 // requests that got their final event
	Steps          int64 // decode steps run
	Prefills       int64 // prompts prefilled
	Tokens         int64 // tokens generated
	CapActivations int64 // recorded clamps that acted, over all tokens
	// CacheRows and CacheSlots are the batch KV cache's rows and slots per
	// row (0 when the batcher holds no cache).
	CacheRows, CacheSlots int
	// TTFTCount and TTFTSum sum the time from Submit to the first token;
	// TTFTBuckets[i] counts those at most TTFTBounds[i] (cumulative, as
	// Prometheus histograms).
	TTFTCount   int64
	TTFTSum     time.Duration
	TTFTBounds  []time.Duration
	TTFTBuckets []int64
}

// ttftBounds are the upper bounds of the time-to-first-token histogram.
var ttftBounds = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second}

// Batcher runs a continuously batched decode loop over one Model: requests
// join the running batch at step boundaries and leave when done or
// cancelled.
//
// Each row's prompt is prefilled alone (batch 1, in the prompt length
// buckets Generate uses) into a cache of one row, which is then copied into
// a row of the batch's cache; all rows decode together, one token each per
// step, each at its own cache slot, so that a row's values sit in the cache
// slots they occupy in Generate alone (which keeps the attention sums
// bit-identical). The batch grows and shrinks in power-of-two buckets up to
// MaxBatch, so joining and leaving compile nothing beyond one graph per
// bucket. The cache's rows are as long as the longest need of the rows in
// it; it grows when a row joins that needs more, shrinks (rows, slots or
// both) once the live rows have needed much less for shrinkAfter steps in
// a row, and is freed when the batcher is idle. Steps where no row has hooks
// run the plain graph; otherwise every row gets row hooks (rowhooks.go),
// neutral for untouched rows. A row's tokens and telemetry equal what
// Generate gives for its Request alone with its Hooks.
type Batcher struct {
	m    *Model
	opts BatcherOptions

	mu      sync.Mutex // guards queue, closing and stats
	queue   []*bseq
	closing bool
	stats   BatcherStats

	wake      chan struct{} // buffered 1: something to do
	abort     chan struct{} // closed when Close's context ends
	abortOnce sync.Once
	done      chan struct{} // closed when the loop exited

	// Owned by the loop goroutine.
	cache      *kvCache
	rows       []*bseq // per cache row; nil: free
	rowTensors []rowHookInputs[*tensors.Tensor]
	rowsDirty  bool // rows changed since rowTensors were built
	ops        *cacheOps
	// roomy counts the steps in a row whose live rows would fit in a
	// smaller cache (see fit).
	roomy int
	// afterStep, when set (tests), is called by the loop after each decode
	// step.
	afterStep func()
}

// shrinkAfter is how many steps in a row the live rows must fit in fewer
// cache rows, or in at most half the cache slots, before the batcher
// compacts the cache: a row that leaves and a request that joins soon after
// do not rebuild the cache twice.
const shrinkAfter = 8

// bseq is one request in a Batcher.
type bseq struct {
	ctx       context.Context
	req       BatchRequest
	st        *seqState
	events    chan Event
	stopWatch func() bool
	pad       int // first cache slot of the prompt (the prompt's left padding)
	next      int // cache slot of the next token fed
	submitted time.Time
	joined    time.Time
	sent      int // bytes of Result.Text already sent
}

// NewBatcher starts a Batcher over m. Close it to stop its goroutine.
func (m *Model) NewBatcher(opts BatcherOptions) (*Batcher, error) {
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 8
	}
	if opts.MaxQueue == 0 {
		opts.MaxQueue = 64
	}
	if opts.MaxClamps == 0 {
		opts.MaxClamps = 2
	}
	if opts.MaxContext == 0 {
		opts.MaxContext = min(m.cfg.MaxPositions, 4096)
	}
	switch {
	case opts.MaxBatch < 0:
		return nil, fmt.Errorf("engine: BatcherOptions.MaxBatch %d, expected > 0", opts.MaxBatch)
	case opts.MaxQueue < 0:
		return nil, fmt.Errorf("engine: BatcherOptions.MaxQueue %d, expected > 0", opts.MaxQueue)
	case opts.MaxClamps < 0:
		return nil, fmt.Errorf("engine: BatcherOptions.MaxClamps %d, expected > 0", opts.MaxClamps)
	case opts.MaxContext < 0 || opts.MaxContext > m.cfg.MaxPositions:
		return nil, fmt.Errorf("engine: BatcherOptions.MaxContext %d, expected 1..%d (the model's context)", opts.MaxContext, m.cfg.MaxPositions)
	}
	b := &Batcher{
		m:     m,
		opts:  opts,
		wake:  make(chan struct{}, 1),
		abort: make(chan struct{}),
		done:  make(chan struct{}),
		stats: BatcherStats{TTFTBounds: ttftBounds, TTFTBuckets: make([]int64, len(ttftBounds))},
	}
	b.ops = &cacheOps{m: m}
	go b.loop()
	return b, nil
}

// Submit queues r and returns the channel of its events: one per generated
// token, then a final one with Done, after which the channel is closed. The
// channel is buffered for every event, so a slow reader never stalls the
// batch. It returns ErrQueueFull when MaxQueue requests are waiting and
// ErrBatcherClosed after Close. Cancelling ctx ends the request at the next
// step boundary (StopCancelled, Err ctx's error) and frees its row.
func (b *Batcher) Submit(ctx context.Context, r BatchRequest) (<-chan Event, error) {
	st, err := b.m.newSeqState(0, r.Request, GenerateOptions{Detokenizer: b.opts.Detokenizer})
	if err != nil {
		return nil, err
	}
	if err := b.m.checkRowHooks(r.Hooks, b.opts.MaxClamps); err != nil {
		return nil, err
	}
	if r.Logprobs < 0 {
		return nil, fmt.Errorf("engine: Submit: Logprobs %d, expected >= 0", r.Logprobs)
	}
	if n := len(r.Prompt) + st.maxNew; n > b.opts.MaxContext {
		return nil, fmt.Errorf("engine: Submit: prompt (%d tokens) plus MaxNewTokens (%d) exceeds the batcher's context of %d tokens (BatcherOptions.MaxContext)",
			len(r.Prompt), st.maxNew, b.opts.MaxContext)
	}
	if specs, _ := b.m.hookSpecs(r.Hooks); len(specs) == 0 {
		r.Hooks = nil
	}
	s := &bseq{ctx: ctx, req: r, st: st, events: make(chan Event, st.maxNew+2), submitted: time.Now()}
	s.stopWatch = context.AfterFunc(ctx, b.signal)
	b.mu.Lock()
	switch {
	case b.closing:
		b.mu.Unlock()
		s.stopWatch()
		return nil, ErrBatcherClosed
	case len(b.queue) >= b.opts.MaxQueue:
		b.mu.Unlock()
		s.stopWatch()
		return nil, ErrQueueFull
	}
	b.queue = append(b.queue, s)
	b.stats.Submitted++
	b.mu.Unlock()
	b.signal()
	return s.events, nil
}

// Stats returns the current counters.
func (b *Batcher) Stats() BatcherStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stats
	st.Queued = len(b.queue)
	st.TTFTBuckets = slices.Clone(b.stats.TTFTBuckets)
	return st
}

// Close stops admitting requests and lets the queued and running ones
// finish; when ctx ends first, it cancels them (their final event has Err
// ErrBatcherClosed) and returns ctx's error. It returns once the loop has
// exited and its buffers are freed.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	b.closing = true
	b.mu.Unlock()
	b.signal()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.abortOnce.Do(func() { close(b.abort) })
		<-b.done
		return ctx.Err()
	}
}

// signal wakes the loop.
func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// bucket returns the batch rows for n active sequences.
func (b *Batcher) bucket(n int) int {
	return min(nextPow2(max(n, 1)), b.opts.MaxBatch)
}

// active returns the number of rows in use.
func (b *Batcher) active() int {
	n := 0
	for _, s := range b.rows {
		if s != nil {
			n++
		}
	}
	return n
}

// loop is the batcher's goroutine.
func (b *Batcher) loop() {
	defer close(b.done)
	defer b.release()
	for {
		select {
		case <-b.abort:
			b.cancelAll(ErrBatcherClosed)
			return
		default:
		}
		b.dropCancelled()
		b.admit()
		if b.active() > 0 {
			b.step()
			if b.afterStep != nil {
				b.afterStep()
			}
			continue
		}
		b.mu.Lock()
		idle, closing := len(b.queue) == 0, b.closing
		b.mu.Unlock()
		if idle && closing {
			return
		}
		if idle {
			b.dropCache()
			select {
			case <-b.wake:
			case <-b.abort:
			}
		}
	}
}

// dropCancelled ends the rows and queued requests whose context is done.
func (b *Batcher) dropCancelled() {
	for r, s := range b.rows {
		if s != nil && s.ctx.Err() != nil {
			b.leave(r)
			b.finish(s, StopCancelled, s.ctx.Err())
		}
	}
	b.mu.Lock()
	var dropped []*bseq
	b.queue = slices.DeleteFunc(b.queue, func(s *bseq) bool {
		if s.ctx.Err() != nil {
			dropped = append(dropped, s)
			return true
		}
		return false
	})
	b.mu.Unlock()
	for _, s := range dropped {
		b.finish(s, StopCancelled, s.ctx.Err())
	}
}

// cancelAll ends every row and queued request with err.
func (b *Batcher) cancelAll(err error) {
	for r, s := range b.rows {
		if s != nil {
			b.leave(r)
			b.finish(s, StopCancelled, err)
		}
	}
	b.mu.Lock()
	queue := b.queue
	b.queue = nil
	b.mu.Unlock()
	for _, s := range queue {
		b.finish(s, StopCancelled, err)
	}
}

// admit moves queued requests into free rows, prefilling them.
func (b *Batcher) admit() {
	for b.active() < b.opts.MaxBatch {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		s := b.queue[0]
		b.mu.Unlock()
		r, err := b.place(s)
		if err != nil {
			b.failAll(err)
			return
		}
		b.mu.Lock()
		b.queue = b.queue[1:]
		b.mu.Unlock()
		b.join(s, r)
	}
}

// slotsFor returns the cache slots s needs: its padded prompt and its new
// tokens, in the cache buckets Generate uses.
func (b *Batcher) slotsFor(s *bseq) int {
	return b.m.cacheLength(b.m.promptLength(len(s.req.Prompt)) + s.st.maxNew)
}

// place returns a free cache row for s, growing the cache when none is
// free or its rows are shorter than s needs. The cache's rows are as long
// as the longest need of the rows in it, not the whole context, so that
// each step attends over no more slots than the requests use.
func (b *Batcher) place(s *bseq) (int, error) {
	if b.cache != nil && b.active() == 0 {
		b.dropCache()
	}
	if b.cache == nil {
		b.setCache(b.m.newKVCache(b.bucket(1), b.slotsFor(s)))
		b.rows = make([]*bseq, b.cache.batch)
	}
	if need := b.slotsFor(s); need > b.cache.slots {
		if err := b.resizeSlots(need); err != nil {
			return -1, err
		}
	}
	if r := slices.Index(b.rows, nil); r >= 0 {
		return r, nil
	}
	keep := make([]int, b.bucket(b.active()+1))
	for i := range keep {
		keep[i] = -1
		if i < len(b.rows) {
			keep[i] = i
		}
	}
	if err := b.relayout(keep); err != nil {
		return -1, err
	}
	return slices.Index(b.rows, nil), nil
}

// relayout rebuilds the cache with rows keep (old row indices; -1: a free
// row).
func (b *Batcher) relayout(keep []int) error {
	old := make([]int, len(b.rows))
	for i := range old {
		old[i] = i
	}
	b.m.mu.Lock()
	cache, _, err := b.m.compactCache(b.cache, make([]int32, len(b.rows)), old, keep)
	b.m.mu.Unlock()
	if err != nil {
		b.setCache(nil)
		return err
	}
	b.setCache(cache)
	rows := make([]*bseq, len(keep))
	for i, r := range keep {
		if r >= 0 {
			rows[i] = b.rows[r]
		}
	}
	b.rows = rows
	b.rowsDirty = true
	return nil
}

// join prefills s alone, samples its first token and, unless it is done,
// puts it in cache row r.
func (b *Batcher) join(s *bseq, r int) {
	m := b.m
	if s.st.maxNew <= 0 {
		b.finish(s, s.st.limit, nil)
		return
	}
	P := len(s.req.Prompt)
	Tb := m.promptLength(P)
	tokens, pad := m.leftPad([][]int{s.req.Prompt}, Tb)
	s.pad, s.next = int(pad[0]), Tb
	plan := stepPlan{}
	var rt []rowHookInputs[*tensors.Tensor]
	if s.req.Hooks != nil {
		plan.rowClamps = b.opts.MaxClamps
		rt = m.rowHookTensors([]Hooks{s.req.Hooks}, plan.rowClamps)
		defer freeRowHookTensors(rt)
	}
	start := time.Now()
	one := m.newKVCache(1, b.cache.slots)
	defer one.free()
	m.mu.Lock()
	out, err := m.prefillAt(s.ctx, stepRequest{tokens: tokens, pad: pad, cache: one, plan: plan, rows: rt})
	if err == nil {
		err = b.ops.insertRow(b.cache, one, r)
	}
	m.mu.Unlock()
	b.mu.Lock()
	b.stats.Prefills++
	b.mu.Unlock()
	if err != nil {
		if s.ctx.Err() != nil {
			b.finish(s, StopCancelled, s.ctx.Err())
			return
		}
		b.finish(s, StopCancelled, err)
		return
	}
	s.st.res.PrefillDuration = time.Since(start)
	s.joined = time.Now()
	b.rows[r] = s
	b.rowsDirty = true
	b.mu.Lock()
	b.stats.Active++
	b.mu.Unlock()
	b.accept(r, s, out, 0, Tb-1, Tb)
}

// fit compacts the cache once its live rows have fitted in fewer rows (a
// smaller batch bucket), or in at most half its slots, for shrinkAfter
// steps in a row. Each kept row keeps its values in the same slots, so its
// tokens stay those of Generate alone.
func (b *Batcher) fit() error {
	size, need := b.bucket(b.active()), 0
	for _, s := range b.rows {
		if s != nil {
			need = max(need, b.slotsFor(s))
		}
	}
	fewerSlots := need*2 <= b.cache.slots
	if size >= len(b.rows) && !fewerSlots {
		b.roomy = 0
		return nil
	}
	if b.roomy++; b.roomy < shrinkAfter {
		return nil
	}
	b.roomy = 0
	if size < len(b.rows) {
		var keep []int
		for r, s := range b.rows {
			if s != nil {
				keep = append(keep, r)
			}
		}
		for len(keep) < size {
			keep = append(keep, -1)
		}
		if err := b.relayout(keep); err != nil {
			return err
		}
	}
	if fewerSlots {
		return b.resizeSlots(need)
	}
	return nil
}

// step runs one decode step of every row.
func (b *Batcher) step() {
	if err := b.fit(); err != nil {
		b.failAll(err)
		return
	}
	B := len(b.rows)
	feed := make([][]int32, B)
	pad := make([]int32, B)
	slots := make([]int32, B)
	plan := stepPlan{rowSlots: true}
	for r, s := range b.rows {
		feed[r] = []int32{0} // a free row at slot 0 sees only itself
		if s == nil {
			continue
		}
		feed[r][0] = int32(s.st.res.Tokens[len(s.st.res.Tokens)-1])
		pad[r], slots[r] = int32(s.pad), int32(s.next)
		s.next++
		if s.req.Hooks != nil {
			plan.rowClamps = b.opts.MaxClamps
		}
	}
	var rt []rowHookInputs[*tensors.Tensor]
	if plan.rowClamps > 0 {
		if b.rowsDirty || b.rowTensors == nil {
			freeRowHookTensors(b.rowTensors)
			hooks := make([]Hooks, B)
			for r, s := range b.rows {
				if s != nil {
					hooks[r] = s.req.Hooks
				}
			}
			b.rowTensors = b.m.rowHookTensors(hooks, plan.rowClamps)
			b.rowsDirty = false
		}
		rt = b.rowTensors
	}
	b.m.mu.Lock()
	out, err := b.m.runStep(stepRequest{tokens: feed, pad: pad, rowSlots: slots, cache: b.cache, plan: plan, rows: rt, step: 1})
	b.m.mu.Unlock()
	if err != nil {
		b.failAll(err)
		return
	}
	b.mu.Lock()
	b.stats.Steps++
	b.mu.Unlock()
	for r, s := range b.rows {
		if s != nil {
			b.accept(r, s, out, r, 0, 1)
		}
	}
}

// failAll ends every row and the cache after an engine error.
func (b *Batcher) failAll(err error) {
	for r, s := range b.rows {
		if s != nil {
			b.leave(r)
			b.finish(s, StopCancelled, err)
		}
	}
	b.dropCache()
}

// accept samples row r's next token from row logitsRow of out's logits and
// sends its event; its telemetry is at (recRow, recT) of out's [B, T] rows.
func (b *Batcher) accept(r int, s *bseq, out *stepResult, logitsRow, recT, T int) {
	st := s.st
	n := len(st.res.Tokens)
	err := st.accept(0, out, logitsRow, 0, stepPlan{}, GenerateOptions{Detokenizer: b.opts.Detokenizer})
	if err != nil {
		b.leave(r)
		b.finish(s, StopCancelled, err)
		return
	}
	if len(st.res.Tokens) > n {
		ev := Event{Token: st.res.Tokens[n]}
		if s.req.Hooks != nil {
			recRow := logitsRow
			ev.Records = rowRecords(out, s.req.Hooks, b.opts.MaxClamps, recRow, recT, T)
			if ev.Records != nil {
				st.res.Telemetry = append(st.res.Telemetry, ev.Records)
			}
		}
		if s.req.Logprob || s.req.Logprobs > 0 {
			V := b.m.cfg.VocabSize
			ev.Logprob, ev.TopLogprobs = logprobs(out.logits[logitsRow*V:(logitsRow+1)*V], ev.Token, s.req.Logprobs)
		}
		ev.Text = st.res.Text[s.sent:]
		s.sent = len(st.res.Text)
		acted := 0
		for _, rec := range ev.Records {
			for _, a := range rec.Acted {
				if a {
					acted++
				}
			}
		}
		b.mu.Lock()
		b.stats.Tokens++
		b.stats.CapActivations += int64(acted)
		if n == 0 {
			ttft := time.Since(s.submitted)
			b.stats.TTFTCount++
			b.stats.TTFTSum += ttft
			for i, bound := range b.stats.TTFTBounds {
				if ttft <= bound {
					b.stats.TTFTBuckets[i]++
				}
			}
		}
		b.mu.Unlock()
		s.events <- ev
	}
	if st.done {
		b.leave(r)
		b.finish(s, st.res.StopReason, nil)
	}
}

// leave frees cache row r.
func (b *Batcher) leave(r int) {
	if b.rows[r] == nil {
		return
	}
	b.rows[r] = nil
	b.rowsDirty = true
	b.mu.Lock()
	b.stats.Active--
	b.mu.Unlock()
}

// setCache makes c (nil: none) the batch cache and records its size in the
// stats.
func (b *Batcher) setCache(c *kvCache) {
	b.cache = c
	rows, slots := 0, 0
	if c != nil {
		rows, slots = c.batch, c.slots
	}
	b.mu.Lock()
	b.stats.CacheRows, b.stats.CacheSlots = rows, slots
	b.mu.Unlock()
}

// dropCache frees the batch cache and its rows (none may be live).
func (b *Batcher) dropCache() {
	if b.cache != nil {
		b.cache.free()
	}
	b.setCache(nil)
	b.rows = nil
	b.rowsDirty = true
	b.roomy = 0
}

// finish sends s's final event and closes its channel.
func (b *Batcher) finish(s *bseq, reason string, err error) {
	st := s.st
	if !st.done {
		st.finish(reason, b.opts.Detokenizer)
	}
	if !s.joined.IsZero() {
		st.res.DecodeDuration = time.Since(s.joined)
	}
	res := *st.res
	res.Captured = nil
	ev := Event{Done: true, Text: st.res.Text[s.sent:], Result: &res, Err: err}
	s.sent = len(st.res.Text)
	s.events <- ev
	close(s.events)
	s.stopWatch()
	b.mu.Lock()
	b.stats.Completed++
	b.mu.Unlock()
}

// release frees the loop's buffers when it exits.
func (b *Batcher) release() {
	b.cancelAll(ErrBatcherClosed)
	b.dropCache()
	freeRowHookTensors(b.rowTensors)
	b.rowTensors = nil
	b.m.mu.Lock()
	b.ops.close()
	b.m.mu.Unlock()
}

// logprobs returns the log-softmax of logits at tok and, for k > 0, the k
// most likely tokens (ties by lower id).
func logprobs(logits []float32, tok, k int) (float64, []TokenLogprob) {
	maxL := math.Inf(-1)
	for _, v := range logits {
		maxL = max(maxL, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxL)
	}
	lse := maxL + math.Log(sum)
	lp := float64(logits[tok]) - lse
	if k <= 0 {
		return lp, nil
	}
	k = min(k, len(logits))
	top := make([]TokenLogprob, 0, k+1)
	for id, v := range logits {
		x := float64(v) - lse
		if len(top) == k && x <= top[k-1].Logprob {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, x, func(t TokenLogprob, x float64) int {
			if t.Logprob >= x {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, i, TokenLogprob{Token: id, Logprob: x})
		if len(top) > k {
			top = top[:k]
		}
	}
	return lp, top
}
