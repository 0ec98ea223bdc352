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
	// PrefillLengths are the prompt lengths of the prefill measurements
	// (default 128 and 512).
	PrefillLengths []int
	DecodeTokens   int // new tokens per decode measurement
	PromptTokens   int // prompt length before decoding
	Repeats        int // each measurement is the median of this many runs (after a warm-up)
	// ComputeWeightBytes is what one decode step reads: the weights as the
	// backend holds them (engine.Model.HeldWeightBytes).
	ComputeWeightBytes int64
	// WeightDType names the dtype the weights are held in, for the report.
	WeightDType string
	// DecodeBatches are the batch sizes of the decode measurements
	// (default 1, 8 and 32).
	DecodeBatches []int
	// BandwidthGBps, when > 0, is the memory bandwidth the decode floor is
	// computed from (a GPU's, measured outside tether); 0 measures this
	// machine's CPU memory bandwidth (MeasureVectorBandwidth).
	BandwidthGBps float64
	// Steer also measures capped decoding (8 layers) against uncapped
	// (SteerOverhead, with DecodeTokens, PromptTokens and Repeats).
	Steer bool
}

// DefaultPerfOptions are the sizes used when a field is zero.
var DefaultPerfOptions = PerfOptions{PrefillLengths: []int{128, 512}, DecodeTokens: 32, PromptTokens: 16, Repeats: 3, DecodeBatches: []int{1, 8, 32}}

// bandwidthPasses is how many passes of the vector reader the bandwidth is
// the median of.
const bandwidthPasses = 9

// PerfReport is the result of Perf; its JSON keys are the ones documented
// for `tether bench perf --json`. Every rate is the median of Repeats runs;
// the *_samples keys hold the runs themselves. The fractions are of the
// floor: a rate in tokens/s over FloorDecodeTPS (bandwidth / weight bytes
// per token), so a batch (which reads the weights once for all its
// sequences) can exceed 1.
type PerfReport struct {
	WeightDType     string  `json:"weight_dtype"`
	PrefillTPS      float64 `json:"prefill_tps"` // at the first prefill length
	DecodeTPSBatch1 float64 `json:"decode_tps_batch1"`
	DecodeTPSBatch8 float64 `json:"decode_tps_batch8"` // total new tokens/s over the batch
	// PrefillTPSByTokens is the prefill rate at every prompt length.
	PrefillTPSByTokens map[int]float64   `json:"prefill_tps_by_tokens"`
	PrefillSamples     map[int][]float64 `json:"prefill_tps_samples_by_tokens"`
	PrefillOverFloor   map[int]float64   `json:"prefill_over_floor_by_tokens"`
	// DecodeTPS is the total new tokens/s for every batch size measured.
	DecodeTPS       map[int]float64   `json:"decode_tps_by_batch"`
	DecodeSamples   map[int][]float64 `json:"decode_tps_samples_by_batch"`
	DecodeOverFloor map[int]float64   `json:"decode_over_floor_by_batch"`
	FloorDecodeTPS  float64           `json:"floor_decode_tps"` // bandwidth / weight bytes
	DecodeVsFloor   float64           `json:"decode_batch1_over_floor"`
	BandwidthGBps   float64           `json:"bandwidth_gbps"`
	// Bandwidth is the spread of the measured passes (absent when given).
	Bandwidth *BandwidthSample `json:"bandwidth,omitempty"`
	// BandwidthSource is "measured" (this machine's CPU memory, now, with
	// the vector reader) or "given" (PerfOptions.BandwidthGBps).
	BandwidthSource   string `json:"bandwidth_source"`
	WeightBytes       int64  `json:"weight_bytes"`
	PeakRSSBytes      int64  `json:"peak_rss_bytes"`
	Threads           int    `json:"threads"`
	PrefillTokens     int    `json:"prefill_tokens"`
	DecodeTokens      int    `json:"decode_tokens"`
	Repeats           int    `json:"repeats"`
	MeasurementMillis int64  `json:"measurement_ms"`
	// Steer is capped against uncapped decoding (PerfOptions.Steer), and
	// CappedOverUncapped its median back-to-back ratio.
	Steer              *SteerReport `json:"steer,omitempty"`
	CappedOverUncapped float64      `json:"capped_over_uncapped,omitempty"`
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
	r := PerfReport{WeightDType: opts.WeightDType, Threads: runtime.GOMAXPROCS(0), PrefillTokens: opts.PrefillLengths[0],
		DecodeTokens: opts.DecodeTokens, Repeats: opts.Repeats, WeightBytes: opts.ComputeWeightBytes,
		PrefillTPSByTokens: map[int]float64{}, PrefillSamples: map[int][]float64{}, PrefillOverFloor: map[int]float64{},
		DecodeTPS: map[int]float64{}, DecodeSamples: map[int][]float64{}, DecodeOverFloor: map[int]float64{}}
	compiled := m.Compilations()
	// timed is medianOf counting the graphs built after the warm-up run.
	timed := func(f func() (float64, error)) (float64, []float64, error) {
		calls := 0
		return medianOf(opts.Repeats, func() (float64, error) {
			before := m.Compilations()
			v, err := f()
			if calls > 0 {
				r.CompilesAfterWarmup += m.Compilations() - before
			}
			calls++
			return v, err
		})
	}

	// Prefill: one sequence of each length, one new token.
	for _, n := range opts.PrefillLengths {
		med, samples, err := timed(func() (float64, error) {
			res, err := generate(ctx, m, [][]int{prompt(n)}, 1)
			if err != nil {
				return 0, err
			}
			return perSecond(n, res[0].PrefillDuration), nil
		})
		if err != nil {
			return r, fmt.Errorf("bench perf: prefill %d: %w", n, err)
		}
		r.PrefillTPSByTokens[n], r.PrefillSamples[n] = med, samples
	}
	r.PrefillTPS = r.PrefillTPSByTokens[opts.PrefillLengths[0]]

	decode := func(batch int) (float64, []float64, error) {
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
		tps, samples, err := decode(batch)
		if err != nil {
			return r, fmt.Errorf("bench perf: decode batch %d: %w", batch, err)
		}
		r.DecodeTPS[batch], r.DecodeSamples[batch] = tps, samples
	}
	r.DecodeTPSBatch1, r.DecodeTPSBatch8 = r.DecodeTPS[1], r.DecodeTPS[8]

	if opts.Steer {
		s, err := SteerOverhead(ctx, m, SteerOptions{DecodeTokens: opts.DecodeTokens, PromptTokens: opts.PromptTokens, Repeats: opts.Repeats})
		if err != nil {
			return r, fmt.Errorf("bench perf: capped decoding: %w", err)
		}
		r.Steer, r.CappedOverUncapped = &s, s.MedianPairRatio
	}

	r.BandwidthGBps, r.BandwidthSource = opts.BandwidthGBps, "given"
	if r.BandwidthGBps <= 0 {
		bw := MeasureVectorBandwidth(0, bandwidthPasses)
		r.Bandwidth, r.BandwidthGBps, r.BandwidthSource = &bw, bw.Median, "measured"
	}
	if opts.ComputeWeightBytes > 0 {
		r.FloorDecodeTPS = r.BandwidthGBps * 1e9 / float64(opts.ComputeWeightBytes)
		r.DecodeVsFloor = r.DecodeTPSBatch1 / r.FloorDecodeTPS
		for b, v := range r.DecodeTPS {
			r.DecodeOverFloor[b] = v / r.FloorDecodeTPS
		}
		for n, v := range r.PrefillTPSByTokens {
			r.PrefillOverFloor[n] = v / r.FloorDecodeTPS
		}
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
	if len(o.PrefillLengths) == 0 {
		o.PrefillLengths = d.PrefillLengths
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

// medianOf runs f once to warm up (compilation) and then n times, returning
// the median rate and the n rates.
func medianOf(n int, f func() (float64, error)) (float64, []float64, error) {
	if _, err := f(); err != nil {
		return 0, nil, err
	}
	rates := make([]float64, n)
	for i := range rates {
		v, err := f()
		if err != nil {
			return 0, nil, err
		}
		rates[i] = v
	}
	return median(rates), rates, nil
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
