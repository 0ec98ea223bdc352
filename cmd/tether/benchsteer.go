package main

import (
	"context"
	"fmt"
	"os"

	"tether/bench"
	"tether/model"
	"tether/steer"
)

func init() {
	register("bench steer", "decode speed with capping on 8 layers relative to no capping (goal >= 0.97)", runBenchSteer)
}

func runBenchSteer(args []string) error {
	fs := newFlags("bench steer", "--model M [--backend B] [--layers L] [--decode N] [--repeats N] [--json]",
		"tether testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out /tmp/smol && tether bench steer --model /tmp/smol")
	mf := addModelFlags(fs)
	layers := fs.String("layers", "", "capped layers: "+layerSyntax+" (default: 8 layers centred in the model)")
	var o bench.SteerOptions
	fs.IntVar(&o.DecodeTokens, "decode", 32, "new tokens per run")
	fs.IntVar(&o.PromptTokens, "prompt", 16, "prompt tokens before decoding")
	fs.IntVar(&o.Repeats, "repeats", 3, "best of this many alternating runs of each variant")
	asJSON := fs.Bool("json", false, "print one JSON object")
	for _, n := range []string{"decode", "prompt", "repeats"} {
		limit(fs, n, atLeast(1))
	}
	m, err := mf.parseAndOpen(fs, args, model.Options{NoTokenizer: true})
	if err != nil {
		return err
	}
	defer m.Close()
	if *layers != "" {
		if o.Layers, err = steer.ParseLayers(*layers, m.Config.NumLayers); err != nil {
			return fmt.Errorf("bench steer: --layers: %w", err)
		}
	}
	stop := startSpinner("measuring")
	r, err := bench.SteerOverhead(context.Background(), m.Engine, o)
	stop()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONLine(os.Stdout, r)
	}
	fmt.Printf("model %s on %s, caps on layers %s, %d new tokens, best of %d\n", m.Name, *mf.backend, steer.FormatLayers(r.Layers), r.DecodeTokens, r.Repeats)
	fmt.Printf("decode without capping      %8.2f tokens/s\n", r.BaselineTPS)
	fmt.Printf("decode with capping         %8.2f tokens/s   ratio %.3f (goal >= 0.97)\n", r.CappedTPS, r.Ratio)
	fmt.Printf("capping + telemetry         %8.2f tokens/s   ratio %.3f\n", r.CappedRecordTPS, r.RecordRatio)
	fmt.Printf("median of back-to-back capped/uncapped ratios %.3f; capping adds %.3f ms per token\n", r.MedianPairRatio, r.OverheadMSPerToken)
	return nil
}
