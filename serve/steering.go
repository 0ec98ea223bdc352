package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"tether/axis"
	"tether/engine"
	"tether/model"
	"tether/steer"
)

// Steering is the request body's "steering" object (the Contract of docs/server.md): caps on
// named axes, additive steering with named vectors, ablations, and the projections to report.
// Names are those of the server's --axis NAME=FILE. A request maps onto one steer.Spec entry
// for entry (steer.ResolveAxes with the loaded axes).
type Steering struct {
	Cap         []CapRequest       `json:"cap"`
	Add         []AddRequest       `json:"add"`
	Ablate      []AblateRequest    `json:"ablate"`
	Projections *ProjectionRequest `json:"projections"`
}

// CapRequest floors the projection on a named axis at a calibrated percentile or at tau.
type CapRequest struct {
	Axis       string    `json:"axis"`
	Layers     Layers    `json:"layers"`
	Percentile *float64  `json:"percentile"`
	Tau        tauValues `json:"tau"`
}

// AddRequest adds coef times a named vector on layers.
type AddRequest struct {
	Vector string  `json:"vector"`
	Layers Layers  `json:"layers"`
	Coef   float64 `json:"coef"`
	Units  string  `json:"units"`
}

// AblateRequest sets the projection on a named axis to value (default 0) on layers.
type AblateRequest struct {
	Vector string  `json:"vector"`
	Layers Layers  `json:"layers"`
	Value  float64 `json:"value"`
}

// ProjectionRequest asks for the per-token projections on a named axis at layers (empty: the
// intervened layers and the measure layer).
type ProjectionRequest struct {
	Axis   string `json:"axis"`
	Layers Layers `json:"layers"`
}

// Layers is a layer selection in the command line's notation ("46:54", "10,12", "-1"), given as
// a string or as a list of indices.
type Layers string

// UnmarshalJSON takes a string or a list of integers.
func (l *Layers) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = Layers(s)
		return nil
	}
	var list []int
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("expected a layer selection such as \"4:8\" or a list of layer indices")
	}
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = strconv.Itoa(x)
	}
	*l = Layers(strings.Join(parts, ","))
	return nil
}

// tauValues is a cap's tau: one number, or one per capped layer.
type tauValues []float64

// UnmarshalJSON takes a number or a list of numbers.
func (t *tauValues) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*t = nil
		return nil
	}
	var one float64
	if err := json.Unmarshal(b, &one); err == nil {
		*t = tauValues{one}
		return nil
	}
	var list []float64
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("expected a number or a list of numbers")
	}
	*t = list
	return nil
}

// AxisFile is an axis the server loaded (--axis NAME=FILE).
type AxisFile struct {
	Name, Path string
	Axis       *axis.Axis
}

// resolved is a request's steering resolved for the model: the hooks of its sequences and how
// to read their projections.
type resolved struct {
	setup *steer.Setup
	// projections: report per-token projections (only on the layers of keep when not nil).
	projections bool
	keep        map[int]bool
}

// hooks are the request's engine hooks (nil: untouched).
func (r *resolved) hooks() engine.Hooks {
	if r == nil || len(r.setup.Compiled.Hooks) == 0 {
		return nil
	}
	return r.setup.Compiled.Hooks
}

// records are the projections of a result to report (nil unless asked) and the summary.
func (r *resolved) records(res engine.Result) ([]steer.TelemetryRecord, *ProjectionSummary) {
	if r == nil || !r.projections {
		return nil, nil
	}
	all := r.setup.Compiled.Telemetry(res)
	var sum *ProjectionSummary
	if r.setup.Reports {
		s := steer.Summarize(all, r.setup.MeasureLayer)
		sum = &ProjectionSummary{Layer: s.Layer, MeanProjection: finiteOr0(s.MeanAfter), MeanBefore: finiteOr0(s.MeanBefore),
			CappedTokens: s.CappedTokens, Tokens: s.Tokens, CappedFraction: s.CappedFraction}
	}
	return r.filter(all), sum
}

// tokenRecords are the projections to report of generated token i, whose hooks recorded recs.
func (r *resolved) tokenRecords(recs map[int]engine.HookRecord, i int) []steer.TelemetryRecord {
	if r == nil || !r.projections {
		return nil
	}
	out := r.filter(r.setup.Compiled.Telemetry(engine.Result{Telemetry: []map[int]engine.HookRecord{recs}}))
	for k := range out {
		out[k].Token = i
	}
	return out
}

// filter keeps the records of the asked layers, never nil.
func (r *resolved) filter(all []steer.TelemetryRecord) []steer.TelemetryRecord {
	out := []steer.TelemetryRecord{}
	for _, rec := range all {
		if r.keep == nil || r.keep[rec.Layer] {
			out = append(out, rec)
		}
	}
	return out
}

func finiteOr0(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// resolveSteering turns a request's steering into a steer.Spec, entry for entry, and resolves
// it for m with the loaded axes; maxClamps is the generator's bound on clamps per layer. A nil
// st resolves to nil (no hooks).
func resolveSteering(ctx context.Context, st *Steering, m *model.Model, axes map[string]AxisFile, maxClamps int) (*resolved, error) {
	if st == nil {
		return nil, nil
	}
	spec, e := st.spec(axes)
	if e != nil {
		return nil, e
	}
	named := steer.Axes{}
	for name, f := range axes {
		named[name] = f.Axis
	}
	sm := steer.ForModel(m)
	sm.MaxClamps = maxClamps
	setup, err := steer.ResolveAxes(ctx, spec, named, sm)
	if err != nil {
		return nil, steerError(err)
	}
	r := &resolved{setup: setup, projections: st.Projections != nil}
	if setup.ProjectionLayers != nil {
		r.keep = map[int]bool{}
		for _, l := range setup.ProjectionLayers {
			r.keep[l] = true
		}
	}
	return r, nil
}

// spec is the steer.Spec of the request, after checking that every name is a loaded axis (a
// vector is never read from a path a client gives).
func (st *Steering) spec(axes map[string]AxisFile) (steer.Spec, *apiError) {
	var spec steer.Spec
	known := func(name, param, what string) *apiError {
		if _, ok := axes[name]; !ok {
			return invalid(param, "unknown %s %q: %s", what, name, loadedNames(axes))
		}
		return nil
	}
	for i, c := range st.Cap {
		if e := known(c.Axis, fmt.Sprintf("steering.cap[%d].axis", i), "axis"); e != nil {
			return spec, e
		}
		spec.Cap = append(spec.Cap, steer.CapSpec{Axis: c.Axis, Layers: string(c.Layers), Percentile: c.Percentile, Tau: c.Tau})
	}
	for i, a := range st.Add {
		if e := known(a.Vector, fmt.Sprintf("steering.add[%d].vector", i), "vector"); e != nil {
			return spec, e
		}
		spec.Add = append(spec.Add, steer.AddSpec{Vector: a.Vector, Layers: string(a.Layers), Coef: a.Coef, Units: a.Units})
	}
	for i, a := range st.Ablate {
		if e := known(a.Vector, fmt.Sprintf("steering.ablate[%d].vector", i), "axis"); e != nil {
			return spec, e
		}
		spec.Ablate = append(spec.Ablate, steer.AblateSpec{Vector: a.Vector, Layers: string(a.Layers), Value: a.Value})
	}
	if p := st.Projections; p != nil {
		if e := known(p.Axis, "steering.projections.axis", "axis"); e != nil {
			return spec, e
		}
		spec.Projections = &steer.ProjectionSpec{Axis: p.Axis, Layers: string(p.Layers)}
	}
	return spec, nil
}

// steerError maps a steer error to a 400 naming the request field (a steer.FieldError's field
// is the request's, under "steering.").
func steerError(err error) *apiError {
	var fe *steer.FieldError
	if !errors.As(err, &fe) {
		return invalid("steering", "%s", strings.TrimPrefix(err.Error(), "steer: "))
	}
	return invalid("steering."+fe.Field, "%s", fe.Problem)
}

// loadedNames lists the loaded axes for messages.
func loadedNames(axes map[string]AxisFile) string {
	if len(axes) == 0 {
		return "this server has no axes loaded (start it with --axis NAME=FILE)"
	}
	names := make([]string, 0, len(axes))
	for n := range axes {
		names = append(names, n)
	}
	sort.Strings(names)
	return "loaded: " + strings.Join(names, ", ")
}

// axisInfo is one entry of GET /v1/steering.
type axisInfo struct {
	Name        string               `json:"name"`
	File        string               `json:"file"`
	Model       string               `json:"model"`
	Layers      int                  `json:"layers"`
	Hidden      int                  `json:"hidden"`
	AxisLayer   int                  `json:"axis_layer"`
	Percentiles []float64            `json:"percentiles"`
	Tau         map[string][]float32 `json:"tau"`
}

// describeAxes lists the loaded axes, sorted by name.
func describeAxes(axes map[string]AxisFile) []axisInfo {
	out := []axisInfo{}
	for _, f := range axes {
		a := f.Axis
		layer, _ := axis.DefaultLayer(a)
		info := axisInfo{Name: f.Name, File: f.Path, Model: a.Model, Layers: a.Layers, Hidden: a.Hidden,
			AxisLayer: layer, Percentiles: slices.Clone(a.Percentiles), Tau: map[string][]float32{}}
		if info.Percentiles == nil {
			info.Percentiles = []float64{}
		}
		for i, p := range a.Percentiles {
			info.Tau[strconv.FormatFloat(p, 'g', -1, 64)] = a.Tau[i]
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b axisInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
