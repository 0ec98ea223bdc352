package main

import (
	"github.com/spf13/pflag"

	"tether/model"
)

// addBackendFlag defines --backend, the compute backend of a command that
// loads a model (default "cpu").
func addBackendFlag(fs *pflag.FlagSet) *string {
	return fs.String("backend", "cpu", "compute backend: cpu (tether's CPU backend), go (GoMLX's pure-Go backend) or xla:cuda (GPU)")
}

// openModel opens the model ref with opts behind a "loading REF" spinner; the
// caller closes it.
func openModel(ref string, opts model.Options) (*model.Model, error) {
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
