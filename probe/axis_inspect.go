package probe

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"tether/axis"
)

// AxisInspection summarises an axis file: per layer its norm, PC1 cosine (from the metadata,
// when the file has it) and thresholds, and at one layer the roles ranked by the projection of
// their mean on the unit axis.
type AxisInspection struct {
	Model       string             `json:"model"`
	Layers      int                `json:"layers"`
	Hidden      int                `json:"hidden_size"`
	AxisLayer   *int               `json:"axis_layer,omitempty"`
	Percentiles []float64          `json:"percentiles"`
	PerLayer    []InspectLayer     `json:"per_layer"`
	Layer       int                `json:"layer"`
	Default     *float64           `json:"default_projection,omitempty"` // nil: the file has no default_mean
	Roles       []RoleProjection   `json:"roles"`
	Metadata    map[string]string  `json:"metadata"`
	Counts      map[string]float64 `json:"counts,omitempty"`
	// AxisLayerReason says where the axis layer comes from (empty when the file does not say).
	AxisLayerReason string `json:"axis_layer_reason,omitempty"`
	// Dropped maps the roles left out of the axis to their kept rollouts; MinRoleRollouts is the
	// minimum they missed (0 when the file does not record it).
	Dropped         map[string]int `json:"dropped_roles,omitempty"`
	MinRoleRollouts int            `json:"min_role_rollouts,omitempty"`
	// Calibration is what tau was taken over, in words, with its set and unit.
	Calibration   string `json:"calibration,omitempty"`
	CalibrateOn   string `json:"calibrate_on,omitempty"`
	CalibrateUnit string `json:"calibrate_unit,omitempty"`
	// HasTokenFractions reports whether InspectLayer.CapTokenFraction is filled.
	HasTokenFractions bool `json:"has_cap_token_fraction"`
	// CapLayers and CapPercentile are the reference's capping setting for the model, if any.
	CapLayers     string  `json:"cap_layers,omitempty"`
	CapPercentile float64 `json:"cap_percentile,omitempty"`
	// LayerNumbering states how tether's layer numbers map to Hugging Face's.
	LayerNumbering string `json:"layer_numbering"`
}

// InspectLayer is one layer of an AxisInspection; PC1Cosine is nil when the file does not record it.
type InspectLayer struct {
	Layer     int       `json:"layer"`
	AxisNorm  float64   `json:"axis_norm"`
	PC1Cosine *float64  `json:"pc1_cosine,omitempty"`
	Tau       []float32 `json:"tau"` // one per percentile
	// CapTokenFraction is, per percentile, the fraction of calibration tokens a cap at that tau
	// acts on (nil when the file does not record it).
	CapTokenFraction []float64 `json:"cap_token_fraction,omitempty"`
}

// RoleProjection is a role mean's projection on the unit axis at a layer.
type RoleProjection struct {
	Role       string  `json:"role"`
	Projection float64 `json:"projection"`
}

// InspectAxis summarises a. layer < 0 picks the file's axis_layer metadata, else the middle layer.
// Roles are sorted by projection, highest (most Assistant-like) first.
func InspectAxis(a *axis.Axis, layer int) (*AxisInspection, error) {
	in := &AxisInspection{Model: a.Model, Layers: a.Layers, Hidden: a.Hidden, Percentiles: a.Percentiles, Metadata: a.Extra,
		AxisLayerReason: a.Extra["axis_layer_reason"], Calibration: a.Extra["calibration"],
		CalibrateOn: a.Extra[CalibrateOnKey], CalibrateUnit: a.Extra[CalibrateUnitKey], LayerNumbering: LayerNumbering,
		CapLayers: a.Extra[CapLayersKey]}
	if v, err := strconv.ParseFloat(a.Extra[CapPercentileKey], 64); err == nil {
		in.CapPercentile = v
	}
	if v, err := strconv.Atoi(a.Extra[MinRoleRolloutsKey]); err == nil {
		in.MinRoleRollouts = v
	}
	if v, ok := a.Extra["dropped_roles"]; ok {
		// Older files list names only: they are shown with no count.
		if json.Unmarshal([]byte(v), &in.Dropped) != nil {
			var names []string
			if json.Unmarshal([]byte(v), &names) == nil && len(names) > 0 {
				in.Dropped = map[string]int{}
				for _, n := range names {
					in.Dropped[n] = -1
				}
			}
		}
	}
	var fractions [][]float64
	if v, ok := a.Extra[CapTokenFractionKey]; ok {
		if err := json.Unmarshal([]byte(v), &fractions); err != nil || len(fractions) != len(a.Percentiles) {
			fractions = nil
		}
		for _, row := range fractions {
			if len(row) != a.Layers {
				fractions = nil
				break
			}
		}
	}
	in.HasTokenFractions = fractions != nil
	if l, ok := a.MetadataLayer(); ok {
		in.AxisLayer = &l
	}
	if layer < 0 {
		layer, _ = axis.DefaultLayer(a)
	}
	if layer >= a.Layers {
		return nil, fmt.Errorf("probe: inspect: layer %d out of range: the axis has %d layers (0..%d)", layer, a.Layers, a.Layers-1)
	}
	in.Layer = layer
	var cos []float64
	if v, ok := a.Extra["pc1_cosine"]; ok {
		if err := json.Unmarshal([]byte(v), &cos); err != nil || len(cos) != a.Layers {
			cos = nil
		}
	}
	if v, ok := a.Extra["counts"]; ok {
		_ = json.Unmarshal([]byte(v), &in.Counts)
	}
	for l := 0; l < a.Layers; l++ {
		il := InspectLayer{Layer: l, AxisNorm: axis.Norm(a.Axis[l])}
		if cos != nil {
			c := cos[l]
			il.PC1Cosine = &c
		}
		for i := range a.Percentiles {
			il.Tau = append(il.Tau, a.Tau[i][l])
			if fractions != nil {
				il.CapTokenFraction = append(il.CapTokenFraction, fractions[i][l])
			}
		}
		in.PerLayer = append(in.PerLayer, il)
	}
	u, err := a.Unit(layer)
	if err != nil {
		return nil, fmt.Errorf("probe: inspect: %w", err)
	}
	if a.DefaultMean != nil {
		d := dot32(a.DefaultMean[layer], u)
		in.Default = &d
	}
	for r, name := range a.RoleNames {
		in.Roles = append(in.Roles, RoleProjection{Role: name, Projection: dot32(a.RoleMeans[r][layer], u)})
	}
	sort.SliceStable(in.Roles, func(i, j int) bool { return in.Roles[i].Projection > in.Roles[j].Projection })
	return in, nil
}

// dot32 is the dot product of two float32 vectors, accumulated in float64.
func dot32(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}
