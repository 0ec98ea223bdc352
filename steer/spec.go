package steer

import (
	"fmt"
	"math"
)

// Spec is a steering request as plain data: what to cap, add and ablate, where, and where to
// measure. It names layers in ParseLayers syntax and files by path, so it is resolved against a
// model and an axis file by Resolve; the command line builds one from its flags and a server
// from a JSON request. The zero Spec asks for nothing (with an axis, Resolve still reports the
// projection at the measure layer).
type Spec struct {
	// Cap floors the axis projection on a set of layers (needs an axis).
	Cap *CapSpec `json:"cap,omitempty"`
	// Experiment caps as an experiment of the reference project's capping config does (its own
	// directions and thresholds; no axis needed). It excludes Cap.
	Experiment *ExperimentSpec `json:"experiment,omitempty"`
	// Add adds a steering vector on a set of layers.
	Add *AddSpec `json:"add,omitempty"`
	// Ablate sets the axis projection to a value on a set of layers (needs an axis).
	Ablate *AblateSpec `json:"ablate,omitempty"`
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

// DefaultCapLayers, as CapSpec.Layers, asks for the reference project's published capping setting
// of the axis's model (axis.DefaultCap: e.g. layers 46:54 at the 25th percentile for Qwen3-32B).
const DefaultCapLayers = "default"

// CapSpec is a cap on the unit axis of each layer of Layers at a threshold given either as a
// percentile calibrated in the axis file or directly as Tau.
type CapSpec struct {
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
	// Vector is the path of a llama.cpp/repeng control vector (GGUF) or of an axis file (its
	// axis of each layer; positive coefficients push toward the Assistant).
	Vector string `json:"vector"`
	// Layers are the steered layers (ParseLayers); "" means every layer of a control vector and
	// is an error for an axis file.
	Layers string `json:"layers,omitempty"`
	// Coef multiplies the vector (in Units).
	Coef float64 `json:"coef"`
	// Units is UnitsRaw (the vector as stored; "" means raw) or UnitsUnit (scaled to length 1).
	Units string `json:"units,omitempty"`
	// NormUnits normalises the vectors and makes Coef a multiple of the layer's residual norm
	// (|default_mean| of the axis file, else measured on NeutralPrompt). It excludes UnitsRaw
	// given explicitly.
	NormUnits bool `json:"norm_units,omitempty"`
}

// AblateSpec sets the axis projection to Value on a set of layers (0 removes the component).
type AblateSpec struct {
	// Layers are the ablated layers (ParseLayers).
	Layers string `json:"layers"`
	// Value is the projection the axis component is set to.
	Value float64 `json:"value,omitempty"`
}

// FieldError is a problem with one field of a Spec, named by its JSON path (e.g.
// "cap.percentile"), so that a command can name its own flag for it.
type FieldError struct {
	Field   string
	Problem string
}

// Error reads "steer: <field>: <problem>".
func (e *FieldError) Error() string { return "steer: " + e.Field + ": " + e.Problem }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)}
}

// Validate checks what can be checked without a model or an axis: each part names its layers,
// exactly one threshold source per cap, finite numbers, known units, no contradictory options.
// Errors are *FieldError.
func (s Spec) Validate() error {
	if c := s.Cap; c != nil {
		if c.Layers == "" {
			return fieldErr("cap.layers", "empty: expected a layer selection such as \"46:54\"")
		}
		switch {
		case c.Percentile != nil && c.Tau != nil:
			return fieldErr("cap", "percentile and tau are exclusive: give one")
		case c.Percentile == nil && c.Tau == nil && c.Layers != DefaultCapLayers:
			return fieldErr("cap", "needs a threshold: a percentile calibrated in the axis file, or tau")
		case c.Percentile != nil && !(*c.Percentile >= 0 && *c.Percentile <= 100):
			return fieldErr("cap.percentile", "%v out of range: expected a percentile from 0 to 100", *c.Percentile)
		case c.Tau != nil && len(c.Tau) == 0:
			return fieldErr("cap.tau", "empty: expected one threshold, or one per capped layer")
		}
		for i, t := range c.Tau {
			if math.IsNaN(t) || math.IsInf(t, 1) {
				return fieldErr(fmt.Sprintf("cap.tau[%d]", i), "%v: expected a finite number (or -Inf for no cap)", t)
			}
		}
	}
	if e := s.Experiment; e != nil {
		if s.Cap != nil {
			return fieldErr("experiment", "sets the capped layers and thresholds itself: it excludes cap")
		}
		if e.ID == "" {
			return fieldErr("experiment.id", "empty: expected an experiment id such as \"layers_46:54-p0.25\"")
		}
		if e.CappingConfig == "" {
			return fieldErr("experiment.capping_config", "empty: expected the path of the reference's capping_config.pt")
		}
	}
	if a := s.Add; a != nil {
		if a.Vector == "" {
			return fieldErr("add.vector", "empty: expected the path of a control vector (.gguf) or an axis file")
		}
		if math.IsNaN(a.Coef) || math.IsInf(a.Coef, 0) {
			return fieldErr("add.coef", "%v: expected a finite number", a.Coef)
		}
		switch a.Units {
		case "", UnitsRaw, UnitsUnit:
		default:
			return fieldErr("add.units", "%q: expected %s or %s", a.Units, UnitsRaw, UnitsUnit)
		}
		if a.NormUnits && a.Units == UnitsRaw {
			return fieldErr("add.norm_units", "normalises the vector: it cannot be combined with units %s", UnitsRaw)
		}
	}
	if a := s.Ablate; a != nil {
		if a.Layers == "" {
			return fieldErr("ablate.layers", "empty: expected a layer selection such as \"10,12\"")
		}
		if math.IsNaN(a.Value) || math.IsInf(a.Value, 0) {
			return fieldErr("ablate.value", "%v: expected a finite number", a.Value)
		}
	}
	if s.MeasureLayer != nil && *s.MeasureLayer < 0 {
		return fieldErr("measure_layer", "%d: expected a layer index >= 0", *s.MeasureLayer)
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
