package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"tether/model"
	"tether/probe"
)

// RolloutBenchOptions sets what RolloutThroughput measures.
type RolloutBenchOptions struct {
	// Batches are the batch sizes measured (default 1 and 8).
	Batches []int
	// MaxNewTokens is the length of every response (generation ignores EOS so that random
	// models produce exactly this many; default 32).
	MaxNewTokens int
	// Repeats: each number is the best of this many runs after one warm-up (default 2).
	Repeats int
}

// DefaultRolloutBenchOptions are used for zero fields.
var DefaultRolloutBenchOptions = RolloutBenchOptions{Batches: []int{1, 8}, MaxNewTokens: 32, Repeats: 2}

// RolloutBenchRow is the throughput at one batch size.
type RolloutBenchRow struct {
	Batch int `json:"batch"`
	// RolloutTPS is new tokens per second of rollout generation (prefill included), over the
	// whole batch.
	RolloutTPS float64 `json:"rollout_new_tokens_per_s"`
	// ExtractTPS is tokens per second of activation extraction: a forward pass over whole
	// conversations capturing every layer, reduced to the mean over the response.
	ExtractTPS float64 `json:"extract_tokens_per_s"`
	// ExtractTokens is the number of conversation tokens one extraction ran over (the same
	// conversations at every batch size: as many as the largest batch).
	ExtractTokens int `json:"extract_tokens"`
}

// RolloutBenchReport is the result of RolloutThroughput.
type RolloutBenchReport struct {
	Model        string            `json:"model"`
	Layers       int               `json:"layers"`
	HiddenSize   int               `json:"hidden_size"`
	Threads      int               `json:"threads"`
	MaxNewTokens int               `json:"max_new_tokens"`
	Repeats      int               `json:"repeats"`
	Rows         []RolloutBenchRow `json:"rows"`
}

// RolloutThroughput measures the persona pipeline's two heavy steps on m: rollout generation
// (the built-in data set's first prompts and questions, the paper's sampling) and activation
// extraction (Capture over the resulting conversations, every layer), at each batch size. Every
// batch size processes the same conversations (as many as the largest batch), so the rates
// compare like with like.
func RolloutThroughput(ctx context.Context, m *model.Model, o RolloutBenchOptions) (RolloutBenchReport, error) {
	d := DefaultRolloutBenchOptions
	if len(o.Batches) == 0 {
		o.Batches = d.Batches
	}
	if o.MaxNewTokens <= 0 {
		o.MaxNewTokens = d.MaxNewTokens
	}
	if o.Repeats <= 0 {
		o.Repeats = d.Repeats
	}
	r := RolloutBenchReport{Model: m.Name, Layers: m.Config.NumLayers, HiddenSize: m.Config.HiddenSize,
		Threads: runtime.GOMAXPROCS(0), MaxNewTokens: o.MaxNewTokens, Repeats: o.Repeats}
	ds, err := probe.BuiltinDataset()
	if err != nil {
		return r, err
	}
	maxBatch := 0
	for _, b := range o.Batches {
		if b <= 0 {
			return r, fmt.Errorf("bench persona: batch %d (expected > 0)", b)
		}
		maxBatch = max(maxBatch, b)
	}
	// Roles x one prompt x one question: different system prompts of similar length.
	plan := probe.PlanRollouts(ds.Subset(maxBatch, 1, 1), probe.ShortModelName(m.Name), 1, 1)
	if len(plan) < maxBatch {
		return r, fmt.Errorf("bench persona: the built-in data set has %d prompts, batch %d needs more", len(plan), maxBatch)
	}
	// Every batch size runs the same maxBatch conversations, in chunks of its size, so the rates
	// compare the same work.
	specs := plan[:maxBatch]
	p := probe.NewPrompter(m)
	for _, b := range o.Batches {
		gen := make([]probe.Generated, len(specs))
		rollout, err := bestOf(o.Repeats, func() (float64, error) {
			t := time.Now()
			n := 0
			for lo := 0; lo < len(specs); lo += b {
				hi := min(lo+b, len(specs))
				g, err := probe.GenerateRollouts(ctx, m, p, specs[lo:hi], o.MaxNewTokens, true)
				if err != nil {
					return 0, err
				}
				copy(gen[lo:hi], g)
				for _, x := range g {
					n += len(x.Tokens)
				}
			}
			return perSecond(n, time.Since(t)), nil
		})
		if err != nil {
			return r, fmt.Errorf("bench persona: rollouts at batch %d: %w", b, err)
		}
		spans := make([]probe.Span, len(specs))
		tokens := 0
		for i, g := range gen {
			// What persona run captures: the ids as generated.
			spans[i] = probe.ResponseSpan(g.Prompt, g.Tokens)
			tokens += len(spans[i].Tokens)
		}
		extract, err := bestOf(o.Repeats, func() (float64, error) {
			t := time.Now()
			for lo := 0; lo < len(spans); lo += b {
				if _, err := probe.Capture(ctx, m.Engine, spans[lo:min(lo+b, len(spans))], probe.CaptureOptions{}); err != nil {
					return 0, err
				}
			}
			return perSecond(tokens, time.Since(t)), nil
		})
		if err != nil {
			return r, fmt.Errorf("bench persona: extraction at batch %d: %w", b, err)
		}
		r.Rows = append(r.Rows, RolloutBenchRow{Batch: b, RolloutTPS: rollout, ExtractTPS: extract, ExtractTokens: tokens})
	}
	return r, nil
}
