package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"tether/bench"
	"tether/model"
)

func init() {
	register("bench perf", "prefill and decode speed, peak memory and this machine's decode floor", runBenchPerf)
}

func runBenchPerf(args []string) error {
	fs := newFlags("bench perf", "--model M [--backend B] [--prefill N] [--decode N] [--repeats N] [--json]",
		"tether testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out /tmp/smol && tether bench perf --model /tmp/smol --json")
	mf := addModelFlags(fs)
	o := bench.DefaultPerfOptions
	fs.IntVar(&o.PrefillTokens, "prefill", o.PrefillTokens, "prompt length of the prefill measurement")
	fs.IntVar(&o.DecodeTokens, "decode", o.DecodeTokens, "new tokens per decode measurement")
	fs.IntVar(&o.Repeats, "repeats", o.Repeats, "best of this many runs (after one warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	for _, n := range []string{"prefill", "decode", "repeats"} {
		limit(fs, n, atLeast(1))
	}
	m, err := mf.parseAndOpen(fs, args, model.Options{NoTokenizer: true})
	if err != nil {
		return err
	}
	defer m.Close()
	// The CPU backend computes in float32 whatever the checkpoint dtype; a
	// GPU backend keeps the checkpoint's dtype.
	o.ComputeWeightBytes = m.WeightBytes
	if *mf.backend == "" || strings.HasPrefix(*mf.backend, "go") {
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
	fmt.Printf("decode batch 1   %8.1f tokens/s\n", r.DecodeTPSBatch1)
	fmt.Printf("decode batch 8   %8.1f tokens/s (all sequences)\n", r.DecodeTPSBatch8)
	fmt.Printf("bandwidth        %8.1f GB/s measured now; decode floor %.1f tokens/s; batch 1 reaches %.2f of it\n",
		r.BandwidthGBps, r.FloorDecodeTPS, r.DecodeVsFloor)
	fmt.Printf("peak RSS         %s\n", humanBytes(r.PeakRSSBytes))
	return nil
}
