package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"tether/axis"
	"tether/model"
)

// runSource adapts a Run to ActivationSource.
type runSource struct {
	run      *Run
	minScore int
}

// RunActivations is the ActivationSource of a run directory. Rollouts with an empty response
// are left out altogether (they have no activation: their stored mean is zero). A role's rollout
// is kept when the run had no judge, or when its judge score is at least minScore (KeepScore, 3,
// in the paper); every default rollout is kept.
func RunActivations(r *Run, minScore int) ActivationSource {
	return &runSource{run: r, minScore: minScore}
}

func (s *runSource) Shape() (int, int) {
	m := s.run.Manifest()
	return m.Layers, m.HiddenSize
}

func (s *runSource) Samples() []AxisSample {
	judged := s.run.Manifest().Settings.Judged()
	ros := s.run.Rollouts()
	out := make([]AxisSample, 0, len(ros))
	for _, r := range ros {
		if r.ResponseTokens == 0 {
			continue
		}
		keep := r.Role == DefaultRoleName || !judged || (r.Score != nil && *r.Score >= s.minScore)
		out = append(out, AxisSample{ID: r.ID, Role: r.Role, Kept: keep})
	}
	return out
}

func (s *runSource) MeanActivations(ids []string) ([][][]float32, error) {
	return s.run.MeanActivations(ids)
}

// RunAxisOptions configures BuildRunAxis and WriteRunAxis.
type RunAxisOptions struct {
	AxisOptions
	// MinScore is the lowest judge score a role rollout needs to count (with a judge).
	MinScore int
	// PlotLayer is the layer of the persona-space pictures and role table (nil: the axis layer).
	PlotLayer *int
	// AxisLayer overrides the axis layer (nil: axis.DefaultsFor the run's model).
	AxisLayer *int
	// Model is the opened model for a per-token pass; when nil and one is needed, ModelRef (or,
	// when empty, the run's recorded model directory, then its model id) is opened on Backend.
	Model    *model.Model
	ModelRef string
	Backend  string
	// Context cancels the per-token pass (context.Background when nil).
	Context context.Context
}

// DefaultMinRoleRollouts is the minimum number of kept rollouts a role needs in a judged run (the
// reference's 4_vectors.py --min_count); an unjudged run keeps every role with a rollout.
func DefaultMinRoleRollouts(judged bool) int {
	if judged {
		return 50
	}
	return 1
}

// BuildRunAxis builds the axis of an opened run, keeping role rollouts scored at least
// opts.MinScore when the run was judged, with the run's model's default axis layer. A per-token
// calibration re-runs the model over the calibration rollouts' conversations.
func BuildRunAxis(r *Run, opts RunAxisOptions) (*AxisBuild, error) {
	if opts.MinScore < 0 || opts.MinScore > 3 {
		return nil, fmt.Errorf("probe: axis: run %s: minimum score %d outside 0..3", r.Dir(), opts.MinScore)
	}
	m := r.Manifest()
	if l := opts.AxisLayer; l != nil && (*l < 0 || *l >= m.Layers) {
		return nil, fmt.Errorf("probe: axis: axis layer %d out of range: run %s has %d layers (0..%d)", *l, r.Dir(), m.Layers, m.Layers-1)
	}
	if opts.MinRoleRollouts <= 0 {
		opts.MinRoleRollouts = DefaultMinRoleRollouts(m.Settings.Judged())
	}
	ao := opts.AxisOptions
	if ao.Tokens == nil && (ao.CalibrateUnit == "" || ao.CalibrateUnit == UnitToken || ao.TokenFractions) {
		mdl := opts.Model
		if mdl == nil {
			var err error
			if mdl, err = openRunModel(m, opts.ModelRef, opts.Backend); err != nil {
				return nil, fmt.Errorf("probe: axis: run %s: per-token calibration re-reads the rollouts with the run's model: %w (give --model, or --calibrate-unit rollout)", r.Dir(), err)
			}
			defer mdl.Close()
		}
		if err := checkRunModel(m, mdl); err != nil {
			return nil, fmt.Errorf("probe: axis: run %s: %w", r.Dir(), err)
		}
		ctx := opts.Context
		if ctx == nil {
			ctx = context.Background()
		}
		ao.Tokens = RunTokens(ctx, r, mdl)
	}
	b, err := BuildAxis(RunActivations(r, opts.MinScore), ao)
	if err != nil {
		return nil, fmt.Errorf("%w (run %s, model %s)", err, r.Dir(), m.Model)
	}
	d := axis.DefaultsFor(m.Architecture, m.Layers, m.HiddenSize)
	b.AxisLayerIndex, b.AxisLayerReason = d.AxisLayer, d.AxisLayerReason
	if opts.AxisLayer != nil {
		b.AxisLayerIndex, b.AxisLayerReason = *opts.AxisLayer, "set by --axis-layer"
	}
	return b, nil
}

// openRunModel opens ref, else the run's model directory when it still exists, else its id, set
// to render chats with the run's enable_thinking.
func openRunModel(m Manifest, ref, backend string) (*model.Model, error) {
	if ref == "" {
		ref = m.ModelDir
		if _, err := os.Stat(filepath.Join(ref, "config.json")); err != nil {
			ref = m.Model
		}
	}
	return model.Open(ref, model.Options{Backend: backend, EnableThinking: m.EnableThinking()})
}

// checkRunModel refuses a model other than the run's (another config.json).
func checkRunModel(m Manifest, mdl *model.Model) error {
	sum, err := axis.ConfigSHA256(mdl.Dir)
	if err != nil {
		return err
	}
	if sum != m.ConfigSHA256 {
		return fmt.Errorf("model %s (config sha256 %.12s) is not the run's model %s (config sha256 %.12s)", mdl.Dir, sum, m.Model, m.ConfigSHA256)
	}
	return nil
}

// runTokens is the TokenProjector of a run: it renders each rollout's conversation as the run did
// and reads the residual stream of its response tokens.
type runTokens struct {
	ctx  context.Context
	m    *model.Model
	p    *Prompter
	byID map[string]Rollout
}

// RunTokens re-reads the response tokens of r's rollouts with m (the run's model): the same
// prompt rendering and generated response ids as `persona run`'s capture, kept per token.
func RunTokens(ctx context.Context, r *Run, m *model.Model) TokenProjector {
	byID := map[string]Rollout{}
	for _, ro := range r.Rollouts() {
		byID[ro.ID] = ro
	}
	return &runTokens{ctx: ctx, m: m, p: NewPrompter(m), byID: byID}
}

// tokenGroupBytes bounds the per-token residuals one Capture call returns.
const tokenGroupBytes = 256 << 20

func (t *runTokens) ProjectTokens(ids []string, units [][]float64, fn func(int, [][]float64) error) error {
	cfg := t.m.Config
	if len(units) != cfg.NumLayers {
		return fmt.Errorf("probe: token pass: %d unit axes for a model of %d layers", len(units), cfg.NumLayers)
	}
	spans := make([]Span, len(ids))
	for i, id := range ids {
		r, ok := t.byID[id]
		if !ok {
			return fmt.Errorf("probe: token pass: no rollout %q in the run", id)
		}
		prompt, err := t.p.Prompt(r.System, r.Question)
		if err != nil {
			return fmt.Errorf("probe: token pass: rollout %s: %w", id, err)
		}
		spans[i] = ResponseSpan(prompt, r.ResponseIDs)
	}
	perToken := int64(cfg.NumLayers) * int64(cfg.HiddenSize) * 4
	for lo := 0; lo < len(spans); {
		hi, size := lo, int64(0)
		for hi < len(spans) && (hi == lo || size+int64(spans[hi].Len())*perToken <= tokenGroupBytes) {
			size += int64(spans[hi].Len()) * perToken
			hi++
		}
		acts, err := Capture(t.ctx, t.m.Engine, spans[lo:hi], CaptureOptions{PerToken: true})
		if err != nil {
			return fmt.Errorf("probe: token pass: %w", err)
		}
		for gi := range spans[lo:hi] {
			proj := make([][]float64, cfg.NumLayers)
			for l, rows := range acts.Tokens[gi] {
				proj[l] = make([]float64, len(rows))
				for p, h := range rows {
					proj[l][p] = dot3264(h, units[l])
				}
			}
			if err := fn(lo+gi, proj); err != nil {
				return err
			}
		}
		lo = hi
	}
	return nil
}

// AxisLayer is the layer to read the axis at (the reference's for a known model, else the
// middle layer, unless overridden).
func (b *AxisBuild) AxisLayer() int { return b.AxisLayerIndex }

// Metadata keys of the calibration and method choices (see docs/method.md).
const (
	CalibrateOnKey      = "calibrate_on"
	CalibrateUnitKey    = "calibrate_unit"
	CapTokenFractionKey = "cap_token_fraction"
	MinRoleRolloutsKey  = "min_role_rollouts"
	PC1OrientationKey   = "pc1_orientation"
	PC1FlippedKey       = "pc1_flipped"
	PrecisionKey        = "precision"
	LayerNumberingKey   = "layer_numbering"
	CapLayersKey        = "cap_layers"
	CapPercentileKey    = "cap_percentile"
)

// Fixed statements recorded in every axis file tether builds.
const (
	PC1Orientation = "PC1 flipped when needed so the default vector projects at or above the role centroid; the reference keeps scikit-learn's sign (pc1_flipped lists the layers where the two differ, taking sklearn's largest-entry-positive svd_flip)"
	Precision      = "span means accumulated in float64 over the engine's float32 residual stream, stored as float32 (reference: bf16 residuals, mean taken in bf16)"
	LayerNumbering = "layer i is the output of decoder block i, Hugging Face hidden_states[i+1] (0-based, the reference's numbering)"
)

// AxisFile turns the build into the content of an axis file, with the run's model, counts, the
// calibration and method choices and a summary of persona space (PC1 cosine and the variance
// explained by the first components per layer, as JSON) in the metadata.
func (b *AxisBuild) AxisFile(m Manifest, minScore int) (*axis.Axis, error) {
	if m.Layers != b.Layers || m.HiddenSize != b.Hidden {
		return nil, fmt.Errorf("probe: axis: run manifest says %d layers x %d hidden, activations are %d x %d", m.Layers, m.HiddenSize, b.Layers, b.Hidden)
	}
	counts := map[string]int{DefaultRoleName: b.DefaultCount}
	for i, r := range b.RoleNames {
		counts[r] = b.RoleCounts[i]
	}
	pc1 := make([]float64, b.Layers)
	var flipped []int
	var explained [][]float64
	for l, p := range b.PCA {
		pc1[l] = round6(p.PC1Cosine)
		if p.PC1Flipped {
			flipped = append(flipped, l)
		}
		var e []float64
		for _, x := range p.Explained[:min(5, len(p.Explained))] {
			e = append(e, round6(x))
		}
		explained = append(explained, e)
	}
	js := func(v any) string {
		out, _ := json.Marshal(v)
		return string(out)
	}
	dropped := map[string]int{}
	for _, d := range b.Dropped {
		dropped[d.Role] = d.Kept
	}
	if flipped == nil {
		flipped = []int{}
	}
	extra := map[string]string{
		axis.LayerKey:        strconv.Itoa(b.AxisLayer()),
		"axis_layer_reason":  b.AxisLayerReason,
		axis.ConfigKey:       m.ConfigSHA256,
		axis.ArchitectureKey: m.Architecture,
		"counts":             js(counts),
		"dropped_roles":      js(dropped),
		MinRoleRolloutsKey:   strconv.Itoa(b.MinRoleRollouts),
		"judge":              m.Settings.Judge,
		"min_score":          strconv.Itoa(minScore),
		"pc1_cosine":         js(pc1),
		PC1OrientationKey:    PC1Orientation,
		PC1FlippedKey:        js(flipped),
		PrecisionKey:         Precision,
		LayerNumberingKey:    LayerNumbering,
		"variance_explained": js(explained),
		CalibrateOnKey:       b.CalibrateOn,
		CalibrateUnitKey:     b.CalibrateUnit,
		"calibration":        b.CalibrationText(),
		"method":             "axis = mean(default rollouts, pooled) - mean over roles of mean(kept rollouts)",
	}
	if b.CapTokenFraction != nil {
		fr := make([][]float64, len(b.CapTokenFraction))
		for i, row := range b.CapTokenFraction {
			for _, x := range row {
				fr[i] = append(fr[i], round6(x))
			}
		}
		extra[CapTokenFractionKey] = js(fr)
	}
	if d := axis.DefaultsFor(m.Architecture, m.Layers, m.HiddenSize); d.CapLayers != "" {
		extra[CapLayersKey] = d.CapLayers
		extra[CapPercentileKey] = strconv.FormatFloat(d.CapPercentile, 'g', -1, 64)
		extra["cap_reason"] = d.CapReason
	}
	if m.Rendering != nil {
		extra[axis.RenderingKey] = js(m.Rendering)
	}
	return &axis.Axis{
		Model: m.Model, Layers: b.Layers, Hidden: b.Hidden,
		Axis: b.Axis, DefaultMean: b.DefaultMean,
		RoleNames: b.RoleNames, RoleMeans: b.RoleMeans,
		Percentiles: b.Percentiles, Tau: b.Tau,
		Extra: extra,
	}, nil
}

// CalibrationText says in words what tau was taken over.
func (b *AxisBuild) CalibrationText() string {
	set := map[string]string{
		CalibrateDefault: "the default (Assistant) rollouts",
		CalibrateRoles:   "the role rollouts in the role vectors",
		CalibrateAll:     "every non-empty rollout (defaults and all role rollouts)",
	}[b.CalibrateOn]
	if b.CalibrateUnit == UnitToken {
		return fmt.Sprintf("numpy-linear percentiles of <h,u> over every response token (%d) of %s (%d rollouts)", b.CalibrationTokens, set, b.CalibrationSet)
	}
	return fmt.Sprintf("numpy-linear percentiles of <h,u> over the span means of %s (%d rollouts)", set, b.CalibrationSet)
}

func round6(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return v
}

// WriteRunAxis is the whole of `tether axis build`: it opens the run in runDir, builds its axis,
// writes the axis file at out (creating its directory) and the report and pictures beside it.
func WriteRunAxis(runDir, out string, opts RunAxisOptions) (*AxisBuild, *AxisReport, error) {
	run, err := OpenRun(runDir)
	if err != nil {
		return nil, nil, err
	}
	m := run.Manifest()
	if l := opts.PlotLayer; l != nil && (*l < 0 || *l >= m.Layers) {
		return nil, nil, fmt.Errorf("probe: axis: layer %d out of range: run %s has %d layers (0..%d)", *l, runDir, m.Layers, m.Layers-1)
	}
	b, err := BuildRunAxis(run, opts)
	if err != nil {
		return nil, nil, err
	}
	plotLayer := b.AxisLayer()
	if opts.PlotLayer != nil {
		plotLayer = *opts.PlotLayer
	}
	a, err := b.AxisFile(m, opts.MinScore)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, nil, fmt.Errorf("probe: axis: %w", err)
	}
	if err := axis.Write(out, a); err != nil {
		return nil, nil, err
	}
	rep, err := b.WriteAxisReport(filepath.Dir(out), m, runDir, opts.MinScore, plotLayer)
	if err != nil {
		return nil, nil, err
	}
	return b, rep, nil
}

// DroppedText lists dropped roles as "name (n kept)".
func (b *AxisBuild) DroppedText() string {
	parts := make([]string, len(b.Dropped))
	for i, d := range b.Dropped {
		parts[i] = fmt.Sprintf("%s (%d kept)", d.Role, d.Kept)
	}
	return strings.Join(parts, ", ")
}
