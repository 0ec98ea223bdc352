// Package axis reads and writes the Assistant Axis file (axis.safetensors):
// per-layer axis vectors, the default and role means they came from, and the
// calibrated thresholds for capping. probe/ writes it, steer/ reads it.
//
// The file is plain safetensors with F32 tensors and string metadata in the
// header's __metadata__, so Python's safetensors reads it with no tether code:
//
//	axis          [layers, hidden]          mean(default) - mean(roles), not normalised
//	default_mean  [layers, hidden]          mean activation of the default (Assistant) rollouts (absent in an imported axis)
//	role_means    [roles, layers, hidden]   mean activation of each role's kept rollouts
//	tau           [percentiles, layers]     calibrated thresholds, one row per percentile
//
// Convention (recorded in the metadata as "convention"): u = axis/|axis| at a
// layer; the default Assistant projects HIGH on u; capping is a floor,
// h <- h + max(0, tau - <h,u>) * u. tau rows are percentiles of <h,u> over
// the calibration data that the metadata names ("calibrate_on": default, roles
// or all rollouts; "calibrate_unit": token or rollout span means; see
// docs/method.md). The reference project's form, a ceiling on the
// role-minus-default direction v = -u with threshold -tau,
// h <- h - max(0, <h,v> - (-tau)) * v, is the same map.
//
// The file's policy lives here too, once: its metadata keys (LayerKey,
// ConfigKey, ArchitectureKey), the layer the axis is read at by default
// (DefaultLayer), whether it fits a model (Axis.CheckModel: layer count,
// hidden size, config.json sha256) and the unit vector (Axis.Unit,
// UnitVector).
//
// ImportReference reads the reference project's axis.pt into an Axis with no
// default mean, role means or tau (its metadata records the source file, its
// sha256 and what is unknown); ReadCappingConfig reads its capping_config.pt,
// whose experiments become tether caps (see Cap).
package axis

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"tether/weights"
)

// Convention is the metadata value that states the sign convention.
const Convention = "floor: u = axis/|axis|, default projects high, h <- h + max(0, tau - <h,u>) u"

// RenderingKey is the Extra metadata key holding, as JSON, how the persona
// run behind the axis rendered its chats (chat template sha256,
// enable_thinking, system prompt folding; written by axis build from the
// run's run.json), so that commands capping with the axis can check that they
// render the same way.
const RenderingKey = "rendering"

// Axis is the content of an axis file.
type Axis struct {
	Model  string // model id or directory name the activations came from
	Layers int
	Hidden int

	Axis        [][]float32   // [layers][hidden]
	DefaultMean [][]float32   // [layers][hidden]; nil when unknown (an imported axis)
	RoleNames   []string      // [roles]
	RoleMeans   [][][]float32 // [roles][layers][hidden]

	Percentiles []float64   // e.g. 1, 25, 50, 75
	Tau         [][]float32 // [len(Percentiles)][layers]

	// Extra holds further metadata (counts, settings) as strings.
	Extra map[string]string
}

// Unit returns the axis of a layer scaled to unit length (UnitVector).
func (a *Axis) Unit(layer int) ([]float32, error) {
	if layer < 0 || layer >= a.Layers {
		return nil, fmt.Errorf("axis: layer %d out of range [0, %d)", layer, a.Layers)
	}
	u, err := UnitVector(a.Axis[layer])
	if err != nil {
		return nil, fmt.Errorf("axis: layer %d: cannot normalise the axis: %w", layer, err)
	}
	return u, nil
}

// TauAt returns the threshold of a layer at a calibrated percentile.
func (a *Axis) TauAt(percentile float64, layer int) (float32, error) {
	if layer < 0 || layer >= a.Layers {
		return 0, fmt.Errorf("axis: layer %d out of range [0, %d)", layer, a.Layers)
	}
	for i, p := range a.Percentiles {
		if p == percentile {
			return a.Tau[i][layer], nil
		}
	}
	if len(a.Percentiles) == 0 && a.Imported() {
		return 0, fmt.Errorf("axis: this axis was imported from the reference project's %s, which holds no thresholds (tau): give --cap-tau, or --cap-experiment with --capping-config", a.Extra[MetaSourceFile])
	}
	return 0, fmt.Errorf("axis: percentile %g is not calibrated in this file (calibrated: %s)", percentile, formatFloats(a.Percentiles))
}

// Validate checks that every tensor has the shape the header fields imply and
// that nothing is NaN or infinite.
func (a *Axis) Validate() error {
	if a.Layers <= 0 || a.Hidden <= 0 {
		return fmt.Errorf("axis: layers %d and hidden %d must be positive", a.Layers, a.Hidden)
	}
	if err := checkMatrix("axis", a.Axis, a.Layers, a.Hidden); err != nil {
		return err
	}
	if a.DefaultMean != nil {
		if err := checkMatrix("default_mean", a.DefaultMean, a.Layers, a.Hidden); err != nil {
			return err
		}
	}
	if len(a.RoleMeans) != len(a.RoleNames) {
		return fmt.Errorf("axis: %d role names but %d role means", len(a.RoleNames), len(a.RoleMeans))
	}
	for r, m := range a.RoleMeans {
		if err := checkMatrix(fmt.Sprintf("role_means[%d]", r), m, a.Layers, a.Hidden); err != nil {
			return err
		}
	}
	if len(a.Tau) != len(a.Percentiles) {
		return fmt.Errorf("axis: %d percentiles but %d tau rows", len(a.Percentiles), len(a.Tau))
	}
	for i, row := range a.Tau {
		if len(row) != a.Layers {
			return fmt.Errorf("axis: tau row %d (percentile %g) has %d values, want %d layers", i, a.Percentiles[i], len(row), a.Layers)
		}
		if err := checkFinite(fmt.Sprintf("tau[%d]", i), row); err != nil {
			return err
		}
	}
	return nil
}

func checkMatrix(name string, m [][]float32, rows, cols int) error {
	if len(m) != rows {
		return fmt.Errorf("axis: %s has %d rows, want %d layers", name, len(m), rows)
	}
	for i, row := range m {
		if len(row) != cols {
			return fmt.Errorf("axis: %s row %d has %d values, want hidden size %d", name, i, len(row), cols)
		}
		if err := checkFinite(fmt.Sprintf("%s row %d", name, i), row); err != nil {
			return err
		}
	}
	return nil
}

func checkFinite(name string, v []float32) error {
	for j, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("axis: %s: value %d is %v", name, j, x)
		}
	}
	return nil
}

// Write stores a as a safetensors file at path, atomically.
func Write(path string, a *Axis) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("axis: %s: %w", path, err)
	}
	var tensors []weights.Tensor
	add := func(name string, shape []int, data []float32) error {
		t, err := weights.NewF32Tensor(name, shape, data)
		if err != nil {
			return fmt.Errorf("axis: %s: tensor %q: %w", path, name, err)
		}
		tensors = append(tensors, t)
		return nil
	}
	if err := add("axis", []int{a.Layers, a.Hidden}, flatten(a.Axis)); err != nil {
		return err
	}
	if a.DefaultMean != nil {
		if err := add("default_mean", []int{a.Layers, a.Hidden}, flatten(a.DefaultMean)); err != nil {
			return err
		}
	}
	if len(a.RoleMeans) > 0 {
		var all []float32
		for _, m := range a.RoleMeans {
			all = append(all, flatten(m)...)
		}
		if err := add("role_means", []int{len(a.RoleMeans), a.Layers, a.Hidden}, all); err != nil {
			return err
		}
	}
	if len(a.Tau) > 0 {
		if err := add("tau", []int{len(a.Tau), a.Layers}, flatten(a.Tau)); err != nil {
			return err
		}
	}
	roles, _ := json.Marshal(a.RoleNames)
	meta := map[string]string{}
	for k, v := range a.Extra {
		meta[k] = v
	}
	meta["format"] = "tether-axis/1"
	meta["model"] = a.Model
	meta["layers"] = strconv.Itoa(a.Layers)
	meta["hidden_size"] = strconv.Itoa(a.Hidden)
	meta["roles"] = string(roles)
	meta["percentiles"] = formatFloats(a.Percentiles)
	meta["convention"] = Convention
	return weights.WriteFile(path, tensors, meta)
}

// Read loads and validates an axis file.
func Read(path string) (*Axis, error) {
	f, err := weights.OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("axis: %w", err)
	}
	defer f.Close()
	meta := f.Metadata()
	a := &Axis{Model: meta["model"], Extra: map[string]string{}}
	for k, v := range meta {
		switch k {
		case "format", "model", "layers", "hidden_size", "roles", "percentiles", "convention":
		default:
			a.Extra[k] = v
		}
	}
	if c := meta["convention"]; c != Convention {
		return nil, fmt.Errorf("axis: %s: metadata \"convention\" is %q, want %q (a file written with another sign convention)", path, c, Convention)
	}
	ax, shape, err := f.Float32("axis")
	if err != nil {
		return nil, fmt.Errorf("axis: %s: %w", path, err)
	}
	if len(shape) != 2 {
		return nil, fmt.Errorf("axis: %s: tensor \"axis\" has shape %v, want [layers, hidden]", path, shape)
	}
	a.Layers, a.Hidden = shape[0], shape[1]
	if err := checkMeta(path, meta, "layers", a.Layers); err != nil {
		return nil, err
	}
	if err := checkMeta(path, meta, "hidden_size", a.Hidden); err != nil {
		return nil, err
	}
	a.Axis = split(append([]float32(nil), ax...), a.Hidden)
	if f.Has("default_mean") {
		dm, err := readShaped(f, path, "default_mean", a.Layers, a.Hidden)
		if err != nil {
			return nil, err
		}
		a.DefaultMean = split(dm, a.Hidden)
	}
	if r := meta["roles"]; r != "" {
		if err := json.Unmarshal([]byte(r), &a.RoleNames); err != nil {
			return nil, fmt.Errorf("axis: %s: metadata \"roles\": expected a JSON list of names: %v", path, err)
		}
	}
	if len(a.RoleNames) > 0 {
		rm, err := readShaped(f, path, "role_means", len(a.RoleNames), a.Layers, a.Hidden)
		if err != nil {
			return nil, err
		}
		per := a.Layers * a.Hidden
		for r := range a.RoleNames {
			a.RoleMeans = append(a.RoleMeans, split(rm[r*per:(r+1)*per], a.Hidden))
		}
	}
	if a.Percentiles, err = parseFloats(meta["percentiles"]); err != nil {
		return nil, fmt.Errorf("axis: %s: metadata \"percentiles\": %w", path, err)
	}
	if len(a.Percentiles) > 0 {
		tau, err := readShaped(f, path, "tau", len(a.Percentiles), a.Layers)
		if err != nil {
			return nil, err
		}
		a.Tau = split(tau, a.Layers)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("axis: %s: %w", path, err)
	}
	return a, nil
}

func readShaped(f *weights.File, path, name string, want ...int) ([]float32, error) {
	data, shape, err := f.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("axis: %s: %w", path, err)
	}
	if fmt.Sprint(shape) != fmt.Sprint(want) {
		return nil, fmt.Errorf("axis: %s: tensor %q has shape %v, want %v", path, name, shape, want)
	}
	return append([]float32(nil), data...), nil
}

func checkMeta(path string, meta map[string]string, key string, want int) error {
	v, ok := meta[key]
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n != want {
		return fmt.Errorf("axis: %s: metadata %q is %q but the tensors say %d", path, key, v, want)
	}
	return nil
}

func flatten(m [][]float32) []float32 {
	var out []float32
	for _, row := range m {
		out = append(out, row...)
	}
	return out
}

func split(v []float32, cols int) [][]float32 {
	out := make([][]float32, 0, len(v)/cols)
	for i := 0; i+cols <= len(v); i += cols {
		out = append(out, v[i:i+cols:i+cols])
	}
	return out
}

func formatFloats(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

func parseFloats(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, errors.New("expected comma-separated numbers, got " + strconv.Quote(s))
		}
		out = append(out, x)
	}
	return out, nil
}
