package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"tether/bench"
	"tether/engine"
	"tether/model"
)

func init() {
	register("bench perf", "prefill and decode speed, peak memory and this machine's decode floor", runBenchPerf)
}

func runBenchPerf(args []string) error {
	fs := newFlags("bench perf", "--model M [--backend B] [--weights-dtype f32,bf16] [--prefill 128,512] [--decode N] [--batches 1,8,32] [--repeats N] [--steer] [--bandwidth-gbps X] [--json]",
		"tether testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out /tmp/smol && tether bench perf --model /tmp/smol --weights-dtype f32,bf16 --steer --json\n"+
			"  tether bench perf --model /tmp/llama-1b --backend xla:cuda --batches 1,8,32,64 --prefill 2048 --bandwidth-gbps 4300")
	mf := addModelFlags(fs)
	o := bench.DefaultPerfOptions
	fs.IntSliceVar(&o.PrefillLengths, "prefill", o.PrefillLengths, "prompt lengths of the prefill measurements")
	fs.IntVar(&o.DecodeTokens, "decode", o.DecodeTokens, "new tokens per decode measurement")
	fs.IntVar(&o.Repeats, "repeats", o.Repeats, "median of this many runs (after one warm-up)")
	fs.IntSliceVar(&o.DecodeBatches, "batches", o.DecodeBatches, "batch sizes of the decode measurements")
	fs.BoolVar(&o.Steer, "steer", false, "also measure decoding with 8 capped layers against uncapped (as bench steer)")
	fs.Float64Var(&o.BandwidthGBps, "bandwidth-gbps", 0, "memory bandwidth (GB/s) for the decode floor, e.g. a GPU's measured elsewhere; 0 measures this machine's CPU memory")
	asJSON := fs.Bool("json", false, "print one JSON object per weight dtype")
	for _, n := range []string{"prefill", "decode", "repeats", "batches"} {
		limit(fs, n, atLeast(1))
	}
	limit(fs, "bandwidth-gbps", atLeast(0).with("0 = measure this machine's CPU memory"))
	if err := parseFlags(fs, args, "model"); err != nil {
		return err
	}
	// --weights-dtype may list several dtypes here: each is loaded and
	// measured in turn.
	dts := strings.Split(weightsDType, ",")
	for i, dt := range dts {
		dts[i] = strings.TrimSpace(dt)
		if err := checkWeightsDType(dts[i]); err != nil {
			return fmt.Errorf("bench perf: %w", err)
		}
	}
	for _, dt := range dts {
		if err := benchPerfOne(*mf.ref, *mf.backend, dt, o, *asJSON); err != nil {
			return err
		}
	}
	return nil
}

// benchPerfOne loads ref on backend with its weights in dtype and runs
// bench.Perf with o.
func benchPerfOne(ref, backend, dtype string, o bench.PerfOptions, asJSON bool) error {
	// The largest run, checked against the backend's free memory before loading.
	w := engine.MemoryWorkload{Batch: slices.Max(o.DecodeBatches), Prompt: max(slices.Max(o.PrefillLengths), o.PromptTokens), NewTokens: o.DecodeTokens}
	m, err := openModel(ref, model.Options{NoTokenizer: true, Backend: backend, WeightDType: dtype, Workload: w})
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Memory.Warning != "" {
		return fmt.Errorf("bench perf: the measured runs do not fit: %s", m.Memory.Warning)
	}
	o.ComputeWeightBytes = m.Engine.HeldWeightBytes()
	o.WeightDType = m.Engine.WeightDType().String()
	stop := startSpinner("measuring " + o.WeightDType)
	r, err := bench.Perf(context.Background(), m.Engine, o)
	stop()
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONLine(os.Stdout, r)
	}
	fmt.Printf("model %s on %s (%d threads), %s of weights held as %s; medians of %d runs\n", m.Name, backend, r.Threads, humanBytes(r.WeightBytes), r.WeightDType, r.Repeats)
	for _, n := range o.PrefillLengths {
		fmt.Printf("prefill %-4d      %8.1f tokens/s  %6.2f x floor\n", n, r.PrefillTPSByTokens[n], r.PrefillOverFloor[n])
	}
	for _, b := range o.DecodeBatches {
		fmt.Printf("decode batch %-3d  %8.1f tokens/s  %6.2f x floor (all sequences)\n", b, r.DecodeTPS[b], r.DecodeOverFloor[b])
	}
	if r.Steer != nil {
		fmt.Printf("capped/uncapped   %8.3f (8 capped layers, median of back-to-back pairs)\n", r.CappedOverUncapped)
	}
	fmt.Printf("bandwidth         %8.1f GB/s (%s); decode floor %.1f tokens/s\n", r.BandwidthGBps, r.BandwidthSource, r.FloorDecodeTPS)
	fmt.Printf("compilations      %d graphs, %d after warm-up\n", r.Compilations, r.CompilesAfterWarmup)
	fmt.Printf("peak RSS          %s\n", humanBytes(r.PeakRSSBytes))
	return nil
}
