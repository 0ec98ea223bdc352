package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"tether/axis"
)

// AxisReportFile is the name of the JSON report written beside an axis file.
const AxisReportFile = "axis_report.json"

// AxisReport is every number of an axis build that is not in the axis file itself, as JSON.
type AxisReport struct {
	Model        string `json:"model"`
	Run          string `json:"run"`
	Layers       int    `json:"layers"`
	Hidden       int    `json:"hidden_size"`
	AxisLayer    int    `json:"axis_layer"`
	PlotLayer    int    `json:"plot_layer"`
	Judge        string `json:"judge"`
	MinScore     int    `json:"min_score"`
	DefaultCount int    `json:"default_rollouts"`
	// MinRoleRollouts is the kept rollouts a role needed; Dropped the roles with fewer.
	MinRoleRollouts int           `json:"min_role_rollouts"`
	Dropped         []DroppedRole `json:"dropped_roles"`
	// AxisLayerReason says where AxisLayer comes from.
	AxisLayerReason string `json:"axis_layer_reason"`
	// ReferenceCap is the reference's capping setting for the model, as flags ("" when none).
	ReferenceCap string `json:"reference_cap,omitempty"`
	// CalibrateOn and CalibrateUnit are the calibration choices; Calibration says them in words.
	CalibrateOn   string `json:"calibrate_on"`
	CalibrateUnit string `json:"calibrate_unit"`
	Calibration   string `json:"calibration"`
	// CalibrationSet is the number of rollouts the tau percentiles are taken over, and
	// CalibrationTokens their response tokens (0 without a per-token pass).
	CalibrationSet    int `json:"calibration_rollouts"`
	CalibrationTokens int `json:"calibration_tokens"`
	// TokenMeanDeviation is how closely the per-token pass reproduced the stored span means
	// (largest relative difference of the projections).
	TokenMeanDeviation float64     `json:"token_mean_deviation"`
	Percentiles        []float64   `json:"percentiles"`
	PerLayer           []LayerInfo `json:"per_layer"`
	// Roles at PlotLayer: kept rollouts, projection of the role mean on the unit axis, loadings.
	Roles []RoleInfo `json:"roles"`
	// DefaultProjection is the default mean projected on the unit axis at PlotLayer.
	DefaultProjection float64 `json:"default_projection"`
	// DefaultLoading is the default vector's coordinates on PC1..PC3 at PlotLayer.
	DefaultLoading []float64 `json:"default_loading"`
	Plots          []string  `json:"plots"`
}

// LayerInfo summarises one layer.
type LayerInfo struct {
	Layer     int       `json:"layer"`
	AxisNorm  float64   `json:"axis_norm"`
	PC1Cosine float64   `json:"pc1_cosine"`
	Explained []float64 `json:"variance_explained"` // first 10 components
	// Tau maps the percentile (as written in Percentiles) to the layer's threshold.
	Tau map[string]float32 `json:"tau"`
	// CapTokenFraction maps the percentile to the fraction of calibration tokens below its tau
	// (absent without a per-token pass).
	CapTokenFraction map[string]float64 `json:"cap_token_fraction,omitempty"`
	PC1Flipped       bool               `json:"pc1_flipped"`
}

// RoleInfo summarises one role at the report's layer.
type RoleInfo struct {
	Name       string    `json:"name"`
	Kept       int       `json:"kept_rollouts"`
	Projection float64   `json:"projection"`
	Loadings   []float64 `json:"loadings"`
}

// Report builds the JSON report of the build, with role details at plotLayer.
func (b *AxisBuild) Report(m Manifest, runDir string, minScore, plotLayer int) (*AxisReport, error) {
	if plotLayer < 0 || plotLayer >= b.Layers {
		return nil, fmt.Errorf("probe: axis report: layer %d out of range [0, %d)", plotLayer, b.Layers)
	}
	rep := &AxisReport{Model: m.Model, Run: runDir, Layers: b.Layers, Hidden: b.Hidden, AxisLayer: b.AxisLayer(),
		PlotLayer: plotLayer, Judge: m.Settings.Judge, MinScore: minScore, DefaultCount: b.DefaultCount,
		MinRoleRollouts: b.MinRoleRollouts, Dropped: b.Dropped, AxisLayerReason: b.AxisLayerReason,
		CalibrateOn: b.CalibrateOn, CalibrateUnit: b.CalibrateUnit, Calibration: b.CalibrationText(),
		CalibrationSet: b.CalibrationSet, CalibrationTokens: b.CalibrationTokens, TokenMeanDeviation: b.TokenMeanDeviation,
		Percentiles: b.Percentiles}
	if rep.Dropped == nil {
		rep.Dropped = []DroppedRole{}
	}
	if d := axis.DefaultsFor(m.Architecture, m.Layers, m.HiddenSize); d.CapLayers != "" {
		rep.ReferenceCap = fmt.Sprintf("%s: --cap-layers %s --cap-percentile %g", d.CapReason, d.CapLayers, d.CapPercentile)
	}
	for l := 0; l < b.Layers; l++ {
		li := LayerInfo{Layer: l, AxisNorm: b.AxisNorms[l], PC1Cosine: b.PCA[l].PC1Cosine, PC1Flipped: b.PCA[l].PC1Flipped, Tau: map[string]float32{}}
		ex := b.PCA[l].Explained
		li.Explained = ex[:min(10, len(ex))]
		for i, p := range b.Percentiles {
			key := strconv.FormatFloat(p, 'g', -1, 64)
			li.Tau[key] = b.Tau[i][l]
			if b.CapTokenFraction != nil {
				if li.CapTokenFraction == nil {
					li.CapTokenFraction = map[string]float64{}
				}
				li.CapTokenFraction[key] = b.CapTokenFraction[i][l]
			}
		}
		rep.PerLayer = append(rep.PerLayer, li)
	}
	unit := make([]float64, b.Hidden)
	for j, v := range b.Axis[plotLayer] {
		unit[j] = float64(v) / b.AxisNorms[plotLayer]
	}
	proj := func(v []float32) float64 {
		var s float64
		for j, x := range v {
			s += float64(x) * unit[j]
		}
		return s
	}
	for r, name := range b.RoleNames {
		rep.Roles = append(rep.Roles, RoleInfo{Name: name, Kept: b.RoleCounts[r],
			Projection: proj(b.RoleMeans[r][plotLayer]), Loadings: b.PCA[plotLayer].Loadings[r]})
	}
	rep.DefaultProjection = proj(b.DefaultMean[plotLayer])
	rep.DefaultLoading = b.PCA[plotLayer].DefaultLoading
	return rep, nil
}

// WriteAxisReport writes AxisReportFile and the three SVG pictures (persona space and variance
// explained at plotLayer, PC1-axis cosine across layers) into dir, and returns the report.
func (b *AxisBuild) WriteAxisReport(dir string, m Manifest, runDir string, minScore, plotLayer int) (*AxisReport, error) {
	rep, err := b.Report(m, runDir, minScore, plotLayer)
	if err != nil {
		return nil, err
	}
	plots := []struct {
		name string
		draw func(string) error
	}{
		{PersonaSpacePlot, func(p string) error { return PlotPersonaSpace(b, plotLayer, p) }},
		{VariancePlot, func(p string) error { return PlotVarianceExplained(b, plotLayer, 20, p) }},
		{PC1CosinePlot, func(p string) error { return PlotPC1Cosine(b, p) }},
	}
	for _, pl := range plots {
		path := filepath.Join(dir, pl.name)
		if err := pl.draw(path); err != nil {
			return nil, err
		}
		rep.Plots = append(rep.Plots, path)
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("probe: axis report: %w", err)
	}
	path := filepath.Join(dir, AxisReportFile)
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("probe: axis report %s: %w", path, err)
	}
	return rep, nil
}
