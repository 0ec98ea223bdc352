package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"tether/model"
	"tether/serve"
)

func init() {
	register("bench serve", "server throughput and time to first token at 1, 8 and 32 clients, capped and uncapped, against sequential generate", runBenchServe)
}

func runBenchServe(args []string) error {
	fs := newFlags("bench serve", "--model M [--axis FILE --cap-layers L --cap-percentile P] [--concurrency 1,8,32] [--requests N] [--max-tokens N] [--json]",
		`tether bench serve --model .tether/stories260K --concurrency 1,8,32 --requests 2 --max-tokens 64`)
	mf := addModelFlags(fs)
	axisPath := fs.String("axis", "", "axis file of the capped runs (without it: uncapped only)")
	capLayers := fs.String("cap-layers", "", "capped layers of the capped runs, e.g. 46:54")
	capPct := fs.Float64("cap-percentile", 25, "calibrated percentile of the capped runs")
	conc := fs.IntSlice("concurrency", []int{1, 8, 32}, "numbers of concurrent clients")
	requests := fs.Int("requests", 2, "requests per client")
	maxTokens := fs.Int("max-tokens", 64, "tokens per request")
	maxBatch := fs.Int("max-batch", 32, "batcher rows")
	prompt := fs.String("prompt", "Tell me a story.", "the user message of every request")
	asJSON := fs.Bool("json", false, "print the rows as JSON lines")
	limit(fs, "cap-percentile", valueRange{min: 0, max: 100})
	limit(fs, "concurrency", atLeast(1))
	limit(fs, "requests", atLeast(1))
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "max-batch", atLeast(1))
	m, err := mf.parseAndOpen(fs, args, model.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	opts := serve.BenchOptions{Concurrency: *conc, Requests: *requests, MaxTokens: *maxTokens, MaxBatch: *maxBatch, Prompt: *prompt}
	if *axisPath != "" {
		if *capLayers == "" {
			return usageErrorf("bench serve: --axis needs --cap-layers")
		}
		if opts.Axes, err = serve.LoadAxes([]string{"axis=" + *axisPath}, m); err != nil {
			return err
		}
		opts.Cap = &serve.Steering{Cap: []serve.CapRequest{{Axis: "axis", Layers: serve.Layers(*capLayers), Percentile: capPct}}}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	rows, err := serve.Bench(ctx, m, opts)
	if err != nil {
		return fmt.Errorf("bench serve: %w", err)
	}
	for _, r := range rows {
		if *asJSON {
			if err := writeJSONLine(os.Stdout, r); err != nil {
				return err
			}
			continue
		}
		fmt.Printf("%-20s capped=%-5v clients=%-3d requests=%-4d tokens=%-6d %8.1f tok/s  TTFT mean %7.1f ms, worst %7.1f ms\n",
			r.Mode, r.Capped, r.Clients, r.Requests, r.Tokens, r.TokensPerS, r.MeanTTFTms, r.WorstTTFTms)
	}
	return nil
}
