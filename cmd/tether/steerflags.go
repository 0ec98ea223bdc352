package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"tether/axis"
	"tether/model"
	"tether/steer"
)

// layerSyntax describes a layer selection (steer.ParseLayers) in --help.
const layerSyntax = `"46:54" (46..53), "10,12,14", or with negative indices counting from the end, as in Python: "-1" the last layer, "-8:" the last 8`

// steerFlags are the intervention options shared by `tether generate` and
// `tether chat`.
type steerFlags struct {
	axisPath      string
	capLayers     string
	capPercentile float64
	capTau        string
	capExperiment string
	cappingConfig string
	steerPath     string
	steerLayers   string
	steerCoef     float64
	steerNorm     bool
	steerUnits    string
	ablate        string
	ablateValue   float64
	newestOnly    bool
	telemetry     string
	measureLayer  int
	allowOther    bool
}

func addSteerFlags(fs *pflag.FlagSet, s *steerFlags) {
	fs.StringVar(&s.axisPath, "axis", "", "axis file (axis.safetensors) for --cap-layers, --ablate and telemetry")
	fs.StringVar(&s.capLayers, "cap-layers", "", "cap the axis projection on these layers: "+layerSyntax+`; or "default": the reference's published setting for the axis's model (Qwen3-32B 46:54, Llama 3.3 70B 56:72), whose percentile (25) applies unless --cap-percentile/--cap-tau is given`)
	fs.Float64Var(&s.capPercentile, "cap-percentile", 0, "cap threshold: this calibrated percentile of the axis file (e.g. 25)")
	fs.StringVar(&s.capTau, "cap-tau", "", "cap threshold given directly: one value, or one per capped layer (comma-separated)")
	fs.StringVar(&s.capExperiment, "cap-experiment", "", `cap as this experiment of --capping-config does, e.g. "layers_46:54-p0.25" (its vectors and caps; no --axis needed)`)
	fs.StringVar(&s.cappingConfig, "capping-config", "", "the reference project's capping_config.pt, for --cap-experiment")
	fs.StringVar(&s.steerPath, "steer", "", "add-steer with this vector: a llama.cpp/repeng control vector (.gguf) or an axis file (its unit axis)")
	fs.StringVar(&s.steerLayers, "steer-layers", "", "layers to add-steer, same syntax as --cap-layers (default: every layer of a control vector; required for an axis file)")
	fs.Float64Var(&s.steerCoef, "steer-coef", 1, "steering coefficient: the vector (see --steer-units) is multiplied by this (positive = toward the Assistant for an axis)")
	fs.StringVar(&s.steerUnits, "steer-units", steer.UnitsRaw, "raw: --steer-coef multiplies the vector as stored, an axis file's axis[layer] unnormalised (the reference's coefficient x axis[layer]); unit: the vector scaled to length 1")
	fs.BoolVar(&s.steerNorm, "steer-norm-units", false, "--steer-coef is in units of the layer's residual norm (|default_mean| of the axis file, else measured on a neutral prompt); the vector is normalised first (not with --steer-units raw)")
	fs.StringVar(&s.ablate, "ablate", "", "remove the axis component on these layers, same syntax as --cap-layers (needs --axis)")
	fs.Float64Var(&s.ablateValue, "ablate-value", 0, "with --ablate: set the axis projection to this value instead of 0")
	fs.BoolVar(&s.newestOnly, "newest-only", false, "intervene on the newest position of each step only (default: every position)")
	fs.StringVar(&s.telemetry, "telemetry", "", "write per-token, per-layer projections before/after the intervention to this JSONL file")
	fs.IntVar(&s.measureLayer, "measure-layer", -1, "layer whose axis projection is reported (default: the axis file's axis_layer, else the reference's layer for the model, else the middle layer; without an axis, the middle capped layer of --cap-experiment)")
	fs.BoolVar(&s.allowOther, "allow-other-model", false, "accept an axis file built from a model with another config.json (same shape)")
	limit(fs, "cap-percentile", between(0, 100))
	limit(fs, "steer-coef", finite())
	limit(fs, "ablate-value", finite())
	limit(fs, "measure-layer", layerRange)
}

// checkOutputs makes sure --telemetry can be written before the model is
// loaded and the generation runs.
func (s *steerFlags) checkOutputs() error {
	if s.telemetry == "" {
		return nil
	}
	return checkOutputFile("telemetry", s.telemetry, "telemetry.jsonl")
}

// spec turns the flags into a steering Spec. The checks here are about which flags need which;
// what the values mean is checked by steer (Spec.Validate, Resolve).
func (s *steerFlags) spec(fs *pflag.FlagSet) (steer.Spec, error) {
	changed := fs.Changed
	var spec steer.Spec
	if s.capLayers == "" && (changed("cap-percentile") || changed("cap-tau")) {
		return spec, usageErrorf("--cap-percentile/--cap-tau need --cap-layers")
	}
	if (s.capExperiment == "") != (s.cappingConfig == "") {
		return spec, usageErrorf("--cap-experiment and --capping-config go together: give both")
	}
	if s.capExperiment != "" && (s.capLayers != "" || changed("cap-percentile") || changed("cap-tau")) {
		return spec, usageErrorf("--cap-experiment sets the capped layers and thresholds itself: drop --cap-layers/--cap-percentile/--cap-tau")
	}
	if s.steerPath == "" && (changed("steer-layers") || changed("steer-coef") || changed("steer-norm-units") || changed("steer-units")) {
		return spec, usageErrorf("--steer-layers/--steer-coef/--steer-units/--steer-norm-units need --steer")
	}
	if s.ablate == "" && changed("ablate-value") {
		return spec, usageErrorf("--ablate-value needs --ablate")
	}
	if s.axisPath == "" && (s.capLayers != "" || s.ablate != "") {
		return spec, usageErrorf("--cap-layers and --ablate act along the axis: give --axis")
	}
	if s.capLayers != "" {
		c := steer.CapSpec{Layers: s.capLayers}
		if changed("cap-percentile") {
			p := s.capPercentile
			c.Percentile = &p
		}
		if changed("cap-tau") {
			taus, err := parseFloatList(s.capTau)
			if err != nil {
				return spec, fmt.Errorf("--cap-tau: %w", err)
			}
			c.Tau = taus
		}
		spec.Cap = []steer.CapSpec{c}
	}
	if s.capExperiment != "" {
		spec.Experiment = &steer.ExperimentSpec{ID: s.capExperiment, CappingConfig: s.cappingConfig}
	}
	if s.steerPath != "" {
		a := steer.AddSpec{Vector: s.steerPath, Layers: s.steerLayers, Coef: s.steerCoef, NormUnits: s.steerNorm}
		if changed("steer-units") {
			a.Units = s.steerUnits
		}
		spec.Add = []steer.AddSpec{a}
	}
	if s.ablate != "" {
		spec.Ablate = []steer.AblateSpec{{Layers: s.ablate, Value: s.ablateValue}}
	}
	if s.measureLayer >= 0 {
		l := s.measureLayer
		spec.MeasureLayer = &l
	}
	spec.NewestOnly, spec.Telemetry, spec.AllowOtherModel = s.newestOnly, s.telemetry != "", s.allowOther
	return spec, nil
}

// validSpec is spec (the flags as a Spec) checked by Spec.Validate: a spec that does not
// validate is a mistake in the command line (a usage error naming the flag).
func validSpec(spec steer.Spec, names map[string]string) error {
	if err := spec.Validate(); err != nil {
		return usageError{flagError(err, names)}
	}
	return nil
}

// readAxis reads --axis (nil without one).
func (s *steerFlags) readAxis() (*axis.Axis, error) {
	if s.axisPath == "" {
		return nil, nil
	}
	return axis.Read(s.axisPath)
}

// build turns the flags into a Spec and resolves it for the model.
func (s *steerFlags) build(ctx context.Context, fs *pflag.FlagSet, m *model.Model) (*steer.Setup, error) {
	spec, err := s.spec(fs)
	if err != nil {
		return nil, err
	}
	if err := validSpec(spec, s.flagNames()); err != nil {
		return nil, err
	}
	ax, err := s.readAxis()
	if err != nil {
		return nil, err
	}
	setup, err := steer.Resolve(ctx, spec, ax, steer.ForModel(m))
	if err != nil {
		return nil, flagError(err, s.flagNames())
	}
	return setup, nil
}

// axisOf is the --axis file as setup resolved it (nil without --axis: an add's axis file is
// not the --axis file).
func (s *steerFlags) axisOf(setup *steer.Setup) *axis.Axis {
	if s.axisPath == "" {
		return nil
	}
	return setup.Axis
}

// flagNames maps the fields of a steering Spec to the flags that set them.
func (s *steerFlags) flagNames() map[string]string {
	return map[string]string{
		"axis":                      "--axis " + s.axisPath,
		"cap":                       "--cap-percentile/--cap-tau",
		"cap.layers":                "--cap-layers",
		"cap.percentile":            "--cap-percentile",
		"cap.tau":                   "--cap-tau",
		"experiment":                "--cap-experiment",
		"experiment.id":             "--cap-experiment",
		"experiment.capping_config": "--capping-config",
		"add":                       "--steer",
		"add.vector":                "--steer",
		"add.layers":                "--steer-layers",
		"add.coef":                  "--steer-coef",
		"add.units":                 "--steer-units",
		"add.norm_units":            "--steer-norm-units",
		"ablate":                    "--ablate",
		"ablate.layers":             "--ablate",
		"ablate.value":              "--ablate-value",
		"measure_layer":             "--measure-layer",
	}
}

// flagError names the flag behind a steer.FieldError (names maps spec fields to flags; a field
// with indices such as "cap[0].tau[1]" maps as the field without them, "cap.tau"); other errors
// are returned as they are.
func flagError(err error, names map[string]string) error {
	var fe *steer.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	if flag, ok := names[fieldIndex.ReplaceAllString(fe.Field, "")]; ok {
		return fmt.Errorf("%s: %s", flag, fe.Problem)
	}
	return err
}

// fieldIndex is an index in a steer.FieldError's field ("[1]").
var fieldIndex = regexp.MustCompile(`\[[0-9]+\]`)

// parseFloatList parses "1.5" or "1,2,3"; "-inf" is accepted.
func parseFloatList(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(x) {
			return nil, fmt.Errorf("%q: expected a number or a comma-separated list of numbers", s)
		}
		out = append(out, x)
	}
	return out, nil
}
