package steer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"tether/axis"
	"tether/engine"
	"tether/model"
)

// Model is what Resolve needs of the model a Spec is resolved for.
type Model struct {
	Name           string // for messages
	Layers, Hidden int
	// Dir is the model directory, for the axis file's config.json check ("" skips it).
	Dir string
	// Engine and Encode measure residual norms for add.norm_units when no axis file gives them
	// (nil: that case is an error).
	Engine *engine.Model
	Encode func(text string) ([]int, error)
}

// ForModel describes an opened model for Resolve.
func ForModel(m *model.Model) Model {
	return Model{Name: m.Name, Layers: m.Config.NumLayers, Hidden: m.Config.HiddenSize, Dir: m.Dir,
		Engine: m.Engine, Encode: m.PlainPrompt}
}

func (m Model) info() axis.ModelInfo {
	return axis.ModelInfo{Name: m.Name, Layers: m.Layers, Hidden: m.Hidden, Dir: m.Dir}
}

// LayerTau is one resolved cap: its layer and the threshold applied there.
type LayerTau struct {
	Layer int     `json:"layer"`
	Tau   float32 `json:"tau"`
}

// Setup is a Spec resolved for one model and axis: the interventions with their thresholds,
// the compiled engine hooks, and where the projection is measured.
type Setup struct {
	// Plan holds the resolved interventions, monitors and recording, as compiled.
	Plan Plan
	// Compiled holds the engine hooks (no hooks when nothing was asked) and reads telemetry.
	Compiled *Compiled
	// Caps are the resolved caps in the order applied (cap or experiment): layer and tau.
	Caps []LayerTau
	// CapPercentile is the spec's percentile when the taus came from the axis file, else 0.
	CapPercentile float64
	// MeasureLayer is where the mean projection is reported (-1: nowhere), and MeasureReason
	// why that layer (DefaultMeasureLayer).
	MeasureLayer  int
	MeasureReason string
	// Axis is the axis of the projections: the one given, else the add's axis file (nil: none).
	Axis *axis.Axis
	// Active reports whether any intervention or telemetry was asked for (with an axis the
	// projection is always recorded).
	Active bool
	// Reports says whether the mean projection and capped fraction are reported at
	// MeasureLayer (Summarize).
	Reports bool
	// AddUnits ("raw", "unit", or "norm" with add.norm_units) and AddCoef record add-steering
	// ("" and 0 without an add).
	AddUnits string
	AddCoef  float64
	// Description is a one-line human summary of what was resolved.
	Description string
}

// CapLayers lists the capped layers, sorted, once each.
func (s *Setup) CapLayers() []int {
	var layers []int
	for _, c := range s.Caps {
		layers = append(layers, c.Layer)
	}
	return uniqueSorted(layers)
}

// CapTaus lists the taus of Caps, in order.
func (s *Setup) CapTaus() []float32 {
	out := make([]float32, len(s.Caps))
	for i, c := range s.Caps {
		out[i] = c.Tau
	}
	return out
}

// Resolve turns a Spec into a Setup for a model, with ax the axis file (nil: none) that caps,
// ablations and projections act along. It validates the spec, checks the axis against the
// model (axis.Axis.CheckModel), parses layers, takes thresholds from the axis calibration or
// the spec, reads vector files, scales steering coefficients, chooses the measure layer
// (DefaultMeasureLayer), adds the monitors that report projections, and compiles the engine
// hooks. Errors about a field of the spec are *FieldError.
func Resolve(ctx context.Context, spec Spec, ax *axis.Axis, m Model) (*Setup, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	L := m.Layers
	if ax != nil {
		if err := ax.CheckModel(m.info(), spec.AllowOtherModel); err != nil {
			return nil, fieldErr("axis", "%s", strings.TrimPrefix(err.Error(), "axis: "))
		}
	}
	if ax == nil && spec.Cap != nil {
		return nil, fieldErr("cap", "caps act along the axis: no axis file given")
	}
	if ax == nil && spec.Ablate != nil {
		return nil, fieldErr("ablate", "ablations act along the axis: no axis file given")
	}
	if ml := spec.MeasureLayer; ml != nil && *ml >= L {
		return nil, fieldErr("measure_layer", "%d out of range: the model has %d layers (0..%d)", *ml, L, L-1)
	}
	s := &Setup{Compiled: &Compiled{}, MeasureLayer: -1, Axis: ax}
	plan := Plan{NewestOnly: spec.NewestOnly, Monitor: map[int][]float32{}}
	var desc []string
	if c := spec.Cap; c != nil {
		caps, pct, d, err := resolveCaps(c, ax, L)
		if err != nil {
			return nil, err
		}
		plan.Interventions = append(plan.Interventions, caps...)
		desc = append(desc, d)
		if pct != nil {
			s.CapPercentile = *pct
		}
	}
	if e := spec.Experiment; e != nil {
		caps, err := resolveExperiment(e, m)
		if err != nil {
			return nil, err
		}
		plan.Interventions = append(plan.Interventions, caps...)
		desc = append(desc, fmt.Sprintf("caps of experiment %q on layers %s", e.ID, FormatLayers(layersOf(caps))))
	}
	if a := spec.Ablate; a != nil {
		layers, err := ParseLayers(a.Layers, L)
		if err != nil {
			return nil, fieldWrap("ablate.layers", err)
		}
		abl, err := AxisAblations(ax, layers, float32(a.Value))
		if err != nil {
			return nil, fieldWrap("ablate", err)
		}
		plan.Interventions = append(plan.Interventions, abl...)
		desc = append(desc, fmt.Sprintf("ablate on layers %s to %g", FormatLayers(layers), a.Value))
	}
	if a := spec.Add; a != nil {
		adds, addAxis, err := resolveAdds(ctx, a, spec.AllowOtherModel, ax, m)
		if err != nil {
			return nil, err
		}
		if s.Axis == nil {
			s.Axis = addAxis
		}
		if s.Axis == nil {
			// Telemetry along the control vector's own directions.
			for _, iv := range adds {
				plan.Monitor[iv.Layer] = iv.Vector
			}
		}
		plan.Interventions = append(plan.Interventions, adds...)
		s.AddUnits, s.AddCoef = a.units(), a.Coef
		if a.NormUnits {
			s.AddUnits = "norm"
		}
		desc = append(desc, fmt.Sprintf("add %g (%s units) of %s on layers %s", a.Coef, s.AddUnits, a.Vector, FormatLayers(layersOf(adds))))
	}
	for _, iv := range plan.Interventions {
		if iv.Kind == KindCap {
			s.Caps = append(s.Caps, LayerTau{Layer: iv.Layer, Tau: iv.Tau})
		}
	}
	s.Active = len(plan.Interventions) > 0 || spec.Telemetry || s.Axis != nil
	if err := s.measure(spec, &plan); err != nil {
		return nil, err
	}
	if s.MeasureLayer >= 0 {
		desc = append(desc, fmt.Sprintf("projection measured at layer %d (%s)", s.MeasureLayer, s.MeasureReason))
	}
	s.Description = strings.Join(desc, "; ")
	plan.Record = s.Active && (s.Reports || len(plan.Monitor) > 0)
	s.Plan = plan
	if !s.Active {
		return s, nil
	}
	c, err := Compile(plan, m.Hidden, L)
	if err != nil {
		return nil, err
	}
	s.Compiled = c
	return s, nil
}

// DefaultMeasureLayer is the one rule for the layer whose projection is reported when a spec
// does not name one: with an axis, the axis file's default layer (axis.DefaultLayer: its
// axis_layer metadata, else the reference's layer for the model, else the middle layer); without
// one, for the caps of a reference experiment (whose own directions are the only ones there
// are), the middle capped layer. ok is false when there is nothing to measure along.
func DefaultMeasureLayer(ax *axis.Axis, capLayers []int) (layer int, reason string, ok bool) {
	if ax != nil {
		l, r := axis.DefaultLayer(ax)
		return l, r, true
	}
	if len(capLayers) > 0 {
		return capLayers[len(capLayers)/2], "the middle capped layer; no axis file", true
	}
	return -1, "", false
}

// measure chooses the measure layer and adds the monitors that report projections there and
// on every intervened layer.
func (s *Setup) measure(spec Spec, plan *Plan) error {
	if s.Axis == nil && spec.Experiment == nil {
		if spec.MeasureLayer != nil {
			return fieldErr("measure_layer", "needs an axis (an axis file, or an add whose vector is one)")
		}
		return nil
	}
	capLayers := s.CapLayers()
	layer, reason, _ := DefaultMeasureLayer(s.Axis, capLayers)
	if spec.MeasureLayer != nil {
		layer, reason = *spec.MeasureLayer, "as asked"
	}
	s.MeasureLayer, s.MeasureReason, s.Reports = layer, reason, true
	if s.Axis != nil {
		plan.Monitor[layer] = s.Axis.Axis[layer]
		for _, iv := range plan.Interventions {
			plan.Monitor[iv.Layer] = s.Axis.Axis[iv.Layer]
		}
		return nil
	}
	// An experiment without an axis: the projection on each cap's own direction.
	if !slices.Contains(capLayers, layer) {
		return fieldErr("measure_layer", "%d: without an axis the projection is measured on a capped layer of the experiment (%s)", layer, FormatLayers(capLayers))
	}
	for _, iv := range plan.Interventions {
		if _, ok := plan.Monitor[iv.Layer]; !ok && iv.Kind == KindCap {
			plan.Monitor[iv.Layer] = iv.Vector
		}
	}
	return nil
}

// resolveCaps returns the caps of a CapSpec and a description.
func resolveCaps(c *CapSpec, ax *axis.Axis, numLayers int) ([]Intervention, *float64, string, error) {
	sel, pct, note := c.Layers, c.Percentile, ""
	if sel == DefaultCapLayers {
		refLayers, refPct, reason, ok := axis.DefaultCap(ax)
		if !ok {
			return nil, nil, "", fieldErr("cap.layers", "%q: the reference published no capping setting for this axis's model (%s, %d layers x %d); give the layers",
				DefaultCapLayers, ax.Extra[axis.ArchitectureKey], ax.Layers, ax.Hidden)
		}
		sel, note = refLayers, "; layers "+refLayers+" from the "+reason
		if pct == nil && c.Tau == nil {
			pct = &refPct
			note = fmt.Sprintf("; layers %s and percentile %g from the %s", refLayers, refPct, reason)
		}
	}
	layers, err := ParseLayers(sel, numLayers)
	if err != nil {
		return nil, nil, "", fieldWrap("cap.layers", err)
	}
	var taus []float32
	var from string
	if pct != nil {
		if taus, err = AxisTaus(ax, layers, *pct); err != nil {
			return nil, nil, "", fieldWrap("cap.percentile", err)
		}
		from = fmt.Sprintf("percentile %g of the axis file", *pct)
	} else {
		vals := make([]float32, len(c.Tau))
		for i, t := range c.Tau {
			vals[i] = float32(t)
		}
		if taus, err = ExpandTaus(vals, layers); err != nil {
			return nil, nil, "", fieldWrap("cap.tau", err)
		}
		from = "given"
	}
	caps, err := AxisCaps(ax, layers, taus)
	if err != nil {
		return nil, nil, "", fieldWrap("cap", err)
	}
	return caps, pct, fmt.Sprintf("cap on layers %s at tau %v (%s%s)", FormatLayers(layers), taus, from, note), nil
}

// resolveExperiment reads the capping config and returns the experiment's caps.
func resolveExperiment(e *ExperimentSpec, m Model) ([]Intervention, error) {
	cfg, err := axis.ReadCappingConfig(e.CappingConfig)
	if err != nil {
		return nil, fieldWrap("experiment.capping_config", err)
	}
	caps, err := cfg.Caps(e.ID)
	if err != nil {
		return nil, fieldWrap("experiment.id", err)
	}
	ivs, err := ExperimentCaps(caps, m.Hidden, m.Layers)
	if err != nil {
		return nil, fieldErr("experiment", "%s, experiment %q: %s", e.CappingConfig, e.ID, trimSteer(err))
	}
	return ivs, nil
}

// resolveAdds reads the add's vector file (a control vector or an axis file) and returns its
// adds, scaled to the spec's units; addAxis is the file when it is an axis.
func resolveAdds(ctx context.Context, a *AddSpec, allowOther bool, ax *axis.Axis, m Model) (adds []Intervention, addAxis *axis.Axis, err error) {
	var layers []int
	if a.Layers != "" {
		if layers, err = ParseLayers(a.Layers, m.Layers); err != nil {
			return nil, nil, fieldWrap("add.layers", err)
		}
	}
	coef := float32(a.Coef)
	if IsControlVector(a.Vector) {
		cv, err := ReadControlVector(a.Vector)
		if err != nil {
			return nil, nil, fieldWrap("add.vector", err)
		}
		if cv.Hidden != m.Hidden {
			return nil, nil, fieldErr("add.vector", "%s: control vector has hidden size %d but the model has %d", a.Vector, cv.Hidden, m.Hidden)
		}
		if last := cv.Layers()[len(cv.Layers())-1]; last >= m.Layers && layers == nil {
			return nil, nil, fieldErr("add.vector", "%s: control vector has a direction for layer %d but the model has %d layers", a.Vector, last, m.Layers)
		}
		if adds, err = ControlVectorAdds(cv, layers, coef); err != nil {
			return nil, nil, fieldErr("add.vector", "%s: %s", a.Vector, trimSteer(err))
		}
		if err := ApplyUnits(adds, a.units()); err != nil {
			return nil, nil, fieldErr("add.vector", "%s: %s", a.Vector, trimSteer(err))
		}
	} else {
		sa, err := axis.Read(a.Vector)
		if err != nil {
			return nil, nil, fieldErr("add.vector", "%s: not a GGUF control vector, and as an axis file: %v", a.Vector, err)
		}
		if err := sa.CheckModel(m.info(), allowOther); err != nil {
			return nil, nil, fieldErr("add.vector", "%s: %v", a.Vector, err)
		}
		if layers == nil {
			return nil, nil, fieldErr("add.layers", "needed when the vector is an axis file (it holds every layer)")
		}
		if adds, err = AxisAdds(sa, layers, coef, a.units()); err != nil {
			return nil, nil, fieldWrap("add", err)
		}
		addAxis = sa
	}
	if !a.NormUnits {
		return adds, addAxis, nil
	}
	if err := scaleToNorms(ctx, adds, ax, addAxis, m); err != nil {
		return nil, nil, fieldWrap("add.norm_units", err)
	}
	return adds, addAxis, nil
}

// scaleToNorms normalises the adds' vectors and multiplies their coefficients by the layer's
// residual norm: |default_mean| of the axis (ax, else the add's own axis file) when it has one,
// else the mean |h| measured on NeutralPrompt.
func scaleToNorms(ctx context.Context, adds []Intervention, ax, addAxis *axis.Axis, m Model) error {
	var layers []int
	for i := range adds {
		u, err := axis.UnitVector(adds[i].Vector)
		if err != nil {
			return fmt.Errorf("layer %d: %w", adds[i].Layer, err)
		}
		adds[i].Vector = u
		layers = append(layers, adds[i].Layer)
	}
	normAxis := ax
	if normAxis == nil {
		normAxis = addAxis
	}
	var norms map[int]float64
	var err error
	if normAxis != nil && normAxis.DefaultMean != nil { // an imported axis has none: measure
		norms, err = NormsFromAxis(normAxis, layers)
	} else {
		if m.Engine == nil || m.Encode == nil {
			return fmt.Errorf("no axis default_mean to scale by, and no model to measure residual norms with")
		}
		var ids []int
		if ids, err = m.Encode(NeutralPrompt); err == nil {
			norms, err = MeanResidualNorms(ctx, m.Engine, ids, layers)
		}
	}
	if err != nil {
		return err
	}
	return ScaleByNorms(adds, norms)
}

// IsControlVector reports whether the file is a GGUF control vector: it starts with the GGUF
// magic, or (when it cannot be read) its name ends in .gguf.
func IsControlVector(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return strings.HasSuffix(strings.ToLower(path), ".gguf")
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.Read(head)
	return bytes.Equal(head[:n], []byte("GGUF"))
}

// layersOf lists the layers of interventions, sorted, once each.
func layersOf(ivs []Intervention) []int {
	var layers []int
	for _, iv := range ivs {
		layers = append(layers, iv.Layer)
	}
	return uniqueSorted(layers)
}

// uniqueSorted sorts layers and drops repeats.
func uniqueSorted(layers []int) []int {
	slices.Sort(layers)
	return slices.Compact(layers)
}

// fieldWrap makes err a FieldError of field.
func fieldWrap(field string, err error) error {
	return &FieldError{Field: field, Problem: trimSteer(err)}
}

// trimSteer is err's message without this package's "steer: " prefix.
func trimSteer(err error) string {
	return strings.TrimPrefix(err.Error(), "steer: ")
}
