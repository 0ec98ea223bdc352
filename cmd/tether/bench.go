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
	fs := newFlags("bench perf", "--model M [--backend B] [--prefill N] [--decode N] [--batches 1,8] [--repeats N] [--bandwidth-gbps X] [--json]",
		"tether testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out /tmp/smol && tether bench perf --model /tmp/smol --json\n"+
			"  tether bench perf --model /tmp/llama-1b --backend xla:cuda --batches 1,8,32,64 --prefill 2048 --bandwidth-gbps 4300")
	mf := addModelFlags(fs)
	o := bench.DefaultPerfOptions
	fs.IntVar(&o.PrefillTokens, "prefill", o.PrefillTokens, "prompt length of the prefill measurement")
	fs.IntVar(&o.DecodeTokens, "decode", o.DecodeTokens, "new tokens per decode measurement")
	fs.IntVar(&o.Repeats, "repeats", o.Repeats, "best of this many runs (after one warm-up)")
	fs.IntSliceVar(&o.DecodeBatches, "batches", o.DecodeBatches, "batch sizes of the decode measurements")
	fs.Float64Var(&o.BandwidthGBps, "bandwidth-gbps", 0, "memory bandwidth (GB/s) for the decode floor, e.g. a GPU's measured elsewhere; 0 measures this machine's CPU memory")
	asJSON := fs.Bool("json", false, "print one JSON object")
	for _, n := range []string{"prefill", "decode", "repeats", "batches"} {
		limit(fs, n, atLeast(1))
	}
	limit(fs, "bandwidth-gbps", atLeast(0).with("0 = measure this machine's CPU memory"))
	if err := parseFlags(fs, args, "model"); err != nil {
		return err
	}
	// The largest run, checked against the backend's free memory before loading.
	w := engine.MemoryWorkload{Batch: slices.Max(o.DecodeBatches), Prompt: max(o.PrefillTokens, o.PromptTokens), NewTokens: o.DecodeTokens}
	m, err := openModel(*mf.ref, model.Options{NoTokenizer: true, Backend: *mf.backend, Workload: w})
	if err != nil {
		return err
	}
	if m.Memory.Warning != "" {
		return fmt.Errorf("bench perf: the measured runs do not fit: %s", m.Memory.Warning)
	}
	defer m.Close()
	// The CPU backends compute in float32 whatever the checkpoint dtype; a
	// GPU backend keeps the checkpoint's dtype.
	o.ComputeWeightBytes = m.WeightBytes
	if *mf.backend == "" || strings.HasPrefix(*mf.backend, "go") || strings.HasPrefix(*mf.backend, "cpu") {
		o.ComputeWeightBytes = m.Config.ParamCount() * 4
	}
	stop := startSpinner("measuring")
	r, err := bench.Perf(context.Background(), m.Engine, o)
	stop()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONLine(os.Stdout, r)
	}
	fmt.Printf("model %s on %s (%d threads), %s of weights as computed\n", m.Name, *mf.backend, r.Threads, humanBytes(r.WeightBytes))
	fmt.Printf("prefill          %8.1f tokens/s (%d-token prompt)\n", r.PrefillTPS, r.PrefillTokens)
	for _, b := range o.DecodeBatches {
		fmt.Printf("decode batch %-3d %8.1f tokens/s (all sequences)\n", b, r.DecodeTPS[b])
	}
	fmt.Printf("bandwidth        %8.1f GB/s (%s); decode floor %.1f tokens/s; batch 1 reaches %.2f of it\n",
		r.BandwidthGBps, r.BandwidthSource, r.FloorDecodeTPS, r.DecodeVsFloor)
	fmt.Printf("compilations     %d graphs, %d after warm-up\n", r.Compilations, r.CompilesAfterWarmup)
	fmt.Printf("peak RSS         %s\n", humanBytes(r.PeakRSSBytes))
	return nil
}
