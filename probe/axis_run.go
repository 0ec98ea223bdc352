package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"tether/axis"
)

// Metadata keys that BuildAxis results add to an axis file (besides the axis package's own).
const (
	// AxisLayerKey is the layer the axis is meant to be read at by default (steer and project
	// use it): the middle layer.
	AxisLayerKey = "axis_layer"
	// AxisConfigKey is the sha256 of the model's config.json the run was made with.
	AxisConfigKey = "config_sha256"
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

// BuildRunAxis opens nothing itself: it builds the axis of an opened run, keeping role rollouts
// scored at least minScore when the run was judged.
func BuildRunAxis(r *Run, minScore int, opts AxisOptions) (*AxisBuild, error) {
	if minScore < 0 || minScore > 3 {
		return nil, fmt.Errorf("probe: axis: run %s: minimum score %d outside 0..3", r.Dir(), minScore)
	}
	m := r.Manifest()
	b, err := BuildAxis(RunActivations(r, minScore), opts)
	if err != nil {
		return nil, fmt.Errorf("%w (run %s, model %s)", err, r.Dir(), m.Model)
	}
	return b, nil
}

// AxisLayer is the default layer to read the axis at: the middle layer.
func (b *AxisBuild) AxisLayer() int { return b.Layers / 2 }

// AxisFile turns the build into the content of an axis file, with the run's model, counts and a
// summary of persona space (PC1 cosine and the variance explained by the first components per
// layer, as JSON) in the metadata.
func (b *AxisBuild) AxisFile(m Manifest, minScore int) (*axis.Axis, error) {
	if m.Layers != b.Layers || m.HiddenSize != b.Hidden {
		return nil, fmt.Errorf("probe: axis: run manifest says %d layers x %d hidden, activations are %d x %d", m.Layers, m.HiddenSize, b.Layers, b.Hidden)
	}
	counts := map[string]int{DefaultRoleName: b.DefaultCount}
	for i, r := range b.RoleNames {
		counts[r] = b.RoleCounts[i]
	}
	pc1 := make([]float64, b.Layers)
	var explained [][]float64
	for l, p := range b.PCA {
		pc1[l] = round6(p.PC1Cosine)
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
	extra := map[string]string{
		AxisLayerKey:         strconv.Itoa(b.AxisLayer()),
		AxisConfigKey:        m.ConfigSHA256,
		"architecture":       m.Architecture,
		"counts":             js(counts),
		"dropped_roles":      js(b.Dropped),
		"judge":              m.Settings.Judge,
		"min_score":          strconv.Itoa(minScore),
		"pc1_cosine":         js(pc1),
		"variance_explained": js(explained),
		"calibration":        fmt.Sprintf("numpy-linear percentiles of <h,u> over all %d non-empty rollouts' mean activations", b.CalibrationSet),
		"method":             "axis = mean(default rollouts, pooled) - mean over roles of mean(kept rollouts)",
	}
	return &axis.Axis{
		Model: m.Model, Layers: b.Layers, Hidden: b.Hidden,
		Axis: b.Axis, DefaultMean: b.DefaultMean,
		RoleNames: b.RoleNames, RoleMeans: b.RoleMeans,
		Percentiles: b.Percentiles, Tau: b.Tau,
		Extra: extra,
	}, nil
}

func round6(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return v
}

// WriteRunAxis is the whole of `tether axis build`: it opens the run in runDir, builds its axis
// (role rollouts scored at least minScore when the run was judged), writes the axis file at out
// (creating its directory) and the report and pictures beside it, with persona space drawn at
// plotLayer (< 0: the axis layer, the middle one).
func WriteRunAxis(runDir, out string, minScore, plotLayer int, opts AxisOptions) (*AxisBuild, *AxisReport, error) {
	run, err := OpenRun(runDir)
	if err != nil {
		return nil, nil, err
	}
	m := run.Manifest()
	if plotLayer >= m.Layers {
		return nil, nil, fmt.Errorf("probe: axis: layer %d out of range: run %s has %d layers (0..%d)", plotLayer, runDir, m.Layers, m.Layers-1)
	}
	b, err := BuildRunAxis(run, minScore, opts)
	if err != nil {
		return nil, nil, err
	}
	if plotLayer < 0 {
		plotLayer = b.AxisLayer()
	}
	a, err := b.AxisFile(m, minScore)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return nil, nil, fmt.Errorf("probe: axis: %w", err)
	}
	if err := axis.Write(out, a); err != nil {
		return nil, nil, err
	}
	rep, err := b.WriteAxisReport(filepath.Dir(out), m, runDir, minScore, plotLayer)
	if err != nil {
		return nil, nil, err
	}
	return b, rep, nil
}
