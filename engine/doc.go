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
// # Non-finite values
//
// Load refuses a weight holding NaN or Inf, naming the tensor and the flat
// index (the scan runs on each block of values right after it is copied).
// Every step graph also returns, per block, how many values of its output
// (after its hook; padding excluded) are NaN, Inf or beyond ±1.8e19, where
// the next RMS norm's square overflows float32, and how many logits are not
// finite: a few bytes per step. Generate and Forward stop at the first such
// step with a *NonFiniteError naming the step and the first bad layer.
//
// # Memory
//
// EstimateMemory gives the peak resident memory of a run on the "go"
// backend, by term: process baseline, the mapped checkpoint, float32
// weights, KV cache, the largest step's buffers and the garbage the Go
// collector lets accumulate (GOGC percent of the live heap).
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
// A Model runs one Generate or Forward at a time (calls are serialised);
// OnToken runs while the model is busy and must not call back into it.
package engine
