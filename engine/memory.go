package engine

import (
	"fmt"
	"os"
	"runtime"
	"slices"
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
// model on a CPU backend ("cpu" or "go") and runs a workload, by term. See
// EstimateMemory for the model behind each term.
type MemoryEstimate struct {
	Workload MemoryWorkload
	// Backend is the backend estimated for ("cpu" or "go"), and
	// WeightDType the dtype the weights are held in there.
	Backend, WeightDType string
	// Baseline is the process before the model is opened: the binary, the
	// Go runtime and GoMLX (measured by the caller, see ProcessRSS).
	Baseline int64
	// Mapped is the checkpoint: its files are memory-mapped and every byte
	// is read while loading, so they stay resident while the model is open
	// (on "cpu" the weights used as stored are read in these pages; they
	// are the page cache's, shared with other processes mapping the file).
	Mapped int64
	// Weights is the weights as the backend holds them (float32 on "go";
	// the checkpoint's dtype on "cpu" unless another is asked for), less
	// those "cpu" reads where they lie in the mapped checkpoint (counted in
	// Mapped; see LoadOptions.CopyWeights and mappedWeights).
	Weights int64
	// HeldWeights is the weights as the backend holds them, copied or
	// mapped: what a decode step reads (not a term of Total).
	HeldWeights int64
	// KVCache is the K and V caches of the batch (float32), over the cache
	// slots the engine allocates for the context.
	KVCache int64
	// Workspace is the buffers of the largest step: on "go" one block of
	// the prefill chunk (attention scores, projections, MLP activations,
	// the new caches) and the logits; on "cpu", which keeps every buffer
	// in a pool by size, one block of the prefill chunk and one of a decode
	// step, and the logits of both.
	Workspace int64
	// GCHeadroom is the garbage the Go collector lets accumulate before it
	// runs: GOGC percent (default 100) of the live heap (weights, cache and
	// workspace; at least the collector's 4 MiB minimum heap goal), or less
	// when the whole run allocates less: on "go" every step's buffers
	// become garbage; on "cpu" only the float32 copies made while loading
	// (a 16-bit checkpoint read as float32, float32 values rounded to
	// 16-bit storage), when only the weights are live, so this term is
	// what the loading peak exceeds the live heap of the run by.
	GCHeadroom int64
	// GOGC is the collector setting used for GCHeadroom.
	GOGC int
	// Total is the sum of the terms: the estimated peak resident set.
	Total int64
}

// EstimateMemory estimates the peak resident memory of a process (whose
// resident memory before opening the model is baseline) that opens the
// model of cfg, stored in checkpointBytes of safetensors, on backend ("cpu",
// "" for the default, or "go") with the weight dtype of opts, and generates
// w. The terms are described on MemoryEstimate; the Go heap holds the
// weights, cache and workspace (the live heap) plus up to GOGC percent of it
// in garbage, and the mapped checkpoint comes on top.
func EstimateMemory(cfg *weights.Config, checkpointBytes, baseline int64, backend string, opts LoadOptions, w MemoryWorkload) (MemoryEstimate, error) {
	if w.Batch < 1 || w.Prompt < 1 || w.NewTokens < 0 {
		return MemoryEstimate{}, fmt.Errorf("engine: memory workload batch %d, prompt %d, new tokens %d: expected batch >= 1, prompt >= 1, new tokens >= 0",
			w.Batch, w.Prompt, w.NewTokens)
	}
	if backend == "" {
		backend = "cpu"
	}
	if backend != "cpu" && backend != "go" {
		return MemoryEstimate{}, fmt.Errorf("engine: memory estimate for backend %q: expected \"cpu\" or \"go\"", backend)
	}
	const f32 = 4
	params := cfg.ParamCount()
	// Bytes per parameter in the checkpoint (4, or 2 for BF16/F16).
	stored := int64(4)
	if checkpointBytes < 3*params {
		stored = 2
	}
	dtype, elem, err := heldWeightDType(backend, opts.WeightDType, stored)
	if err != nil {
		return MemoryEstimate{}, err
	}
	L, V := int64(cfg.NumLayers), int64(cfg.VocabSize)
	// The CPU backends' buckets (see promptLength and cacheLength).
	T := int64(promptBucket(w.Prompt, true))
	S := int64(cacheBucket(int(T)+w.NewTokens+1, true))
	chunk := min(T, int64(prefillChunk))
	e := MemoryEstimate{Workload: w, Backend: backend, WeightDType: dtype, Baseline: baseline, Mapped: checkpointBytes, GOGC: gogc()}
	e.Weights = params * elem
	e.HeldWeights = e.Weights
	copied := params // parameters copied into the backend's memory
	if backend == "cpu" && !opts.CopyWeights {
		values, bytes := mappedWeights(cfg, stored, elem)
		e.Weights = max(0, e.Weights-bytes)
		copied -= values
	}
	if e.KVCache, err = kvCacheBytes(cfg, opts, w.Batch, S); err != nil {
		return MemoryEstimate{}, err
	}
	logits := f32 * int64(w.Batch) * V * 2
	var garbage int64
	if backend == "go" {
		split := int64(runtime.GOMAXPROCS(0))
		// Blocks run one after the other and free their buffers, so the live
		// workspace is one block's buffers and the logits.
		e.Workspace = blockStepBytes(cfg, w.Batch, chunk, S, split) + logits
		// Every step leaves all its blocks' buffers as garbage; the collector
		// runs when the garbage reaches GOGC percent of the live heap.
		chunks := (T + chunk - 1) / chunk
		garbage = chunks*(L*blockStepBytes(cfg, w.Batch, chunk, S, split)+logits) + int64(w.NewTokens)*(L*blockStepBytes(cfg, w.Batch, 1, S, split)+logits)
	} else {
		// Pooled buffers are reused from block to block and step to step,
		// one set per size: the prefill chunk's and the decode step's.
		e.Workspace = blockStepBytes(cfg, w.Batch, chunk, S, 0) + logits
		if w.NewTokens > 0 {
			e.Workspace += blockStepBytes(cfg, w.Batch, 1, S, 0) + f32*int64(w.Batch)*V
		}
		// Loading: a copied weight of a 16-bit checkpoint is read as
		// float32, and 16-bit storage is filled through a float32 copy.
		if stored == 2 {
			garbage += copied * f32
		}
		if elem == 2 {
			garbage += copied * f32
		}
	}
	live := e.Weights + e.KVCache + e.Workspace
	// The collector lets the heap grow to GOGC percent above the live heap,
	// and never runs below its minimum heap goal (4 MiB at GOGC=100).
	headroom := func(live int64) int64 {
		return min(max(live*int64(e.GOGC)/100, (4<<20)*int64(e.GOGC)/100-live), garbage)
	}
	if backend == "go" {
		e.GCHeadroom = headroom(live)
	} else {
		// The loading garbage comes while only the weights are live; the
		// pages it leaves are reused by the cache and workspace after.
		e.GCHeadroom = max(0, e.Weights+headroom(e.Weights)-live)
	}
	e.Total = e.Baseline + e.Mapped + live + e.GCHeadroom
	return e, nil
}

// mappedWeights is how many parameters, and bytes as held, of a checkpoint
// of cfg the "cpu" backend reads where they lie in the mapped file (see
// loader.mapView) when the checkpoint stores stored bytes per value (4, or
// 2 for BF16/F16, throughout) and matrices are held in elem bytes per
// value: the weights held in the stored dtype (norms and biases are held
// in float32), not transformed (Gemma's norms are), whose parts lie back
// to back in the order tether and Hugging Face write them, sorted by name
// (gate then up does, q, k and v does not).
func mappedWeights(cfg *weights.Config, stored, elem int64) (values, bytes int64) {
	var names []string
	for _, spec := range cfg.ExpectedTensors() {
		names = append(names, spec.Name)
	}
	slices.Sort(names)
	pos := make(map[string]int, len(names))
	for i, n := range names {
		pos[n] = i
	}
	// add counts w, held in size bytes per value, when it is mapped.
	add := func(w weights.Weight, size int64, transformed bool) {
		if !w.Present() || transformed || size != stored {
			return
		}
		var n int64
		for i, p := range w.Parts {
			if i > 0 && pos[p.Name] != pos[w.Parts[i-1].Name]+1 {
				return
			}
			n += int64(product(p.Shape))
		}
		values += n
		bytes += n * size
	}
	lay := cfg.Layout()
	plus := cfg.NormPlusOne
	add(lay.Embed, elem, false)
	add(lay.LMHead, elem, false)
	add(lay.Norm, 4, plus)
	for i := range lay.Layers {
		l := &lay.Layers[i]
		for _, w := range []weights.Weight{l.QKV, l.O, l.GateUp, l.Down} {
			add(w, elem, false)
		}
		for _, w := range []weights.Weight{l.AttnNorm, l.PostAttnNorm, l.PreFFNorm, l.PostFFNorm, l.QNorm, l.KNorm} {
			add(w, 4, plus)
		}
		for _, w := range []weights.Weight{l.QKVBias, l.OBias, l.GateUpBias, l.DownBias} {
			add(w, 4, false)
		}
	}
	return values, bytes
}

// heldWeightDType is the dtype (and its size) the weights of a checkpoint
// with stored bytes per parameter are held in on backend ("cpu" or "go")
// when asked for dtype (a LoadOptions.WeightDType).
func heldWeightDType(backend, dtype string, stored int64) (string, int64, error) {
	switch dtype {
	case "", "auto":
		if backend == "cpu" && stored == 2 {
			return "16-bit (checkpoint)", 2, nil
		}
		return "float32", 4, nil
	case "float32", "f32":
		return "float32", 4, nil
	case "bfloat16", "bf16":
		return "bfloat16", 2, nil
	case "float16", "f16":
		return "float16", 2, nil
	}
	return "", 0, fmt.Errorf("engine: memory estimate: weight dtype %q: expected float32, bfloat16 or float16", dtype)
}

// kvCacheBytes is the K and V caches of batch sequences over slots cache
// positions, held in the dtype opts.CacheDType names (float32 by default).
func kvCacheBytes(cfg *weights.Config, opts LoadOptions, batch int, slots int64) (int64, error) {
	dt, err := cacheDType(opts.CacheDType, nil)
	if err != nil {
		return 0, err
	}
	return 2 * int64(cfg.NumLayers) * int64(batch) * int64(cfg.NumKVHeads) * slots * int64(cfg.HeadDim) * int64(dt.Size()), nil
}

// blockStepBytes is what one block allocates in a step of t positions of
// batch sequences over slots cache positions: the attention scores and
// their softmax (6 float copies and a boolean mask), the new K and V caches
// and the values written, projections, rotary, MLP activations (with the
// broadcast input of the split down projection, one per GOMAXPROCS),
// residual and norms. split is the number of blocks simplego's down
// projection is split into (0 on "cpu").
func blockStepBytes(cfg *weights.Config, batch int, t, slots, split int64) int64 {
	const f32 = 4
	B := int64(batch)
	H, I := int64(cfg.HiddenSize), int64(cfg.IntermediateSize)
	nH, kvH, hd := int64(cfg.NumHeads), int64(cfg.NumKVHeads), int64(cfg.HeadDim)
	qkv := (nH + 2*kvH) * hd
	p := split
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
