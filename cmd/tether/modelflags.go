package main

import (
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"tether/model"
)

// weightsDType is the --weights-dtype of the command being run (one
// command per process), applied by openModel.
var weightsDType = "auto"

// copyWeights is the --copy-weights of the command being run, applied by
// openModel.
var copyWeights bool

// cacheDTypeFlag is the --cache-dtype of the command being run, applied by
// openModel.
var cacheDTypeFlag = "f32"

// copyWeightsUsage is the help of --copy-weights.
const copyWeightsUsage = "copy every weight into memory instead of reading those used as stored where they lie in the memory-mapped checkpoint (cpu backend; for a checkpoint on a network filesystem or one rewritten in place)"

// addBackendFlag defines --backend, the compute backend of a command that
// loads a model (default "cpu"), and beside it --weights-dtype,
// --copy-weights and --cache-dtype.
func addBackendFlag(fs *pflag.FlagSet) *string {
	fs.StringVar(&weightsDType, "weights-dtype", "auto", "dtype the weights are held in: auto (the checkpoint's on cpu, f32 on go, bf16 on xla), f32, bf16 or f16 (cpu only)")
	fs.BoolVar(&copyWeights, "copy-weights", false, copyWeightsUsage)
	fs.StringVar(&cacheDTypeFlag, "cache-dtype", "f32", "dtype the K and V caches are held in: f32, or bf16 or f16 (half the memory; cpu and xla, f16 cpu only); new keys and values are rounded to it")
	return fs.String("backend", "cpu", "compute backend: cpu (tether's CPU backend), go (GoMLX's pure-Go backend) or xla:cuda (GPU)")
}

// openModel opens the model ref with opts (the weight dtype from
// --weights-dtype unless opts sets one, copying the weights with
// --copy-weights) behind a "loading REF" spinner; the
// caller closes it.
func openModel(ref string, opts model.Options) (*model.Model, error) {
	if opts.WeightDType == "" {
		opts.WeightDType = weightsDType
	}
	opts.CopyWeights = opts.CopyWeights || copyWeights
	if opts.CacheDType == "" {
		opts.CacheDType = cacheDTypeFlag
	}
	if err := checkWeightsDType(opts.WeightDType); err != nil {
		return nil, err
	}
	if err := checkCacheDType(opts.CacheDType); err != nil {
		return nil, err
	}
	stop := startSpinner("loading " + ref)
	defer stop()
	return model.Open(ref, opts)
}

// modelFlags are the adjacent --model and --backend flags of the benchmark
// commands.
type modelFlags struct {
	ref, backend *string
}

// addModelFlags defines --model (required) and --backend on fs.
func addModelFlags(fs *pflag.FlagSet) modelFlags {
	return modelFlags{
		ref:     fs.String("model", "", "model directory or Hugging Face id"),
		backend: addBackendFlag(fs),
	}
}

// parseAndOpen parses args, requires --model and opens it on --backend with
// the rest of opts; the caller closes the model.
func (f modelFlags) parseAndOpen(fs *pflag.FlagSet, args []string, opts model.Options) (*model.Model, error) {
	if err := parseFlags(fs, args, "model"); err != nil {
		return nil, err
	}
	opts.Backend = *f.backend
	return openModel(*f.ref, opts)
}

// checkWeightsDType refuses a --weights-dtype value other than auto, f32,
// bf16 and f16 with a usage error.
func checkWeightsDType(dtype string) error {
	return checkDTypeFlag("--weights-dtype", dtype, "auto", "f32", "bf16", "f16")
}

// checkCacheDType refuses a --cache-dtype value other than f32, bf16 and
// f16 with a usage error.
func checkCacheDType(dtype string) error {
	return checkDTypeFlag("--cache-dtype", dtype, "f32", "bf16", "f16")
}

// checkDTypeFlag refuses a value of flag outside allowed with a usage error
// naming them ("expected a, b or c").
func checkDTypeFlag(flag, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	n := len(allowed)
	return usageErrorf("%s %q: expected %s or %s", flag, value, strings.Join(allowed[:n-1], ", "), allowed[n-1])
}
