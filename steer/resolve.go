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
	// MaxClamps bounds the clamps the compiled hooks may have on one layer (caps, ablations and
	// the one that records the projection axis when Compile adds it), as an engine.Batcher's
	// BatcherOptions.MaxClamps does; 0: no bound. A spec needing more is a FieldError naming
	// the layers of the entry beyond the bound.
	MaxClamps int
}

// ForModel describes an opened model for Resolve.
func ForModel(m *model.Model) Model {
	return Model{Name: m.Name, Layers: m.Config.NumLayers, Hidden: m.Config.HiddenSize, Dir: m.Dir,
		Engine: m.Engine, Encode: m.PlainPrompt}
}

func (m Model) info() axis.ModelInfo {
	return axis.ModelInfo{Name: m.Name, Layers: m.Layers, Hidden: m.Hidden, Dir: m.Dir}
}

// Axes are the axes the entries of a Spec name, by name; "" is the default axis (the command
// line's --axis), along which entries that name no axis act.
type Axes map[string]*axis.Axis

// LayerTau is one resolved cap: its layer and the threshold applied there.
type LayerTau struct {
	Layer int     `json:"layer"`
	Tau   float32 `json:"tau"`
}

// Setup is a Spec resolved for one model and its axes: the interventions with their
// thresholds, the compiled engine hooks, and where the projection is measured.
type Setup struct {
	// Plan holds the resolved interventions, monitors and recording, as compiled.
	Plan Plan
	// Compiled holds the engine hooks (no hooks when nothing was asked) and reads telemetry.
	Compiled *Compiled
	// Caps are the resolved caps of every cap entry (or of the experiment) in the order
	// applied: layer and tau.
	Caps []LayerTau
	// CapPercentile is the first cap entry's percentile when its taus came from the axis file,
	// else 0.
	CapPercentile float64
	// MeasureLayer is where the mean projection is reported (-1: nowhere), and MeasureReason
	// why that layer (DefaultMeasureLayer).
	MeasureLayer  int
	MeasureReason string
	// Axis is the axis of the projections (the projection axis, Spec.Projections; nil: none).
	Axis *axis.Axis
	// ProjectionLayers are the layers Spec.Projections.Layers names (nil when not given).
	ProjectionLayers []int
	// Active reports whether any intervention or telemetry was asked for (with an axis the
	// projection is always recorded).
	Active bool
	// Reports says whether the mean projection and capped fraction are reported at
	// MeasureLayer (Summarize).
	Reports bool
	// AddUnits ("raw", "unit", or "norm" with add.norm_units) and AddCoef record the first
	// add's steering ("" and 0 without an add).
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

// Resolve is ResolveAxes with ax (nil: none) as the default axis and no named ones: what a
// command with one --axis resolves.
func Resolve(ctx context.Context, spec Spec, ax *axis.Axis, m Model) (*Setup, error) {
	var axes Axes
	if ax != nil {
		axes = Axes{"": ax}
	}
	return ResolveAxes(ctx, spec, axes, m)
}

// ResolveAxes turns a Spec into a Setup for a model, with axes the axes its entries name. It
// validates the spec, checks each axis used (and the default axis) against the model
// (axis.Axis.CheckModel), parses layers, takes thresholds from the axis calibration or the
// spec, reads vector files, scales steering coefficients, chooses the projection axis and the
// measure layer (DefaultMeasureLayer), adds the monitors that report projections, and compiles
// the engine hooks: on each layer the sum of its adds, then the caps of every cap entry in
// order, then the ablations of every ablate entry in order. Errors about a field of the spec
// are *FieldError naming it with the entry's index ("cap[1].tau").
func ResolveAxes(ctx context.Context, spec Spec, axes Axes, m Model) (*Setup, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	r := &resolver{spec: spec, axes: axes, m: m, checked: map[string]bool{}}
	if axes[""] != nil {
		if _, err := r.axis("", "axis", "axis", "the axis"); err != nil {
			return nil, err
		}
	}
	return r.resolve(ctx)
}

// resolver resolves one Spec.
type resolver struct {
	spec    Spec
	axes    Axes
	m       Model
	checked map[string]bool // axes checked against the model
	plan    Plan
	from    []string // the entry ("cap[0]", "experiment", ...) of each of plan.Interventions
}

// axis returns the axis name, for the entry f whose field naming it is nameField, checked
// against the model once; kind says what needs it ("caps").
func (r *resolver) axis(name, f, nameField, kind string) (*axis.Axis, error) {
	a := r.axes[name]
	if a == nil {
		if name == "" {
			return nil, fieldErr(f, "%s act along an axis: no axis file given", kind)
		}
		return nil, fieldErr(nameField, "unknown axis %q: %s", name, r.names())
	}
	if !r.checked[name] {
		if err := a.CheckModel(r.m.info(), r.spec.AllowOtherModel); err != nil {
			return nil, fieldErr(nameField, "%s", strings.TrimPrefix(err.Error(), "axis: "))
		}
		r.checked[name] = true
	}
	return a, nil
}

// names lists the named axes for messages.
func (r *resolver) names() string {
	var names []string
	for n := range r.axes {
		if n != "" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no named axes given"
	}
	slices.Sort(names)
	return "given: " + strings.Join(names, ", ")
}

// add appends the interventions of the entry f to the plan.
func (r *resolver) add(ivs []Intervention, f string) {
	r.plan.Interventions = append(r.plan.Interventions, ivs...)
	for range ivs {
		r.from = append(r.from, f)
	}
}

func (r *resolver) resolve(ctx context.Context) (*Setup, error) {
	spec, L := r.spec, r.m.Layers
	if ml := spec.MeasureLayer; ml != nil && *ml >= L {
		return nil, fieldErr("measure_layer", "%d out of range: the model has %d layers (0..%d)", *ml, L, L-1)
	}
	s := &Setup{Compiled: &Compiled{}, MeasureLayer: -1}
	r.plan = Plan{NewestOnly: spec.NewestOnly, Monitor: map[int][]float32{}}
	var desc []string
	var firstAxis *axis.Axis // of the first cap, else of the first ablation
	for i, c := range spec.Cap {
		f := entry("cap", i)
		ax, err := r.axis(c.Axis, f, f+".axis", "caps")
		if err != nil {
			return nil, err
		}
		caps, pct, d, err := resolveCaps(c, f, ax, L)
		if err != nil {
			return nil, err
		}
		r.add(caps, f)
		desc = append(desc, d+onAxis(c.Axis))
		if i == 0 && pct != nil {
			s.CapPercentile = *pct
		}
		if firstAxis == nil {
			firstAxis = ax
		}
	}
	if e := spec.Experiment; e != nil {
		caps, err := resolveExperiment(e, r.m)
		if err != nil {
			return nil, err
		}
		r.add(caps, "experiment")
		desc = append(desc, fmt.Sprintf("caps of experiment %q on layers %s", e.ID, FormatLayers(layersOf(caps))))
	}
	for i, a := range spec.Ablate {
		f := entry("ablate", i)
		ax, err := r.axis(a.Vector, f, f+".vector", "ablations")
		if err != nil {
			return nil, err
		}
		layers, err := ParseLayers(a.Layers, L)
		if err != nil {
			return nil, fieldWrap(f+".layers", err)
		}
		abl, err := AxisAblations(ax, layers, float32(a.Value))
		if err != nil {
			return nil, fieldWrap(f, err)
		}
		r.add(abl, f)
		desc = append(desc, fmt.Sprintf("ablate on layers %s to %g%s", FormatLayers(layers), a.Value, onAxis(a.Vector)))
		if firstAxis == nil {
			firstAxis = ax
		}
	}
	var addAxis *axis.Axis // the first add's vector that is an axis
	for i := range spec.Add {
		a, f := &spec.Add[i], entry("add", i)
		adds, vecAxis, err := r.resolveAdds(ctx, a, f)
		if err != nil {
			return nil, err
		}
		if addAxis == nil {
			addAxis = vecAxis
		}
		units := a.units()
		if a.NormUnits {
			units = "norm"
		}
		if i == 0 {
			s.AddUnits, s.AddCoef = units, a.Coef
		}
		r.add(adds, f)
		desc = append(desc, fmt.Sprintf("add %g (%s units) of %s on layers %s", a.Coef, units, a.Vector, FormatLayers(layersOf(adds))))
	}
	plan := &r.plan
	switch {
	case spec.Projections != nil:
		ax, err := r.axis(spec.Projections.Axis, "projections", "projections.axis", "projections")
		if err != nil {
			return nil, err
		}
		s.Axis = ax
	case r.axes[""] != nil:
		s.Axis = r.axes[""]
	case firstAxis != nil:
		s.Axis = firstAxis
	default:
		s.Axis = addAxis
	}
	if s.Axis == nil {
		// Telemetry along the control vectors' own directions (the first add's of each layer).
		for _, iv := range plan.Interventions {
			if _, ok := plan.Monitor[iv.Layer]; !ok && iv.Kind == KindAdd {
				plan.Monitor[iv.Layer] = iv.Vector
			}
		}
	}
	for _, iv := range plan.Interventions {
		if iv.Kind == KindCap {
			s.Caps = append(s.Caps, LayerTau{Layer: iv.Layer, Tau: iv.Tau})
		}
	}
	s.Active = len(plan.Interventions) > 0 || spec.Telemetry || s.Axis != nil
	if err := s.measure(spec, plan); err != nil {
		return nil, err
	}
	if p := spec.Projections; p != nil && p.Layers != "" {
		layers, err := ParseLayers(p.Layers, L)
		if err != nil {
			return nil, fieldWrap("projections.layers", err)
		}
		s.ProjectionLayers = layers
		for _, l := range layers {
			plan.Monitor[l] = s.Axis.Axis[l]
		}
	}
	if s.MeasureLayer >= 0 {
		desc = append(desc, fmt.Sprintf("projection measured at layer %d (%s)", s.MeasureLayer, s.MeasureReason))
	}
	s.Description = strings.Join(desc, "; ")
	plan.Record = s.Active && (s.Reports || len(plan.Monitor) > 0)
	s.Plan = *plan
	if !s.Active {
		return s, nil
	}
	c, err := Compile(s.Plan, r.m.Hidden, L)
	if err != nil {
		return nil, err
	}
	if err := r.checkClamps(c); err != nil {
		return nil, err
	}
	s.Compiled = c
	return s, nil
}

// onAxis names a named axis in a description.
func onAxis(name string) string {
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" on axis %q", name)
}

// checkClamps refuses hooks with more clamps on a layer than Model.MaxClamps, naming the entry
// whose clamp is the first beyond the bound.
func (r *resolver) checkClamps(c *Compiled) error {
	bound := r.m.MaxClamps
	if bound <= 0 {
		return nil
	}
	for _, layer := range sortedKeys(c.Hooks) {
		n := len(c.Hooks[layer].Clamps)
		if n <= bound {
			continue
		}
		// The layer's clamps: the one recording the projection axis when Compile put it first,
		// then the caps and ablations in order.
		var entries []string
		for k, iv := range r.plan.Interventions {
			if iv.Layer == layer && iv.Kind != KindAdd {
				entries = append(entries, r.from[k])
			}
		}
		monitor, note := n-len(entries), ""
		if monitor > 0 {
			note = " plus one recording the projection axis"
		}
		field := entries[max(bound-monitor, 0)]
		if field != "experiment" {
			field += ".layers"
		}
		return fieldErr(field, "layer %d would have %d clamps (%d caps and ablations%s): at most %d per layer are allowed here",
			layer, n, len(entries), note, bound)
	}
	return nil
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

// resolveCaps returns the caps of the cap entry f and a description.
func resolveCaps(c CapSpec, f string, ax *axis.Axis, numLayers int) ([]Intervention, *float64, string, error) {
	sel, pct, note := c.Layers, c.Percentile, ""
	if sel == DefaultCapLayers {
		refLayers, refPct, reason, ok := axis.DefaultCap(ax)
		if !ok {
			return nil, nil, "", fieldErr(f+".layers", "%q: the reference published no capping setting for this axis's model (%s, %d layers x %d); give the layers",
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
		return nil, nil, "", fieldWrap(f+".layers", err)
	}
	var taus []float32
	var from string
	if pct != nil {
		if taus, err = AxisTaus(ax, layers, *pct); err != nil {
			return nil, nil, "", fieldWrap(f+".percentile", err)
		}
		from = fmt.Sprintf("percentile %g of the axis file", *pct)
	} else {
		vals := make([]float32, len(c.Tau))
		for i, t := range c.Tau {
			vals[i] = float32(t)
		}
		if taus, err = ExpandTaus(vals, layers); err != nil {
			return nil, nil, "", fieldWrap(f+".tau", err)
		}
		from = "given"
	}
	caps, err := AxisCaps(ax, layers, taus)
	if err != nil {
		return nil, nil, "", fieldWrap(f, err)
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

// resolveAdds returns the adds of the add entry f, scaled to its units: its vector is a named
// axis, else a control vector or an axis file read from its path; vecAxis is the vector when it
// is an axis.
func (r *resolver) resolveAdds(ctx context.Context, a *AddSpec, f string) (adds []Intervention, vecAxis *axis.Axis, err error) {
	m := r.m
	var layers []int
	if a.Layers != "" {
		if layers, err = ParseLayers(a.Layers, m.Layers); err != nil {
			return nil, nil, fieldWrap(f+".layers", err)
		}
	}
	coef := float32(a.Coef)
	switch {
	case r.axes[a.Vector] != nil:
		if vecAxis, err = r.axis(a.Vector, f, f+".vector", "adds"); err != nil {
			return nil, nil, err
		}
	case IsControlVector(a.Vector):
		cv, err := ReadControlVector(a.Vector)
		if err != nil {
			return nil, nil, fieldWrap(f+".vector", err)
		}
		if cv.Hidden != m.Hidden {
			return nil, nil, fieldErr(f+".vector", "%s: control vector has hidden size %d but the model has %d", a.Vector, cv.Hidden, m.Hidden)
		}
		if last := cv.Layers()[len(cv.Layers())-1]; last >= m.Layers && layers == nil {
			return nil, nil, fieldErr(f+".vector", "%s: control vector has a direction for layer %d but the model has %d layers", a.Vector, last, m.Layers)
		}
		if adds, err = ControlVectorAdds(cv, layers, coef); err != nil {
			return nil, nil, fieldErr(f+".vector", "%s: %s", a.Vector, trimSteer(err))
		}
		if err := ApplyUnits(adds, a.units()); err != nil {
			return nil, nil, fieldErr(f+".vector", "%s: %s", a.Vector, trimSteer(err))
		}
	default:
		if vecAxis, err = axis.Read(a.Vector); err != nil {
			return nil, nil, fieldErr(f+".vector", "%s: not a GGUF control vector, and as an axis file: %v", a.Vector, err)
		}
		if err := vecAxis.CheckModel(m.info(), r.spec.AllowOtherModel); err != nil {
			return nil, nil, fieldErr(f+".vector", "%s: %v", a.Vector, err)
		}
	}
	if vecAxis != nil {
		if layers == nil {
			return nil, nil, fieldErr(f+".layers", "needed when the vector is an axis file or a named axis (it holds every layer)")
		}
		if adds, err = AxisAdds(vecAxis, layers, coef, a.units()); err != nil {
			return nil, nil, fieldWrap(f, err)
		}
	}
	if !a.NormUnits {
		return adds, vecAxis, nil
	}
	if err := scaleToNorms(ctx, adds, r.axes[""], vecAxis, m); err != nil {
		return nil, nil, fieldWrap(f+".norm_units", err)
	}
	return adds, vecAxis, nil
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
