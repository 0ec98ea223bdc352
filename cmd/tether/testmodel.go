package main

import (
	"fmt"
	"os"

	"tether/tokenizer"
	"tether/weights"
)

func init() {
	register("testmodel", "write a random-weight model of any supported configuration", runTestModel)
}

func runTestModel(args []string) error {
	fs := newFlags("testmodel", "--config config.json --out DIR [--seed S] [--dtype f32|bf16|f16]",
		"tether testmodel --config weights/testdata/configs/smollm2-135m-instruct.json --out /tmp/smol --seed 1")
	configPath := fs.String("config", "", "a Hugging Face config.json of a supported architecture")
	out := fs.String("out", "", "output directory")
	seed := fs.Uint64("seed", 1, "random seed (same seed, same weights)")
	dtype := fs.String("dtype", "f32", "weight dtype: f32, bf16 or f16")
	if err := parseFlags(fs, args, "config", "out"); err != nil {
		return err
	}
	dt, ok := map[string]weights.DType{"f32": weights.F32, "bf16": weights.BF16, "f16": weights.F16}[*dtype]
	if !ok {
		return usageErrorf("testmodel: --dtype %q: expected f32, bf16 or f16", *dtype)
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	data, err := os.ReadFile(*configPath)
	if err != nil {
		return fmt.Errorf("testmodel: %w", err)
	}
	cfg, err := weights.ParseConfig(data, *configPath)
	if err != nil {
		return err
	}
	stop := startSpinner(fmt.Sprintf("writing %s random weights (%s parameters)", *dtype, humanCount(cfg.ParamCount())))
	err = weights.WriteRandomModel(*out, data, *seed, dt)
	stop()
	if err != nil {
		return err
	}
	if err := tokenizer.WriteTestTokenizer(*out, cfg.VocabSize); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s %s, %s parameters, seed %d, with a small byte-level test tokenizer\n",
		*out, cfg.Architecture, *dtype, humanCount(cfg.ParamCount()), *seed)
	return nil
}
