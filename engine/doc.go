// Package engine runs decoder-only transformers (Llama, Mistral, Qwen 2/3,
// Gemma 2/3, Phi-3) as GoMLX graphs, with a KV cache, batched generation and hook
// points on the residual stream.
//
// # Use
//
//	m, _ := model.Open("HuggingFaceTB/SmolLM2-135M-Instruct", model.Options{Backend: "go"}) // or "xla:cuda"
//	defer m.Close()
//	ids, _ := m.Tokenizer.Encode("Once upon a time", true)
//	res, _ := m.Engine.Generate(ctx, []engine.Request{{Prompt: ids, MaxNewTokens: 64}}, engine.GenerateOptions{})
//
// model.Open (package model) resolves the model, checks its checkpoint
// against its config.json and calls engine.Load(backend, cfg, ckpt), which
// makes the weights resident on the backend (engine.NewBackend).
//
// Prompts are token ids exactly as given: the engine adds no BOS and applies
// no chat template. Empty prompts are an error.
//
// # Residual stream, hooks and capture
//
// Layer i's hook point is the output of decoder block i (0-based): the
// residual stream after the block's attention and MLP (Gemma: after the
// post-feedforward norm's contribution is added), before the next block and
// before the final norm. A LayerHook first adds Add, then applies each Clamp
// in order: p = <h, Dir>; h += (clamp(p, Lo, Hi) - p) * Dir. A floor
// (Hi = +Inf) raises projections below Lo to Lo and leaves the rest
// unchanged. Open clamps (-Inf, +Inf) leave h bit-identical. What the
// directions and thresholds mean (axes, caps) is package steer's business.
//
// Hook vectors and thresholds are graph inputs: new values never recompile.
// The set of hooked layers, the number of clamps, whether Add is set,
// NewestOnly and Record are the graph's structure: a new combination builds
// one new graph (milliseconds on the go backend), then it is reused.
//
// Captured layers return the residual stream after the block and after its
// hook, so a hook on layer k changes captures of layers >= k only.
//
// # Batching and the cache
//
// Sequences of different lengths are left-padded to a common length (a
// multiple of 8) so that every sequence writes the same cache slot at each
// step; each sequence's positions start at 0 at its first real token, and
// padding is masked out of attention. The cache holds, per layer, K and V of
// shape [batch, kvHeads, slots, headDim] with slots the padded prompt length
// plus the new tokens, rounded up to a multiple of 64. Prompts longer than
// 512 tokens are prefilled in chunks through the cache.
//
// # Continuous batching
//
// A Batcher (NewBatcher) serves requests as they come: Submit queues a
// BatchRequest (bounded by MaxQueue, ErrQueueFull beyond) and returns a
// channel of Events, one per token and a final one with the Result. A new
// request is prefilled alone, exactly as Generate prefills it, and its cache
// row is copied into the running batch, which decodes one token per row per
// step. Rows keep their own cache slots (the step graph's slot input is per
// row for the Batcher), so a row's values sit where Generate alone puts them
// and its tokens and telemetry are bit-identical to its run alone. The batch
// grows and shrinks in power-of-two row buckets up to MaxBatch; the cache
// holds MaxContext slots per row (attention costs grow with it: size it to
// the requests served). Cancelling a request's context frees its row at the
// next step; Close drains or, past its deadline, cancels.
//
// Hook values are per row in the Batcher: when any row has hooks, the step
// uses a fixed structure, every layer with an Add vector, MaxClamps clamps
// and a NewestOnly flag per row, all graph inputs, with telemetry always
// returned; untouched rows get neutral values (zero Add, zero clamp
// directions with bounds -Inf, +Inf), which leave their stream bit-identical.
// Steps where no row has hooks run the plain graph. Rows joining and leaving
// therefore compile nothing beyond one graph per (row bucket, hooked or not)
// and one per prompt length bucket.
//
// # Non-finite values
//
// Load refuses a weight holding NaN or Inf, naming the tensor and the flat
// index (the scan runs on each block of values right after it is copied,
// and over the stored bytes of a weight read where it lies).
// Every step graph also returns, per block, how many values of its output
// (after its hook; padding excluded) are NaN, Inf or beyond ±1.8e19, where
// the next RMS norm's square overflows float32, and how many logits are not
// finite: a few bytes per step. Generate and Forward stop at the first such
// step with a *NonFiniteError naming the step and the first bad layer.
//
// # Memory
//
// On the "cpu" backend the weights used exactly as stored (the checkpoint's
// dtype, no transform, parts back to back in the file: embeddings, o,
// down, gate then up as Hugging Face sorts them, a fused q|k|v) are
// read-only views of the memory-mapped checkpoint, not copies: their pages
// are the page cache's, shared by every process mapping the same file. The
// model keeps the checkpoint mapped until Close, even when the caller closes
// it first (weights.Checkpoint.Retain). The rest (q, k and v stored apart,
// Gemma's norms, another dtype) is copied; so is everything on "go" and XLA,
// and with LoadOptions.CopyWeights. Model.WeightStorage says which is which.
//
// EstimateMemory gives the peak resident memory of a run on the "cpu" and
// "go" backends, by term: process baseline, the mapped checkpoint, the
// weights copied into the backend's memory, KV cache, the largest step's
// buffers and the garbage the Go collector lets accumulate (GOGC percent of
// the live heap).
//
// # Backends
//
// On the pure-Go backend ("go", simplego) weights are float32 and each
// projection's weight is stored as [P, out/P, in]: P is a multiple of
// GOMAXPROCS, so that one product runs its blocks on every core, with blocks
// of at most 4096 rows, so that decoding products stay on simplego's fast
// matrix-vector path. The cache is written with a select over a slot mask
// (simplego has no DynamicUpdateSlice). On XLA weights default to bfloat16
// (see LoadOptions), P is 1 and the cache uses DynamicUpdateSlice.
//
// A Model runs one Generate or Forward (or one Batcher step) at a time
// (calls are serialised);
// OnToken runs while the model is busy and must not call back into it.
package engine
