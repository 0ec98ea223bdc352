package serve

import (
	"context"

	"tether/engine"
)

// Generator runs the server's sequences: *engine.Batcher (continuous batching with per-row
// hooks). Events of a sequence arrive on its channel in order, ending with one Done event;
// cancelling the context given to Submit ends the sequence and frees its row. Submit fails
// with engine.ErrQueueFull when the queue is at its bound and engine.ErrBatcherClosed after
// Close.
type Generator interface {
	Submit(ctx context.Context, r engine.BatchRequest) (<-chan engine.Event, error)
	Stats() engine.BatcherStats
	Close(ctx context.Context) error
}
