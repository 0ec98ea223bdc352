package probe

import (
	"encoding/json"
	"fmt"
	"math"
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
	Default     float64            `json:"default_projection"`
	Roles       []RoleProjection   `json:"roles"`
	Metadata    map[string]string  `json:"metadata"`
	Counts      map[string]float64 `json:"counts,omitempty"`
}

// InspectLayer is one layer of an AxisInspection; PC1Cosine is nil when the file does not record it.
type InspectLayer struct {
	Layer     int       `json:"layer"`
	AxisNorm  float64   `json:"axis_norm"`
	PC1Cosine *float64  `json:"pc1_cosine,omitempty"`
	Tau       []float32 `json:"tau"` // one per percentile
}

// RoleProjection is a role mean's projection on the unit axis at a layer.
type RoleProjection struct {
	Role       string  `json:"role"`
	Projection float64 `json:"projection"`
}

// InspectAxis summarises a. layer < 0 picks the file's axis_layer metadata, else the middle layer.
// Roles are sorted by projection, highest (most Assistant-like) first.
func InspectAxis(a *axis.Axis, layer int) (*AxisInspection, error) {
	in := &AxisInspection{Model: a.Model, Layers: a.Layers, Hidden: a.Hidden, Percentiles: a.Percentiles, Metadata: a.Extra}
	if v, ok := a.Extra[AxisLayerKey]; ok {
		if l, err := strconv.Atoi(v); err == nil && l >= 0 && l < a.Layers {
			in.AxisLayer = &l
		}
	}
	if layer < 0 {
		layer = a.Layers / 2
		if in.AxisLayer != nil {
			layer = *in.AxisLayer
		}
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
		var n float64
		for _, x := range a.Axis[l] {
			n += float64(x) * float64(x)
		}
		il := InspectLayer{Layer: l, AxisNorm: math.Sqrt(n)}
		if cos != nil {
			c := cos[l]
			il.PC1Cosine = &c
		}
		for i := range a.Percentiles {
			il.Tau = append(il.Tau, a.Tau[i][l])
		}
		in.PerLayer = append(in.PerLayer, il)
	}
	u, err := a.Unit(layer)
	if err != nil {
		return nil, fmt.Errorf("probe: inspect: %w", err)
	}
	in.Default = dot32(a.DefaultMean[layer], u)
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
