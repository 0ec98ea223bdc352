package main

import (
	"fmt"
	"math"
	"strings"

	"tether/axis"
)

func init() {
	register("axis import", "convert the reference project's axis.pt (torch.save) into an axis file; no Python needed", runAxisImport)
}

func runAxisImport(args []string) error {
	fs := newFlags("axis import", "FILE.pt --out axis.safetensors",
		"tether axis import qwen-3-32b/assistant_axis.pt --out axis.safetensors   # then --cap-tau, or --cap-experiment ID --capping-config capping_config.pt")
	out := fs.String("out", "", "axis file to write (.safetensors)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("axis import: want exactly one axis.pt file, got %d arguments (see --help)", fs.NArg())
	}
	if err := require(fs, "out"); err != nil {
		return err
	}
	a, err := axis.ImportReference(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := axis.Write(*out, a); err != nil {
		return err
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, row := range a.Axis {
		n := axis.Norm(row)
		lo, hi = math.Min(lo, n), math.Max(hi, n)
	}
	model := a.Model
	if model == "" {
		model = "unknown model"
	}
	fmt.Printf("wrote %s: axis of %d layers x %d (%s, stored as %s), |axis| %.4g..%.4g; source sha256 %s\n",
		*out, a.Layers, a.Hidden, model, a.Extra["source_dtype"], lo, hi, a.Extra[axis.MetaSourceSHA256])
	fmt.Printf("not in the reference file: %s (no --cap-percentile: give --cap-tau, or --cap-experiment with --capping-config)\n",
		strings.ReplaceAll(a.Extra[axis.MetaUnknown], ",", ", "))
	return nil
}
