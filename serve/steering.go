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

// Steering is the request body's "steering" object (the Contract of docs/server.md): caps on a
// named axis, additive steering with a named vector, ablation, and the projections to report.
// Names are those of the server's --axis NAME=FILE. One request resolves to one steer.Spec, so
// it holds at most one cap, one add and one ablation, and caps, ablation and projections act
// along one axis.
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

// resolveSteering turns a request's steering into a steer.Spec and resolves it for m with the
// named axis. A nil st resolves to nil (no hooks).
func resolveSteering(ctx context.Context, st *Steering, m *model.Model, axes map[string]AxisFile) (*resolved, error) {
	if st == nil {
		return nil, nil
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"add", len(st.Add)}, {"ablate", len(st.Ablate)}} {
		if c.n > 1 {
			return nil, invalid("steering."+c.name, "%d entries: at most one %s per request is supported", c.n, c.name)
		}
	}
	var spec steer.Spec
	axisName, axisParam := "", ""
	useAxis := func(name, param string) (*apiError, bool) {
		if _, ok := axes[name]; !ok {
			return invalid(param, "unknown axis %q: %s", name, loadedNames(axes)), false
		}
		if axisName != "" && axisName != name {
			return invalid(param, "axis %q differs from %q of %s: caps, ablation and projections act along one axis per request", name, axisName, axisParam), false
		}
		axisName, axisParam = name, param
		return nil, true
	}
	for i, c := range st.Cap {
		if e, ok := useAxis(c.Axis, fmt.Sprintf("steering.cap[%d].axis", i)); !ok {
			return nil, e
		}
	}
	if len(st.Cap) > 0 {
		spec.Cap = capSpec(st.Cap[0])
	}
	if len(st.Ablate) == 1 {
		a := st.Ablate[0]
		if e, ok := useAxis(a.Vector, "steering.ablate[0].vector"); !ok {
			return nil, e
		}
		spec.Ablate = &steer.AblateSpec{Layers: string(a.Layers), Value: a.Value}
	}
	if p := st.Projections; p != nil {
		if e, ok := useAxis(p.Axis, "steering.projections.axis"); !ok {
			return nil, e
		}
	}
	if len(st.Add) == 1 {
		a := st.Add[0]
		f, ok := axes[a.Vector]
		if !ok {
			return nil, invalid("steering.add[0].vector", "unknown vector %q: %s", a.Vector, loadedNames(axes))
		}
		spec.Add = &steer.AddSpec{Vector: f.Path, Layers: string(a.Layers), Coef: a.Coef, Units: a.Units}
	}
	var ax *axis.Axis
	if axisName != "" {
		ax = axes[axisName].Axis
	}
	setup, err := steer.Resolve(ctx, spec, ax, steer.ForModel(m))
	if err != nil {
		return nil, steerError(err, 0)
	}
	// Further cap entries and projection layers change the resolved plan; it is compiled again
	// once, after both.
	replan := false
	if len(st.Cap) > 1 {
		if err := addCaps(ctx, setup, st.Cap[1:], ax, m); err != nil {
			return nil, err
		}
		replan = true
	}
	r := &resolved{setup: setup, projections: st.Projections != nil}
	if p := st.Projections; p != nil && p.Layers != "" {
		layers, err := steer.ParseLayers(string(p.Layers), m.Config.NumLayers)
		if err != nil {
			return nil, invalid("steering.projections.layers", "%s", strings.TrimPrefix(err.Error(), "steer: "))
		}
		r.keep = map[int]bool{}
		for _, l := range layers {
			r.keep[l] = true
			setup.Plan.Monitor[l] = ax.Axis[l]
		}
		setup.Plan.Record = true
		replan = true
	}
	if replan {
		if setup.Compiled, err = steer.Compile(setup.Plan, m.Config.HiddenSize, m.Config.NumLayers); err != nil {
			param := "steering.projections"
			if len(st.Cap) > 1 {
				param = "steering.cap"
			}
			return nil, invalid(param, "%s", strings.TrimPrefix(err.Error(), "steer: "))
		}
	}
	return r, nil
}

// capSpec is the steer.CapSpec of one cap entry.
func capSpec(c CapRequest) *steer.CapSpec {
	return &steer.CapSpec{Layers: string(c.Layers), Percentile: c.Percentile, Tau: c.Tau}
}

// addCaps resolves the cap entries after the first (steering.cap[1:]) on ax and adds their
// caps to setup's plan (the caller compiles it) after the first entry's, in the order given, as one steer.CapSpec listing
// every entry's layers and thresholds would: each capped layer is recorded, and a layer capped
// by several entries gets one clamp per entry (at most the batcher's clamps per layer).
func addCaps(ctx context.Context, setup *steer.Setup, caps []CapRequest, ax *axis.Axis, m *model.Model) *apiError {
	var extra []steer.Intervention
	for i, c := range caps {
		one, err := steer.Resolve(ctx, steer.Spec{Cap: capSpec(c)}, ax, steer.ForModel(m))
		if err != nil {
			return steerError(err, i+1)
		}
		for _, iv := range one.Plan.Interventions {
			if iv.Kind == steer.KindCap {
				extra = append(extra, iv)
				setup.Caps = append(setup.Caps, steer.LayerTau{Layer: iv.Layer, Tau: iv.Tau})
				setup.Plan.Monitor[iv.Layer] = ax.Axis[iv.Layer]
			}
		}
	}
	ivs := setup.Plan.Interventions
	at := 0
	for at < len(ivs) && ivs[at].Kind == steer.KindCap {
		at++
	}
	setup.Plan.Interventions = slices.Insert(slices.Clone(ivs), at, extra...)
	setup.Plan.Record = true
	return nil
}

// steerError maps a steer error to a 400 naming the request field; a cap's field names the
// cap entry capIndex.
func steerError(err error, capIndex int) *apiError {
	var fe *steer.FieldError
	if !errors.As(err, &fe) {
		return invalid("steering", "%s", strings.TrimPrefix(err.Error(), "steer: "))
	}
	field := fe.Field
	for _, part := range []string{"cap", "add", "ablate"} {
		if field == part || strings.HasPrefix(field, part+".") {
			idx := 0
			if part == "cap" {
				idx = capIndex
			}
			field = fmt.Sprintf("%s[%d]%s", part, idx, strings.TrimPrefix(field, part))
		}
	}
	return invalid("steering."+field, "%s", fe.Problem)
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
