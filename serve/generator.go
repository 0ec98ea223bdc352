package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"tether/engine"
)

// ErrQueueFull is returned by Generator.Submit when the queue of waiting sequences is at its
// bound; the server answers 429.
var ErrQueueFull = errors.New("serve: the generation queue is full")

// ErrClosed is returned by Generator.Submit after Close; the server answers 503.
var ErrClosed = errors.New("serve: the generator is shutting down")

// Job is one sequence for a Generator: the engine request, its own hooks (nil: the residual
// stream is left untouched) and the detokenizer of its text.
type Job struct {
	Request     engine.Request
	Hooks       engine.Hooks
	Detokenizer engine.Detokenizer
}

// Event is what a Generator reports about one sequence: a kept token, or, last, Done with the
// Result (and Err when generation failed or was cancelled).
type Event struct {
	Token  int
	Done   bool
	Result *engine.Result
	Err    error
}

// GeneratorStats is a Generator's load at one moment.
type GeneratorStats struct {
	Queued  int // sequences waiting for a slot
	Running int // sequences being generated (the batch size)
}

// Generator runs Jobs. Events of a job arrive on its channel in order, ending with one Done
// event, after which the channel is closed. Cancelling the context given to Submit cancels the
// sequence (it ends with engine.StopCancelled) and frees its slot.
type Generator interface {
	Submit(ctx context.Context, j Job) (<-chan Event, error)
	Stats() GeneratorStats
	Close(ctx context.Context) error
}

// Sequential is a Generator that runs one sequence at a time with engine.Generate, from a
// bounded queue: every sequence gets its own hooks, and requests do not share batches.
type Sequential struct {
	m       *engine.Model
	mu      sync.Mutex // guards queue against a send after close
	closed  bool
	queue   chan *seqJob
	queued  atomic.Int64
	running atomic.Int64
	done    chan struct{}
}

type seqJob struct {
	ctx    context.Context
	job    Job
	events chan Event
}

// NewSequential starts a Sequential generator on m with a queue of maxQueue waiting sequences.
func NewSequential(m *engine.Model, maxQueue int) (*Sequential, error) {
	if maxQueue < 1 {
		return nil, fmt.Errorf("serve: queue bound %d, expected >= 1", maxQueue)
	}
	g := &Sequential{m: m, queue: make(chan *seqJob, maxQueue), done: make(chan struct{})}
	go g.work()
	return g, nil
}

// Submit queues j; it fails with ErrQueueFull when the queue is at its bound and ErrClosed
// after Close.
func (g *Sequential) Submit(ctx context.Context, j Job) (<-chan Event, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, ErrClosed
	}
	sj := &seqJob{ctx: ctx, job: j, events: make(chan Event, 16)}
	select {
	case g.queue <- sj:
		g.queued.Add(1)
		return sj.events, nil
	default:
		return nil, ErrQueueFull
	}
}

// Stats reports the queued and running sequences.
func (g *Sequential) Stats() GeneratorStats {
	return GeneratorStats{Queued: int(g.queued.Load()), Running: int(g.running.Load())}
}

// Close stops taking jobs and waits until the queued ones are done or ctx ends.
func (g *Sequential) Close(ctx context.Context) error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("serve: closing the generator: %w", ctx.Err())
	}
}

// work runs the queued jobs one after the other.
func (g *Sequential) work() {
	defer close(g.done)
	for sj := range g.queue {
		g.queued.Add(-1)
		g.run(sj)
	}
}

// run generates one job and reports its events; a consumer that went away (its context
// cancelled) is not waited for.
func (g *Sequential) run(sj *seqJob) {
	defer close(sj.events)
	send := func(ev Event) {
		select {
		case sj.events <- ev:
		case <-sj.ctx.Done():
		}
	}
	if err := sj.ctx.Err(); err != nil {
		send(Event{Done: true, Result: &engine.Result{StopReason: engine.StopCancelled, PromptTokens: len(sj.job.Request.Prompt)}, Err: err})
		return
	}
	g.running.Add(1)
	defer g.running.Add(-1)
	opts := engine.GenerateOptions{Hooks: sj.job.Hooks, Detokenizer: sj.job.Detokenizer,
		OnToken: func(_ int, tok int) { send(Event{Token: tok}) }}
	res, err := g.m.Generate(sj.ctx, []engine.Request{sj.job.Request}, opts)
	ev := Event{Done: true, Err: err}
	if len(res) == 1 {
		ev.Result = &res[0]
	} else if err == nil {
		ev.Err = fmt.Errorf("serve: engine returned %d results for one request", len(res))
	}
	send(ev)
}

// NewGenerator is the generator the server runs on m: Sequential, one sequence at a time.
func NewGenerator(m *engine.Model, maxQueue int) (Generator, error) {
	return NewSequential(m, maxQueue)
}
