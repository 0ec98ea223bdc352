package axis

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Metadata keys of the axis file's policy: where the axis is read by default and which model it
// belongs to (probe writes them when it builds an axis; every command reads them through this
// package).
const (
	// LayerKey holds the layer the axis is read at by default (DefaultLayer): the reference's
	// layer for a known model, else the middle layer.
	LayerKey = "axis_layer"
	// ConfigKey holds the hex sha256 of the config.json of the model the axis was built from
	// (CheckModel compares it).
	ConfigKey = "config_sha256"
	// ArchitectureKey holds the model's architecture (config.json architectures[0]).
	ArchitectureKey = "architecture"
)

// DefaultLayer is the one rule for the layer at which the axis projection is read when a
// command is not told (generate, chat, bench drift, project): the axis file's LayerKey metadata
// when it names a layer of the file; else the reference's layer for the model's architecture and
// shape (DefaultsFor, from the ArchitectureKey metadata); else the middle layer, Layers/2. The
// reason says which applied.
func DefaultLayer(a *Axis) (layer int, reason string) {
	if l, ok := a.MetadataLayer(); ok {
		return l, fmt.Sprintf("the axis file's %s metadata", LayerKey)
	}
	d := DefaultsFor(a.Extra[ArchitectureKey], a.Layers, a.Hidden)
	return d.AxisLayer, d.AxisLayerReason
}

// DefaultCap is the reference's capping setting for the model the axis was built from (its
// ArchitectureKey metadata and shape, looked up in KnownModels): the capped layers in slice
// notation, the percentile and the reason. ok is false when the reference published no capping
// setting for that model.
func DefaultCap(a *Axis) (layers string, percentile float64, reason string, ok bool) {
	d := DefaultsFor(a.Extra[ArchitectureKey], a.Layers, a.Hidden)
	if d.CapLayers == "" {
		return "", 0, "", false
	}
	return d.CapLayers, d.CapPercentile, d.CapReason, true
}

// MetadataLayer is the layer the file's LayerKey metadata names, when it names one of its layers.
func (a *Axis) MetadataLayer() (int, bool) {
	l, err := strconv.Atoi(a.Extra[LayerKey])
	if err != nil || l < 0 || l >= a.Layers {
		return 0, false
	}
	return l, true
}

// ModelInfo is what CheckModel compares an axis file with.
type ModelInfo struct {
	Name           string // for messages
	Layers, Hidden int
	// Dir is the model directory whose config.json is hashed; "" skips the hash comparison.
	Dir string
}

// CheckModel reports whether the axis fits a model: the same layer count and hidden size and,
// when the axis records it (ConfigKey) and m.Dir is known, the same config.json (sha256);
// allowOther skips the last comparison (a model of the same shape with another config).
func (a *Axis) CheckModel(m ModelInfo, allowOther bool) error {
	if a.Hidden != m.Hidden {
		return fmt.Errorf("axis: axis has hidden size %d but the model has %d (axis from model %q, model %s): the axis was built for another model", a.Hidden, m.Hidden, a.Model, m.Name)
	}
	if a.Layers != m.Layers {
		return fmt.Errorf("axis: axis has %d layers but the model has %d (axis from model %q, model %s): the axis was built for another model", a.Layers, m.Layers, a.Model, m.Name)
	}
	want := a.Extra[ConfigKey]
	if want == "" || allowOther || m.Dir == "" {
		return nil
	}
	have, err := ConfigSHA256(m.Dir)
	if err != nil {
		return nil // a model without a config.json file (converted in memory) cannot be compared
	}
	if have != want {
		return fmt.Errorf("axis: axis was built from %s (config.json sha256 %.12s...) but model %s has config sha256 %.12s...: another model of the same shape (allow it explicitly to use the axis anyway)", a.Model, want, m.Name, have)
	}
	return nil
}

// ConfigSHA256 is the hex sha256 of a model directory's config.json: the identity of the model
// an axis was built from (ConfigKey).
func ConfigSHA256(modelDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(modelDir, "config.json"))
	if err != nil {
		return "", fmt.Errorf("axis: model config: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Norm is the Euclidean norm of v, computed in float64.
func Norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// UnitVector returns v scaled to unit length (computed in float64): the one normalisation of a
// direction used for the axis (Axis.Unit), reference capping vectors and steering vectors.
func UnitVector(v []float32) ([]float32, error) {
	n := Norm(v)
	if n == 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return nil, fmt.Errorf("direction has norm %v, expected a finite non-zero vector", n)
	}
	u := make([]float32, len(v))
	for i, x := range v {
		u[i] = float32(float64(x) / n)
	}
	return u, nil
}
