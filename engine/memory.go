package engine

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"tether/weights"
)

// MemoryWorkload is the run a memory estimate is for.
type MemoryWorkload struct {
	// Batch is the number of sequences generated together (>= 1).
	Batch int
	// Prompt is the prompt length of each sequence (>= 1); it sets the size
	// of the prefill step (chunks of at most 512 positions).
	Prompt int
	// NewTokens is the number of tokens generated per sequence (>= 0).
	NewTokens int
}

// MemoryEstimate is the peak resident memory of a process that loads a
// model on the CPU ("go") backend and runs a workload, by term. See
// EstimateMemory for the model behind each term.
type MemoryEstimate struct {
	Workload MemoryWorkload
	// Baseline is the process before the model is opened: the binary, the
	// Go runtime and GoMLX (measured by the caller, see ProcessRSS).
	Baseline int64
	// Mapped is the checkpoint: its files are memory-mapped and every byte
	// is read while loading, so they stay resident while the model is open.
	Mapped int64
	// Weights is the weights as the backend holds them (float32 on "go").
	Weights int64
	// KVCache is the K and V caches of the batch (float32), over the cache
	// slots the engine allocates for the context.
	KVCache int64
	// Workspace is the buffers of the largest step (the prefill chunk):
	// attention scores, projections, MLP activations, the new caches and
	// the logits.
	Workspace int64
	// GCHeadroom is the garbage the Go collector lets accumulate before it
	// runs: GOGC percent (default 100) of the live heap (weights, cache and
	// workspace; at least the collector's 4 MiB minimum heap goal), or less
	// when the whole run allocates less (every step's buffers become
	// garbage).
	GCHeadroom int64
	// GOGC is the collector setting used for GCHeadroom.
	GOGC int
	// Total is the sum of the terms: the estimated peak resident set.
	Total int64
}

// EstimateMemory estimates the peak resident memory of a process (whose
// resident memory before opening the model is baseline) that opens the
// model of cfg, stored in checkpointBytes of safetensors, on the CPU ("go")
// backend and generates w. The terms are described on MemoryEstimate; the
// Go heap holds the weights, cache and workspace (the live heap) plus up to
// GOGC percent of it in garbage, and the mapped checkpoint comes on top.
func EstimateMemory(cfg *weights.Config, checkpointBytes, baseline int64, w MemoryWorkload) (MemoryEstimate, error) {
	if w.Batch < 1 || w.Prompt < 1 || w.NewTokens < 0 {
		return MemoryEstimate{}, fmt.Errorf("engine: memory workload batch %d, prompt %d, new tokens %d: expected batch >= 1, prompt >= 1, new tokens >= 0",
			w.Batch, w.Prompt, w.NewTokens)
	}
	const f32 = 4
	L, V := int64(cfg.NumLayers), int64(cfg.VocabSize)
	// The go backend's buckets (see promptLength and cacheLength).
	T := int64(promptBucket(w.Prompt, true))
	S := int64(cacheBucket(int(T)+w.NewTokens+1, true))
	chunk := min(T, int64(prefillChunk))
	e := MemoryEstimate{Workload: w, Baseline: baseline, Mapped: checkpointBytes, GOGC: gogc()}
	e.Weights = cfg.ParamCount() * f32
	e.KVCache = kvCacheBytes(cfg, w.Batch, S)
	logits := f32 * int64(w.Batch) * V * 2
	// Blocks run one after the other and free their buffers, so the live
	// workspace is one block's buffers and the logits.
	e.Workspace = blockStepBytes(cfg, w.Batch, chunk, S) + logits
	live := e.Weights + e.KVCache + e.Workspace
	// Every step leaves all its blocks' buffers as garbage; the collector
	// runs when the garbage reaches GOGC percent of the live heap.
	chunks := (T + chunk - 1) / chunk
	garbage := chunks*(L*blockStepBytes(cfg, w.Batch, chunk, S)+logits) + int64(w.NewTokens)*(L*blockStepBytes(cfg, w.Batch, 1, S)+logits)
	// The collector lets the heap grow to GOGC percent above the live heap,
	// and never runs below its minimum heap goal (4 MiB at GOGC=100).
	allowed := max(live*int64(e.GOGC)/100, (4<<20)*int64(e.GOGC)/100-live)
	e.GCHeadroom = min(allowed, garbage)
	e.Total = e.Baseline + e.Mapped + live + e.GCHeadroom
	return e, nil
}

// kvCacheBytes is the K and V caches (float32, on every backend) of batch
// sequences over slots cache positions.
func kvCacheBytes(cfg *weights.Config, batch int, slots int64) int64 {
	return 2 * int64(cfg.NumLayers) * int64(batch) * int64(cfg.NumKVHeads) * slots * int64(cfg.HeadDim) * 4
}

// blockStepBytes is what one block allocates in a step of t positions of
// batch sequences over slots cache positions: the attention scores and
// their softmax (6 float copies and a boolean mask), the new K and V caches
// and the values written, projections, rotary, MLP activations (with the
// broadcast input of the split down projection, one per GOMAXPROCS),
// residual and norms.
func blockStepBytes(cfg *weights.Config, batch int, t, slots int64) int64 {
	const f32 = 4
	B := int64(batch)
	H, I := int64(cfg.HiddenSize), int64(cfg.IntermediateSize)
	nH, kvH, hd := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	qkv := (nH + 2*kvH) * hd
	p := int64(runtime.GOMAXPROCS(0))
	cacheLayer := B * kvH * slots * hd * f32
	n := B * t
	return 6*B*nH*t*slots*f32 + B*nH*t*slots + 4*cacheLayer + f32*n*(3*qkv+(3+p)*I+10*H)
}

// gogc returns the Go collector's GOGC setting from the environment (100
// when unset or not a positive number).
func gogc() int {
	if v, err := strconv.Atoi(os.Getenv("GOGC")); err == nil && v > 0 {
		return v
	}
	return 100
}

// ProcessRSS returns the resident memory of this process now, in bytes (from
// /proc/self/statm; Linux only).
func ProcessRSS() (int64, error) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, fmt.Errorf("engine: resident memory: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return 0, fmt.Errorf("engine: resident memory: /proc/self/statm %q: expected size and resident pages", data)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("engine: resident memory: /proc/self/statm resident pages %q: %w", f[1], err)
	}
	return pages * int64(os.Getpagesize()), nil
}
