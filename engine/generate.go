package engine

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Request is one sequence to continue.
type Request struct {
	// Prompt holds the token ids to continue; it must not be empty. The
	// engine adds nothing: callers prepend BOS (and apply chat templates)
	// themselves.
	Prompt []int
	// MaxNewTokens bounds the generated tokens (> 0). Generation also stops
	// at the model's context length (MaxPositions), with StopContext: the
	// prompt and the generated tokens then fill the context exactly.
	MaxNewTokens int
	// Sampling chooses each token; the zero value is greedy.
	Sampling SamplingParams
	// StopTokens end generation when sampled, as do the config's
	// EOSTokenIDs unless IgnoreEOS. The stop token is not part of
	// Result.Tokens.
	StopTokens []int
	// IgnoreEOS keeps this request generating past the config's EOS tokens
	// (benchmarks and tests of random models, which emit them by chance);
	// StopTokens still apply.
	IgnoreEOS bool
	// StopStrings end generation when the decoded text contains one; they
	// need GenerateOptions.Detokenizer. Result.Text excludes the stop string.
	StopStrings []string
}

// Detokenizer turns token ids into text.
type Detokenizer interface {
	Decode(ids []int, skipSpecial bool) (string, error)
}

// GenerateOptions configures Generate for the whole batch.
type GenerateOptions struct {
	// Hooks change the residual stream after the given blocks at every step.
	Hooks Hooks
	// CaptureLayers lists the blocks whose output residual stream is
	// returned for every position (prompt and generated).
	CaptureLayers []int
	// Detokenizer, when set, fills Result.Text; stop strings need it.
	Detokenizer Detokenizer
	// OnToken, when set, is called for every kept token in the order tokens
	// are produced (seq is the request's index).
	OnToken func(seq int, token int)
}

// Stop reasons reported in Result.StopReason.
const (
	StopEOS       = "eos"         // a stop token (or EOS) was sampled
	StopString    = "stop_string" // a stop string appeared in the text
	StopLength    = "length"      // MaxNewTokens tokens were generated
	StopContext   = "context"     // the prompt and tokens fill the model's context (before MaxNewTokens)
	StopCancelled = "cancelled"   // the context was cancelled
)

// Result is the outcome of one Request.
type Result struct {
	// Tokens are the generated ids, without the stop token.
	Tokens []int
	// Text is the decoded text of Tokens (with a Detokenizer), cut before a
	// stop string.
	Text string
	// StopReason is one of StopEOS, StopString, StopLength, StopContext,
	// StopCancelled.
	StopReason string
	// PromptTokens is len(Request.Prompt).
	PromptTokens int
	// PrefillDuration and DecodeDuration time the batch's prompt step and
	// its generation steps (shared by the whole batch).
	PrefillDuration, DecodeDuration time.Duration
	// Telemetry[i][layer] is what each recording hook saw at the position
	// whose logits produced Tokens[i] (the previous token's position).
	Telemetry []map[int]HookRecord
	// Captured[layer][pos] is the residual stream after the block at every
	// position of Prompt followed by Tokens.
	Captured map[int][][]float32
}

// seqState is the generation state of one sequence of the batch.
type seqState struct {
	req       Request
	vocabSize int
	// maxNew is MaxNewTokens or, when smaller, the room left in the context;
	// limit is the stop reason when maxNew tokens have been generated.
	maxNew     int
	limit      string
	sampler    *Sampler
	stopTokens map[int]bool
	stop       *StopMatcher
	history    []int
	decoded    int // bytes of decoded text already pushed to stop
	done       bool
	// unfed: the last kept token has not yet gone through the model (its
	// residual stream is still to be captured).
	unfed bool
	res   *Result
}

// Generate continues every request as one batch (prompts of different
// lengths are left-padded) and returns one Result per request. Cancelling
// ctx stops generation after the current step: the results so far are
// returned with StopCancelled and ctx's error.
func (m *Model) Generate(ctx context.Context, reqs []Request, opts GenerateOptions) ([]Result, error) {
	if len(reqs) == 0 {
		return nil, fmt.Errorf("engine: Generate: no requests")
	}
	plan, err := m.makePlan(opts.Hooks, opts.CaptureLayers, false)
	if err != nil {
		return nil, err
	}
	seqs := make([]*seqState, len(reqs))
	maxPrompt, maxNew := 0, 0
	prompts := make([][]int, len(reqs))
	for i, r := range reqs {
		s, err := m.newSeqState(i, r, opts)
		if err != nil {
			return nil, err
		}
		seqs[i] = s
		prompts[i] = r.Prompt
		maxPrompt = max(maxPrompt, len(r.Prompt))
		maxNew = max(maxNew, s.maxNew)
	}
	T := m.promptLength(maxPrompt)
	// One extra slot lets the last kept tokens go through the model for capture.
	slots := m.cacheLength(T + maxNew + 1)
	batch, pad := m.leftPad(prompts, T)
	H := m.cfg.HiddenSize

	m.mu.Lock()
	defer m.mu.Unlock()
	cache := m.newKVCache(len(reqs), slots)
	defer func() { cache.free() }() // cache is replaced when the batch is compacted

	start := time.Now()
	out, err := m.prefill(ctx, batch, pad, cache, plan, opts.Hooks)
	if err != nil {
		return nil, err
	}
	prefill := time.Since(start)
	for b, s := range seqs {
		s.res.PrefillDuration = prefill
		for _, layer := range plan.capture {
			s.res.Captured[layer] = rowsOf(out.captured[layer], b, T, int(pad[b]), len(s.req.Prompt), H)
		}
		if s.maxNew <= 0 {
			s.finish(s.limit, opts.Detokenizer)
		}
	}
	start = time.Now()
	rowT := T // positions per batch row in out: T for the prefill, 1 after
	// rows maps each batch row to its sequence (-1: a filler row).
	rows := make([]int, len(seqs))
	for i := range rows {
		rows[i] = i
	}
	for step := 0; ; step++ {
		// Choose each active sequence's next token from this step's logits.
		for r, si := range rows {
			if si < 0 || seqs[si].done {
				continue
			}
			// Logits are [B, V]; telemetry rows are [B, rowT].
			if err := seqs[si].accept(si, out, r, r*rowT+rowT-1, plan, opts); err != nil {
				return nil, err
			}
		}
		var needed []int // sequences that still go through the model
		for si, s := range seqs {
			if !s.done || (s.unfed && len(plan.capture) > 0) {
				needed = append(needed, si)
			}
		}
		if len(needed) == 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			for _, s := range seqs {
				if !s.done {
					s.finish(StopCancelled, opts.Detokenizer)
				}
				s.res.DecodeDuration = time.Since(start)
			}
			return results(seqs), err
		}
		if newRows := m.compactedRows(rows, needed); newRows != nil {
			if cache, pad, err = m.compactCache(cache, pad, rows, newRows); err != nil {
				return nil, err
			}
			rows = newRows
		}
		feed := make([][]int32, len(rows))
		fed := make([]bool, len(rows))
		for r, si := range rows {
			feed[r] = []int32{0}
			if si < 0 {
				continue
			}
			s := seqs[si]
			if (!s.done || s.unfed) && len(s.res.Tokens) > 0 {
				feed[r][0] = int32(s.res.Tokens[len(s.res.Tokens)-1])
				fed[r] = s.unfed
				s.unfed = false
			}
		}
		out, err = m.runStep(stepRequest{tokens: feed, pad: pad, slot: int32(T + step), cache: cache, plan: plan, hooks: opts.Hooks, step: step + 1})
		if err != nil {
			return nil, err
		}
		rowT = 1
		for r, si := range rows {
			if !fed[r] {
				continue
			}
			s := seqs[si]
			for _, layer := range plan.capture {
				s.res.Captured[layer] = append(s.res.Captured[layer], rowsOf(out.captured[layer], r, 1, 0, 1, H)[0])
			}
		}
	}
	for _, s := range seqs {
		s.res.DecodeDuration = time.Since(start)
	}
	return results(seqs), nil
}

// newSeqState validates request i and prepares its state.
func (m *Model) newSeqState(i int, r Request, opts GenerateOptions) (*seqState, error) {
	what := fmt.Sprintf("request %d prompt", i)
	if err := m.checkTokens(r.Prompt, what); err != nil {
		return nil, err
	}
	if r.MaxNewTokens <= 0 {
		return nil, fmt.Errorf("engine: request %d: MaxNewTokens %d, expected > 0", i, r.MaxNewTokens)
	}
	if err := r.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("engine: request %d: %w", i, err)
	}
	if len(r.StopStrings) > 0 && opts.Detokenizer == nil {
		return nil, fmt.Errorf("engine: request %d has stop strings but GenerateOptions.Detokenizer is nil", i)
	}
	s := &seqState{
		req:        r,
		vocabSize:  m.cfg.VocabSize,
		maxNew:     r.MaxNewTokens,
		limit:      StopLength,
		sampler:    NewSampler(r.Sampling),
		stopTokens: map[int]bool{},
		stop:       NewStopMatcher(r.StopStrings),
		history:    append([]int(nil), r.Prompt...),
		res:        &Result{PromptTokens: len(r.Prompt), Captured: map[int][][]float32{}},
	}
	if room := m.cfg.MaxPositions - len(r.Prompt); room < s.maxNew {
		s.maxNew, s.limit = room, StopContext
	}
	if len(opts.CaptureLayers) == 0 {
		s.res.Captured = nil
	}
	if !r.IgnoreEOS {
		for _, id := range m.cfg.EOSTokenIDs {
			s.stopTokens[id] = true
		}
	}
	for _, id := range r.StopTokens {
		s.stopTokens[id] = true
	}
	return s, nil
}

// accept samples sequence b's next token from row logitsRow of out's [B, V]
// logits and updates the state; row is its newest position in out's
// [B, T] telemetry rows.
func (s *seqState) accept(b int, out *stepResult, logitsRow, row int, plan stepPlan, opts GenerateOptions) error {
	V := s.vocabSize
	tok := s.sampler.Sample(out.logits[logitsRow*V:(logitsRow+1)*V], s.history)
	if s.stopTokens[tok] {
		s.finish(StopEOS, opts.Detokenizer)
		return nil
	}
	s.res.Tokens = append(s.res.Tokens, tok)
	s.history = append(s.history, tok)
	s.unfed = true
	if len(plan.hooks) > 0 {
		tel := map[int]HookRecord{}
		for _, sp := range plan.hooks {
			if sp.record {
				tel[sp.layer] = makeRecord(out, opts.Hooks[sp.layer], sp, row)
			}
		}
		if len(tel) > 0 {
			s.res.Telemetry = append(s.res.Telemetry, tel)
		}
	}
	if opts.OnToken != nil {
		opts.OnToken(b, tok)
	}
	if opts.Detokenizer != nil {
		text, err := opts.Detokenizer.Decode(s.res.Tokens, true)
		if err != nil {
			return fmt.Errorf("engine: request %d: decoding generated tokens: %w", b, err)
		}
		// Hold back an incomplete UTF-8 sequence until more tokens arrive.
		if len(text) > s.decoded && !strings.HasSuffix(text, string(utf8.RuneError)) {
			emit, stopped := s.stop.Push(text[s.decoded:])
			s.decoded = len(text)
			s.res.Text += emit
			if stopped {
				s.done = true
				s.res.StopReason = StopString
				return nil
			}
		}
	}
	if len(s.res.Tokens) >= s.maxNew {
		s.finish(s.limit, opts.Detokenizer)
	}
	return nil
}

// finish ends the sequence, flushing text held back for stop strings.
func (s *seqState) finish(reason string, det Detokenizer) {
	s.done = true
	s.res.StopReason = reason
	if det != nil && reason != StopString {
		if text, err := det.Decode(s.res.Tokens, true); err == nil && len(text) > s.decoded {
			emit, stopped := s.stop.Push(text[s.decoded:])
			s.decoded = len(text)
			s.res.Text += emit
			if stopped {
				s.res.StopReason = StopString
				return
			}
		}
		s.res.Text += s.stop.Flush()
	}
}

// results collects the results of every sequence.
func results(seqs []*seqState) []Result {
	out := make([]Result, len(seqs))
	for i, s := range seqs {
		out[i] = *s.res
	}
	return out
}
