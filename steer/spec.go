package steer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// Spec is a steering request as plain data: what to cap, add and ablate, where, along which
// axes, and where to measure. It names layers in ParseLayers syntax, axes by name and files by
// path, so it is resolved against a model and its axes by Resolve (or ResolveAxes); the command
// line builds one from its flags (one entry of each kind, along its --axis) and a server from
// a JSON request. The zero Spec asks for nothing (with an axis, Resolve still reports the
// projection at the measure layer).
type Spec struct {
	// Cap lists caps, each flooring the projection on its axis on a set of layers.
	Cap List[CapSpec] `json:"cap,omitempty"`
	// Experiment caps as an experiment of the reference project's capping config does (its own
	// directions and thresholds; no axis needed). It excludes Cap.
	Experiment *ExperimentSpec `json:"experiment,omitempty"`
	// Add lists additive steering: each adds a vector on a set of layers; adds on one layer sum.
	Add List[AddSpec] `json:"add,omitempty"`
	// Ablate lists ablations, each setting the projection on its axis to a value on a set of
	// layers.
	Ablate List[AblateSpec] `json:"ablate,omitempty"`
	// Projections chooses the axis whose projections are recorded and reported, and layers to
	// record besides the intervened ones and the measure layer (nil: the default axis, else the
	// axis of the first cap, else of the first ablation, else the first add's vector when it is
	// an axis).
	Projections *ProjectionSpec `json:"projections,omitempty"`
	// NewestOnly restricts every intervention to the newest position of each step.
	NewestOnly bool `json:"newest_only,omitempty"`
	// MeasureLayer is where the mean projection is reported; nil: DefaultMeasureLayer.
	MeasureLayer *int `json:"measure_layer,omitempty"`
	// Telemetry asks for per-token telemetry even when nothing else would record it.
	Telemetry bool `json:"telemetry,omitempty"`
	// AllowOtherModel accepts an axis file built from a model with another config.json of the
	// same shape (axis.Axis.CheckModel).
	AllowOtherModel bool `json:"allow_other_model,omitempty"`
}

// List is a Spec's entries of one kind, applied in order. Its JSON form is a list of entries,
// except that a list of one entry is written as that entry's object: the form a Spec of one
// cap, add or ablation had before these were lists, so that settings written then read back,
// and write again, unchanged. Decoding takes either form.
type List[T any] []T

// MarshalJSON writes one entry as its object and other lists as JSON lists.
func (l List[T]) MarshalJSON() ([]byte, error) {
	if len(l) == 1 {
		return json.Marshal(l[0])
	}
	return json.Marshal([]T(l))
}

// UnmarshalJSON reads a JSON list of entries or one entry's object.
func (l *List[T]) UnmarshalJSON(b []byte) error {
	if b = bytes.TrimSpace(b); len(b) > 0 && b[0] == '{' {
		var one T
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = List[T]{one}
		return nil
	}
	var many []T
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("expected an object or a list of objects: %w", err)
	}
	*l = many
	return nil
}

// DefaultCapLayers, as CapSpec.Layers, asks for the reference project's published capping setting
// of the axis's model (axis.DefaultCap: e.g. layers 46:54 at the 25th percentile for Qwen3-32B).
const DefaultCapLayers = "default"

// CapSpec is a cap on the unit axis of each layer of Layers at a threshold given either as a
// percentile calibrated in the axis file or directly as Tau.
type CapSpec struct {
	// Axis names the axis among those given to ResolveAxes ("": the default axis, the command
	// line's --axis).
	Axis string `json:"axis,omitempty"`
	// Layers are the capped layers, e.g. "46:54" (ParseLayers), or DefaultCapLayers for the
	// reference's published capping setting of the axis's model (then Percentile defaults to the
	// reference's too).
	Layers string `json:"layers"`
	// Percentile takes each layer's tau from the axis file's calibration at this percentile.
	Percentile *float64 `json:"percentile,omitempty"`
	// Tau gives the thresholds: one for every layer, or one per layer in order. -Inf (no cap)
	// is accepted from Go and the command line; JSON cannot express it.
	Tau []float64 `json:"tau,omitempty"`
}

// ExperimentSpec names an experiment of the reference project's capping_config.pt.
type ExperimentSpec struct {
	// ID is the experiment's id, e.g. "layers_46:54-p0.25".
	ID string `json:"id"`
	// CappingConfig is the path of capping_config.pt.
	CappingConfig string `json:"capping_config"`
}

// AddSpec adds Coef times a vector on a set of layers.
type AddSpec struct {
	// Vector names an axis given to ResolveAxes (its axis of each layer), or else is the path of
	// a llama.cpp/repeng control vector (GGUF) or of an axis file (its axis of each layer;
	// positive coefficients push toward the Assistant).
	Vector string `json:"vector"`
	// Layers are the steered layers (ParseLayers); "" means every layer of a control vector and
	// is an error for an axis.
	Layers string `json:"layers,omitempty"`
	// Coef multiplies the vector (in Units).
	Coef float64 `json:"coef"`
	// Units is UnitsRaw (the vector as stored; "" means raw) or UnitsUnit (scaled to length 1).
	Units string `json:"units,omitempty"`
	// NormUnits normalises the vectors and makes Coef a multiple of the layer's residual norm
	// (|default_mean| of the default axis, else of the add's own axis, else measured on
	// NeutralPrompt). It excludes UnitsRaw given explicitly.
	NormUnits bool `json:"norm_units,omitempty"`
}

// AblateSpec sets the projection on an axis to Value on a set of layers (0 removes the
// component).
type AblateSpec struct {
	// Vector names the axis whose direction is ablated, among those given to ResolveAxes ("":
	// the default axis).
	Vector string `json:"vector,omitempty"`
	// Layers are the ablated layers (ParseLayers).
	Layers string `json:"layers"`
	// Value is the projection the axis component is set to.
	Value float64 `json:"value,omitempty"`
}

// ProjectionSpec chooses the axis of the recorded projections (Spec.Projections).
type ProjectionSpec struct {
	// Axis names the axis among those given to ResolveAxes ("": the default axis).
	Axis string `json:"axis,omitempty"`
	// Layers are recorded besides the intervened layers and the measure layer (ParseLayers;
	// "": none); Setup.ProjectionLayers lists them.
	Layers string `json:"layers,omitempty"`
}

// FieldError is a problem with one field of a Spec, named by its JSON path with the index of
// the entry (e.g. "cap[1].percentile"), so that a command can name its own flag for it and a
// server the request's field.
type FieldError struct {
	Field   string
	Problem string
}

// Error reads "steer: <field>: <problem>".
func (e *FieldError) Error() string { return "steer: " + e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// entry is the JSON path of entry i of a list: "cap[1]".
func entry(list string, i int) string { return fmt.Sprintf("%s[%d]", list, i) }

// Validate checks what can be checked without a model or an axis: each entry names its layers,
// exactly one threshold source per cap, finite numbers, known units, no contradictory options.
// Errors are *FieldError.
func (s Spec) Validate() error {
	for i, c := range s.Cap {
		if err := c.validate(entry("cap", i)); err != nil {
			return err
		}
	}
	if e := s.Experiment; e != nil {
		if len(s.Cap) > 0 {
			return fieldErr("experiment", "sets the capped layers and thresholds itself: it excludes cap")
		}
		if e.ID == "" {
			return fieldErr("experiment.id", "empty: expected an experiment id such as \"layers_46:54-p0.25\"")
		}
		if e.CappingConfig == "" {
			return fieldErr("experiment.capping_config", "empty: expected the path of the reference's capping_config.pt")
		}
	}
	for i, a := range s.Add {
		if err := a.validate(entry("add", i)); err != nil {
			return err
		}
	}
	for i, a := range s.Ablate {
		f := entry("ablate", i)
		if a.Layers == "" {
			return fieldErr(f+".layers", "empty: expected a layer selection such as \"10,12\"")
		}
		if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) {
			return fieldErr(f+".value", "%v: expected a finite number", a.Value)
		}
	}
	if s.MeasureLayer != nil && *s.MeasureLayer < 0 {
		return fieldErr("measure_layer", "%d: expected a layer index >= 0", *s.MeasureLayer)
	}
	return nil
}

// validate checks one cap entry, named f in errors.
func (c CapSpec) validate(f string) error {
	if c.Layers == "" {
		return fieldErr(f+".layers", "empty: expected a layer selection such as \"46:54\"")
	}
	switch {
	case c.Percentile != nil && c.Tau != nil:
		return fieldErr(f, "percentile and tau are exclusive: give one")
	case c.Percentile == nil && c.Tau == nil && c.Layers != DefaultCapLayers:
		return fieldErr(f, "needs a threshold: a percentile calibrated in the axis file, or tau")
	case c.Percentile != nil && !(*c.Percentile >= 0 && *c.Percentile <= 100):
		return fieldErr(f+".percentile", "%v out of range: expected a percentile from 0 to 100", *c.Percentile)
	case c.Tau != nil && len(c.Tau) == 0:
		return fieldErr(f+".tau", "empty: expected one threshold, or one per capped layer")
	}
	for i, t := range c.Tau {
		if math.IsNaN(t) || math.IsInf(t, 1) {
			return fieldErr(fmt.Sprintf("%s.tau[%d]", f, i), "%v: expected a finite number (or -Inf for no cap)", t)
		}
	}
	return nil
}

// validate checks one add entry, named f in errors.
func (a AddSpec) validate(f string) error {
	if a.Vector == "" {
		return fieldErr(f+".vector", "empty: expected an axis name, or the path of a control vector (.gguf) or an axis file")
	}
	if math.IsNaN(a.Coef) || math.IsInf(a.Coef, 0) {
		return fieldErr(f+".coef", "%v: expected a finite number", a.Coef)
	}
	switch a.Units {
	case "", UnitsRaw, UnitsUnit:
	default:
		return fieldErr(f+".units", "%q: expected %s or %s", a.Units, UnitsRaw, UnitsUnit)
	}
	if a.NormUnits && a.Units == UnitsRaw {
		return fieldErr(f+".norm_units", "normalises the vector: it cannot be combined with units %s", UnitsRaw)
	}
	return nil
}

// units is the add's units with the default filled in.
func (a *AddSpec) units() string {
	if a.Units == "" {
		return UnitsRaw
	}
	return a.Units
}
