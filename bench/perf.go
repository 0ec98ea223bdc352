// Package bench measures tether: speed against the hardware's bounds, and
// (in later issues) persona drift and capability under capping.
package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"tether/engine"
)

// PerfOptions sets the sizes `tether bench perf` measures.
type PerfOptions struct {
	PrefillTokens int // prompt length for the prefill measurement
	DecodeTokens  int // new tokens per decode measurement
	PromptTokens  int // prompt length before decoding
	Repeats       int // each measurement is the best of this many runs
	// ComputeWeightBytes is what one decode step reads: the weights in the
	// dtype the backend computes in (float32 on the CPU backend).
	ComputeWeightBytes int64
	// DecodeBatches are the batch sizes of the decode measurements
	// (default 1 and 8).
	DecodeBatches []int
	// BandwidthGBps, when > 0, is the memory bandwidth the decode floor is
	// computed from (a GPU's, measured outside tether); 0 measures this
	// machine's CPU memory bandwidth (MeasureBandwidth).
	BandwidthGBps float64
}

// DefaultPerfOptions are the sizes used when a field is zero.
var DefaultPerfOptions = PerfOptions{PrefillTokens: 128, DecodeTokens: 32, PromptTokens: 16, Repeats: 3, DecodeBatches: []int{1, 8}}

// PerfReport is the result of Perf; its JSON keys are the ones documented
// for `tether bench perf --json`.
type PerfReport struct {
	PrefillTPS      float64 `json:"prefill_tps"`
	DecodeTPSBatch1 float64 `json:"decode_tps_batch1"`
	DecodeTPSBatch8 float64 `json:"decode_tps_batch8"` // total new tokens/s over the batch
	// DecodeTPS is the total new tokens/s for every batch size measured.
	DecodeTPS      map[int]float64 `json:"decode_tps_by_batch"`
	FloorDecodeTPS float64         `json:"floor_decode_tps"` // bandwidth / weight bytes
	DecodeVsFloor  float64         `json:"decode_batch1_over_floor"`
	BandwidthGBps  float64         `json:"bandwidth_gbps"`
	// BandwidthSource is "measured" (this machine's CPU memory, now) or
	// "given" (PerfOptions.BandwidthGBps).
	BandwidthSource   string `json:"bandwidth_source"`
	WeightBytes       int64  `json:"weight_bytes"`
	PeakRSSBytes      int64  `json:"peak_rss_bytes"`
	Threads           int    `json:"threads"`
	PrefillTokens     int    `json:"prefill_tokens"`
	DecodeTokens      int    `json:"decode_tokens"`
	Repeats           int    `json:"repeats"`
	MeasurementMillis int64  `json:"measurement_ms"`
	// Compilations is the number of step graphs the model built during
	// the measurements (warm-ups included); CompilesAfterWarmup those built
	// during timed runs, which should be none; CompileBuckets the graphs
	// per step shape ("batch B x tokens T x cache S").
	Compilations        int64          `json:"compilations"`
	CompilesAfterWarmup int64          `json:"compilations_after_warmup"`
	CompileBuckets      map[string]int `json:"compile_buckets"`
}

// Perf measures prefill and decode speed of m, the machine's memory read
// bandwidth in the same run, and the decode floor they imply. Prompts are
// random token ids (speed does not depend on their values); generation is
// greedy and is not cut short by stop tokens.
func Perf(ctx context.Context, m *engine.Model, opts PerfOptions) (PerfReport, error) {
	start := time.Now()
	opts = withDefaults(opts)
	vocab := m.Config().VocabSize
	rng := rand.New(rand.NewPCG(1, 2))
	prompt := func(n int) []int {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = rng.IntN(vocab)
		}
		return ids
	}
	r := PerfReport{Threads: runtime.GOMAXPROCS(0), PrefillTokens: opts.PrefillTokens,
		DecodeTokens: opts.DecodeTokens, Repeats: opts.Repeats, WeightBytes: opts.ComputeWeightBytes,
		DecodeTPS: map[int]float64{}}
	compiled := m.Compilations()
	// timed is bestOf counting the graphs built after the warm-up run.
	timed := func(f func() (float64, error)) (float64, error) {
		calls := 0
		return bestOf(opts.Repeats, func() (float64, error) {
			before := m.Compilations()
			v, err := f()
			if calls > 0 {
				r.CompilesAfterWarmup += m.Compilations() - before
			}
			calls++
			return v, err
		})
	}

	// Prefill: one sequence of PrefillTokens, one new token.
	best, err := timed(func() (float64, error) {
		res, err := generate(ctx, m, [][]int{prompt(opts.PrefillTokens)}, 1)
		if err != nil {
			return 0, err
		}
		return perSecond(opts.PrefillTokens, res[0].PrefillDuration), nil
	})
	if err != nil {
		return r, fmt.Errorf("bench perf: prefill: %w", err)
	}
	r.PrefillTPS = best

	decode := func(batch int) (float64, error) {
		return timed(func() (float64, error) {
			prompts := make([][]int, batch)
			for i := range prompts {
				prompts[i] = prompt(opts.PromptTokens)
			}
			res, err := generate(ctx, m, prompts, opts.DecodeTokens)
			if err != nil {
				return 0, err
			}
			// The first new token comes from the prefill step; the decode
			// steps produce the rest.
			n := 0
			for _, x := range res {
				n += len(x.Tokens) - 1
			}
			return perSecond(n, res[0].DecodeDuration), nil
		})
	}
	for _, batch := range opts.DecodeBatches {
		tps, err := decode(batch)
		if err != nil {
			return r, fmt.Errorf("bench perf: decode batch %d: %w", batch, err)
		}
		r.DecodeTPS[batch] = tps
	}
	r.DecodeTPSBatch1, r.DecodeTPSBatch8 = r.DecodeTPS[1], r.DecodeTPS[8]

	r.BandwidthGBps, r.BandwidthSource = opts.BandwidthGBps, "given"
	if r.BandwidthGBps <= 0 {
		r.BandwidthGBps, r.BandwidthSource = MeasureBandwidth(0, 0), "measured"
	}
	if opts.ComputeWeightBytes > 0 {
		r.FloorDecodeTPS = r.BandwidthGBps * 1e9 / float64(opts.ComputeWeightBytes)
		r.DecodeVsFloor = r.DecodeTPSBatch1 / r.FloorDecodeTPS
	}
	if rss, err := PeakRSS(); err == nil {
		r.PeakRSSBytes = rss
	}
	r.Compilations = m.Compilations() - compiled
	buckets := m.CompileBuckets()
	r.CompileBuckets = map[string]int{}
	for _, b := range engine.SortedCompileBuckets(buckets) {
		r.CompileBuckets[b.String()] = buckets[b]
	}
	r.MeasurementMillis = time.Since(start).Milliseconds()
	return r, nil
}

func withDefaults(o PerfOptions) PerfOptions {
	d := DefaultPerfOptions
	if o.PrefillTokens <= 0 {
		o.PrefillTokens = d.PrefillTokens
	}
	if o.DecodeTokens <= 1 {
		o.DecodeTokens = d.DecodeTokens
	}
	if o.PromptTokens <= 0 {
		o.PromptTokens = d.PromptTokens
	}
	if o.Repeats <= 0 {
		o.Repeats = d.Repeats
	}
	if len(o.DecodeBatches) == 0 {
		o.DecodeBatches = d.DecodeBatches
	}
	return o
}

// generate runs greedy decoding of exactly maxNew tokens per prompt,
// generating through the model's EOS ids (random models emit them by chance).
func generate(ctx context.Context, m *engine.Model, prompts [][]int, maxNew int) ([]engine.Result, error) {
	reqs := make([]engine.Request, len(prompts))
	for i, p := range prompts {
		reqs[i] = engine.Request{Prompt: p, MaxNewTokens: maxNew, IgnoreEOS: true}
	}
	return m.Generate(ctx, reqs, engine.GenerateOptions{})
}

// bestOf runs f once to warm up (compilation) and then n times, returning the
// highest rate.
func bestOf(n int, f func() (float64, error)) (float64, error) {
	if _, err := f(); err != nil {
		return 0, err
	}
	best := 0.0
	for range n {
		v, err := f()
		if err != nil {
			return 0, err
		}
		best = max(best, v)
	}
	return best, nil
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
