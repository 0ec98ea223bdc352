package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
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
}

func addSteerFlags(fs *pflag.FlagSet, s *steerFlags) {
	fs.StringVar(&s.axisPath, "axis", "", "axis file (axis.safetensors) for --cap-layers, --ablate and telemetry")
	fs.StringVar(&s.capLayers, "cap-layers", "", "cap the axis projection on these layers: "+layerSyntax)
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
	fs.IntVar(&s.measureLayer, "measure-layer", -1, "layer whose axis projection is reported (default: middle of the capped range, the axis file's axis_layer, or the model's middle layer)")
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

// steerSetup is what the flags compile to for one model.
type steerSetup struct {
	compiled *steer.Compiled
	// active reports whether any intervention or telemetry was requested.
	active bool
	// capLayers are the capped layers (empty without a cap).
	capLayers []int
	// measureLayer is where the mean projection is reported (-1: nothing recorded there).
	measureLayer int
	// summary reports whether the mean projection/capped fraction can be shown.
	summary bool
	// steerUnits and steerCoef are the add-steering settings ("" without --steer); steerUnits
	// is "norm" with --steer-norm-units.
	steerUnits string
	steerCoef  float64
	// axis is the --axis file (nil without one).
	axis *axis.Axis
}

// build validates the flags against the model and compiles them.
func (s *steerFlags) build(ctx context.Context, fs *pflag.FlagSet, m *model.Model) (*steerSetup, error) {
	cfg := m.Config
	H, L := cfg.HiddenSize, cfg.NumLayers
	setup := &steerSetup{compiled: &steer.Compiled{}, measureLayer: -1}
	changed := func(n string) bool { return fs.Changed(n) }
	if changed("cap-percentile") && changed("cap-tau") {
		return nil, usageErrorf("--cap-percentile and --cap-tau are exclusive: give one")
	}
	if s.capLayers == "" && (changed("cap-percentile") || changed("cap-tau")) {
		return nil, usageErrorf("--cap-percentile/--cap-tau need --cap-layers")
	}
	if err := s.checkExperimentFlags(changed); err != nil {
		return nil, err
	}
	if s.steerPath == "" && (changed("steer-layers") || changed("steer-coef") || changed("steer-norm-units") || changed("steer-units")) {
		return nil, usageErrorf("--steer-layers/--steer-coef/--steer-units/--steer-norm-units need --steer")
	}
	if s.steerUnits != steer.UnitsRaw && s.steerUnits != steer.UnitsUnit {
		return nil, usageErrorf("--steer-units %q: expected %s or %s", s.steerUnits, steer.UnitsRaw, steer.UnitsUnit)
	}
	if s.steerNorm && changed("steer-units") && s.steerUnits == steer.UnitsRaw {
		return nil, usageErrorf("--steer-norm-units normalises the vector: it cannot be combined with --steer-units raw")
	}
	if s.ablate == "" && changed("ablate-value") {
		return nil, usageErrorf("--ablate-value needs --ablate")
	}
	var ax *axis.Axis
	if s.axisPath != "" {
		var err error
		if ax, err = axis.Read(s.axisPath); err != nil {
			return nil, err
		}
		if err := steer.CheckAxis(ax, H, L); err != nil {
			return nil, fmt.Errorf("--axis %s: %w", s.axisPath, err)
		}
		setup.axis = ax
	}
	if ax == nil && (s.capLayers != "" || s.ablate != "") {
		return nil, usageErrorf("--cap-layers and --ablate act along the axis: give --axis")
	}
	if s.measureLayer >= L {
		return nil, fmt.Errorf("--measure-layer %d out of range: the model has %d layers (0..%d)", s.measureLayer, L, L-1)
	}

	plan := steer.Plan{NewestOnly: s.newestOnly, Monitor: map[int][]float32{}}
	if s.capLayers != "" {
		layers, err := steer.ParseLayers(s.capLayers, L)
		if err != nil {
			return nil, fmt.Errorf("--cap-layers: %w", err)
		}
		var taus []float32
		switch {
		case changed("cap-tau"):
			vals, err := parseFloatList(s.capTau)
			if err != nil {
				return nil, fmt.Errorf("--cap-tau: %w", err)
			}
			if taus, err = steer.ExpandTaus(vals, layers); err != nil {
				return nil, fmt.Errorf("--cap-tau: %w", err)
			}
		case changed("cap-percentile"):
			if taus, err = steer.AxisTaus(ax, layers, s.capPercentile); err != nil {
				return nil, fmt.Errorf("--cap-percentile: %w", err)
			}
		default:
			return nil, fmt.Errorf("--cap-layers needs a threshold: --cap-percentile P (calibrated in the axis file: %v) or --cap-tau T", ax.Percentiles)
		}
		caps, err := steer.AxisCaps(ax, layers, taus)
		if err != nil {
			return nil, err
		}
		plan.Interventions = append(plan.Interventions, caps...)
		setup.capLayers = layers
	}
	if s.capExperiment != "" {
		caps, err := s.experimentCaps(H, L)
		if err != nil {
			return nil, err
		}
		plan.Interventions = append(plan.Interventions, caps...)
		setup.capLayers = capLayersOf(caps)
	}
	if s.ablate != "" {
		layers, err := steer.ParseLayers(s.ablate, L)
		if err != nil {
			return nil, fmt.Errorf("--ablate: %w", err)
		}
		abl, err := steer.AxisAblations(ax, layers, float32(s.ablateValue))
		if err != nil {
			return nil, err
		}
		plan.Interventions = append(plan.Interventions, abl...)
	}
	if s.steerPath != "" {
		adds, steerAxis, err := s.steerAdds(ctx, m, ax)
		if err != nil {
			return nil, err
		}
		if ax == nil {
			ax = steerAxis
		}
		if ax == nil {
			// Telemetry along the control vector's own directions.
			for _, a := range adds {
				plan.Monitor[a.Layer] = a.Vector
			}
		}
		plan.Interventions = append(plan.Interventions, adds...)
		setup.steerUnits, setup.steerCoef = s.steerUnits, s.steerCoef
		if s.steerNorm {
			setup.steerUnits = "norm"
		}
	}
	// With an axis the projection is always reported (a monitor never
	// changes the stream).
	setup.active = len(plan.Interventions) > 0 || s.telemetry != "" || ax != nil
	if ax != nil {
		setup.measureLayer = s.measureLayer
		if setup.measureLayer < 0 {
			setup.measureLayer = defaultMeasureLayer(setup.capLayers, ax, L)
		}
		plan.Monitor[setup.measureLayer] = ax.Axis[setup.measureLayer]
		for _, iv := range plan.Interventions {
			plan.Monitor[iv.Layer] = ax.Axis[iv.Layer]
		}
		setup.summary = true
	} else if s.capExperiment != "" {
		if err := s.monitorExperiment(&plan, setup); err != nil {
			return nil, err
		}
	} else if s.measureLayer >= 0 {
		return nil, usageErrorf("--measure-layer needs an axis (--axis, or --steer with an axis file)")
	}
	plan.Record = setup.active && (setup.summary || len(plan.Monitor) > 0)
	if !setup.active {
		return setup, nil
	}
	c, err := steer.Compile(plan, H, L)
	if err != nil {
		return nil, err
	}
	setup.compiled = c
	return setup, nil
}

// steerAdds reads --steer (a control vector GGUF or an axis file) and
// returns its adds; steerAxis is the axis when the file is one.
func (s *steerFlags) steerAdds(ctx context.Context, m *model.Model, ax *axis.Axis) (adds []steer.Intervention, steerAxis *axis.Axis, err error) {
	cfg := m.Config
	L := cfg.NumLayers
	var layers []int
	if s.steerLayers != "" {
		if layers, err = steer.ParseLayers(s.steerLayers, L); err != nil {
			return nil, nil, fmt.Errorf("--steer-layers: %w", err)
		}
	}
	coef := float32(s.steerCoef)
	if isGGUF(s.steerPath) {
		cv, err := steer.ReadControlVector(s.steerPath)
		if err != nil {
			return nil, nil, err
		}
		if cv.Hidden != cfg.HiddenSize {
			return nil, nil, fmt.Errorf("--steer %s: control vector has hidden size %d but the model has %d", s.steerPath, cv.Hidden, cfg.HiddenSize)
		}
		if last := cv.Layers()[len(cv.Layers())-1]; last >= L && layers == nil {
			return nil, nil, fmt.Errorf("--steer %s: control vector has a direction for layer %d but the model has %d layers", s.steerPath, last, L)
		}
		if adds, err = steer.ControlVectorAdds(cv, layers, coef); err != nil {
			return nil, nil, fmt.Errorf("--steer %s: %w", s.steerPath, err)
		}
		if err := steer.ApplyUnits(adds, s.steerUnits); err != nil {
			return nil, nil, fmt.Errorf("--steer %s: %w", s.steerPath, err)
		}
	} else {
		sa, err := axis.Read(s.steerPath)
		if err != nil {
			return nil, nil, fmt.Errorf("--steer %s: not a GGUF control vector, and as an axis file: %w", s.steerPath, err)
		}
		if err := steer.CheckAxis(sa, cfg.HiddenSize, L); err != nil {
			return nil, nil, fmt.Errorf("--steer %s: %w", s.steerPath, err)
		}
		if layers == nil {
			return nil, nil, fmt.Errorf("--steer with an axis file needs --steer-layers")
		}
		if adds, err = steer.AxisAdds(sa, layers, coef, s.steerUnits); err != nil {
			return nil, nil, err
		}
		steerAxis = sa
	}
	if !s.steerNorm {
		return adds, steerAxis, nil
	}
	var addLayers []int
	for i := range adds {
		u, err := steer.Unit(adds[i].Vector)
		if err != nil {
			return nil, nil, fmt.Errorf("--steer %s: layer %d: %w", s.steerPath, adds[i].Layer, err)
		}
		adds[i].Vector = u
		addLayers = append(addLayers, adds[i].Layer)
	}
	var norms map[int]float64
	normAxis := ax
	if normAxis == nil {
		normAxis = steerAxis
	}
	if normAxis != nil && normAxis.DefaultMean != nil { // an imported axis has none: measure
		norms, err = steer.NormsFromAxis(normAxis, addLayers)
	} else {
		var ids []int
		if ids, err = m.PlainPrompt(steer.NeutralPrompt); err == nil {
			norms, err = steer.MeanResidualNorms(ctx, m.Engine, ids, addLayers)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--steer-norm-units: %w", err)
	}
	if err := steer.ScaleByNorms(adds, norms); err != nil {
		return nil, nil, err
	}
	return adds, steerAxis, nil
}

// defaultMeasureLayer is the middle of the capped range, else the axis
// file's "axis_layer" metadata, else the model's middle layer.
func defaultMeasureLayer(capLayers []int, ax *axis.Axis, numLayers int) int {
	if len(capLayers) > 0 {
		return capLayers[len(capLayers)/2]
	}
	if v, ok := ax.Extra["axis_layer"]; ok {
		if l, err := strconv.Atoi(v); err == nil && l >= 0 && l < numLayers {
			return l
		}
	}
	return numLayers / 2
}

// isGGUF reports whether the file starts with the GGUF magic.
func isGGUF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return strings.HasSuffix(strings.ToLower(path), ".gguf")
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	return bytes.Equal(head[:n], []byte("GGUF"))
}

// parseFloatList parses "1.5" or "1,2,3"; "-inf" is accepted.
func parseFloatList(s string) ([]float32, error) {
	var out []float32
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(x) {
			return nil, fmt.Errorf("%q: expected a number or a comma-separated list of numbers", s)
		}
		out = append(out, float32(x))
	}
	return out, nil
}
