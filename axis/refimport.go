package axis

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"

	"tether/internal/torchpt"
)

// Metadata keys of an axis imported from the reference project
// (github.com/safety-research/assistant-axis).
const (
	// MetaSourceFile is the base name of the imported axis.pt.
	MetaSourceFile = "source_file"
	// MetaSourceSHA256 is the hex sha256 of the imported axis.pt.
	MetaSourceSHA256 = "source_sha256"
	// MetaSourceFormat says which program wrote the source.
	MetaSourceFormat = "source_format"
	// MetaUnknown lists, comma-separated, what the source did not hold.
	MetaUnknown = "unknown"
	// MetaReferenceMetadata is the source's "metadata" dict as JSON.
	MetaReferenceMetadata = "reference_metadata"

	referenceFormat = "assistant-axis axis.pt (torch.save)"
	importedUnknown = "default_mean,role_means,tau"
)

// Imported reports whether a was imported from a reference axis.pt.
func (a *Axis) Imported() bool {
	return a.Extra[MetaSourceFormat] == referenceFormat
}

// ImportReference reads the reference project's axis.pt: either a bare
// [layers, hidden] tensor (pipeline/5_axis.py) or a dict with "axis" and an
// optional "metadata" dict (save_axis). The reference axis is
// mean(default) - mean(roles), tether's convention, so it is taken as is.
// The file holds no default mean, role means or thresholds: the result has
// none, and its metadata says so.
func ImportReference(path string) (*Axis, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("axis: import: %w", err)
	}
	v, err := torchpt.Load(path)
	if err != nil {
		return nil, fmt.Errorf("axis: import: %w", err)
	}
	t, meta, err := referenceAxis(v)
	if err != nil {
		return nil, fmt.Errorf("axis: import: %s: %w", path, err)
	}
	if len(t.Shape) != 2 || t.Shape[0] == 0 || t.Shape[1] == 0 {
		return nil, fmt.Errorf("axis: import: %s: \"axis\" has shape %v, expected [layers, hidden] with both positive", path, t.Shape)
	}
	a := &Axis{Layers: t.Shape[0], Hidden: t.Shape[1], Axis: split(t.Data, t.Shape[1]), Extra: map[string]string{
		MetaSourceFile:   filepath.Base(path),
		MetaSourceSHA256: sum,
		MetaSourceFormat: referenceFormat,
		MetaUnknown:      importedUnknown,
		"source_dtype":   t.DType,
	}}
	if meta != nil {
		plain := plainValue(meta)
		if m, ok := plain.(map[string]any); ok {
			if s, ok := m["model"].(string); ok {
				a.Model = s
			}
		}
		b, err := json.Marshal(plain)
		if err != nil {
			return nil, fmt.Errorf("axis: import: %s: \"metadata\": %w", path, err)
		}
		a.Extra[MetaReferenceMetadata] = string(b)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("axis: import: %s: %w", path, err)
	}
	return a, nil
}

// referenceAxis finds the axis tensor (and the metadata dict, if any) the
// way the reference's load_axis does.
func referenceAxis(v any) (*torchpt.Tensor, *torchpt.Dict, error) {
	switch x := v.(type) {
	case *torchpt.Tensor:
		return x, nil, nil
	case *torchpt.Dict:
		av, ok := x.Get("axis")
		if !ok {
			return nil, nil, fmt.Errorf("a dict without an \"axis\" key (keys %q), expected {\"axis\": tensor[layers, hidden], \"metadata\": {...}} or a bare tensor", x.Keys())
		}
		t, ok := av.(*torchpt.Tensor)
		if !ok {
			return nil, nil, fmt.Errorf("\"axis\" is %s, expected a tensor [layers, hidden]", describe(av))
		}
		var meta *torchpt.Dict
		if mv, ok := x.Get("metadata"); ok && mv != nil {
			if meta, ok = mv.(*torchpt.Dict); !ok {
				return nil, nil, fmt.Errorf("\"metadata\" is %s, expected a dict", describe(mv))
			}
		}
		return t, meta, nil
	}
	return nil, nil, fmt.Errorf("the file holds %s, expected a tensor [layers, hidden] or a dict with \"axis\"", describe(v))
}

// describe names the Python type of a value read by torchpt.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case *torchpt.Tensor:
		return fmt.Sprintf("a %s tensor of shape %v", x.DType, x.Shape)
	case *torchpt.Dict:
		return "a dict"
	case torchpt.List:
		return "a list"
	case torchpt.Tuple:
		return "a tuple"
	case string:
		return "a string"
	case int64, *big.Int:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	}
	return fmt.Sprintf("a %T", v)
}

// plainValue turns torchpt values into JSON-friendly ones (tensors become
// their shape and dtype).
func plainValue(v any) any {
	switch x := v.(type) {
	case *torchpt.Dict:
		m := map[string]any{}
		for _, it := range x.Items {
			m[fmt.Sprint(plainValue(it.Key))] = plainValue(it.Value)
		}
		return m
	case torchpt.List:
		return plainSlice(x)
	case torchpt.Tuple:
		return plainSlice(x)
	case *torchpt.Tensor:
		return map[string]any{"tensor": x.DType, "shape": x.Shape}
	case *big.Int:
		return x.String()
	case []byte:
		return fmt.Sprintf("%d bytes", len(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	}
	return v
}

func plainSlice(xs []any) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = plainValue(x)
	}
	return out
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// RefVector is one vector of a reference capping config: the direction the
// reference caps along at one layer.
type RefVector struct {
	Layer  int
	Vector []float32
}

// RefIntervention is one intervention of a reference experiment; HasCap is
// false for those without a "cap" (the reference skips them).
type RefIntervention struct {
	Vector string
	Cap    float64
	HasCap bool
}

// RefExperiment is one experiment of a reference capping config.
type RefExperiment struct {
	ID            string
	Interventions []RefIntervention
}

// CappingConfig is the reference project's capping_config.pt:
// {"vectors": {name: {"layer": int, "vector": tensor[hidden]}},
// "experiments": [{"id": str, "interventions": [{"vector": name, "cap": float}]}]}.
type CappingConfig struct {
	Path        string
	SHA256      string
	Vectors     map[string]RefVector
	Experiments []RefExperiment
}

// Cap is one reference cap in tether's convention: a floor at Tau on the
// unit direction Dir of Layer, h <- h + max(0, Tau - <h,Dir>) Dir.
//
// The reference (steering.py, ActivationSteering._apply_cap) caps from
// above along its vector v: with v' = v/(|v|+1e-8) and p = <h,v'>,
// h <- h - max(0, p - cap) v'. Take Dir = -v/|v|, so <h,Dir> = -p; then
// h + max(0, Tau + p) Dir = h - max(0, p + Tau) v/|v|, which is the
// reference map exactly when Tau = -cap. The cap is already in units of the
// normalised projection (the reference divides v by its norm first), so it
// is not rescaled; the only difference is the reference's 1e-8 in the norm,
// a relative 1e-8/|v| (below float32 resolution for any |v| > 1).
type Cap struct {
	Layer  int
	Dir    []float32
	Tau    float32
	Vector string // the reference vector's name
}

// ReadCappingConfig reads and checks a reference capping_config.pt.
func ReadCappingConfig(path string) (*CappingConfig, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("axis: capping config: %w", err)
	}
	v, err := torchpt.Load(path)
	if err != nil {
		return nil, fmt.Errorf("axis: capping config: %w", err)
	}
	c := &CappingConfig{Path: path, SHA256: sum, Vectors: map[string]RefVector{}}
	if err := c.fill(v); err != nil {
		return nil, fmt.Errorf("axis: capping config %s: %w", path, err)
	}
	return c, nil
}

func (c *CappingConfig) fill(v any) error {
	top, ok := v.(*torchpt.Dict)
	if !ok {
		return fmt.Errorf("the file holds %s, expected a dict with \"vectors\" and \"experiments\"", describe(v))
	}
	vv, ok := top.Get("vectors")
	vectors, isDict := vv.(*torchpt.Dict)
	if !ok || !isDict {
		return fmt.Errorf("\"vectors\" is %s, expected a dict {name: {\"layer\": int, \"vector\": tensor[hidden]}}", missingOr(ok, vv))
	}
	hidden := -1
	for _, it := range vectors.Items {
		name, ok := it.Key.(string)
		if !ok {
			return fmt.Errorf("\"vectors\" has a key of type %s, expected strings", describe(it.Key))
		}
		rv, err := refVector(name, it.Value)
		if err != nil {
			return err
		}
		if hidden >= 0 && len(rv.Vector) != hidden {
			return fmt.Errorf("vectors[%q] has %d values but other vectors have %d", name, len(rv.Vector), hidden)
		}
		hidden = len(rv.Vector)
		c.Vectors[name] = rv
	}
	ev, ok := top.Get("experiments")
	exps, isList := ev.(torchpt.List)
	if !ok || !isList {
		return fmt.Errorf("\"experiments\" is %s, expected a list of {\"id\": str, \"interventions\": [...]}", missingOr(ok, ev))
	}
	for i, e := range exps {
		exp, err := refExperiment(i, e)
		if err != nil {
			return err
		}
		c.Experiments = append(c.Experiments, exp)
	}
	return nil
}

func missingOr(present bool, v any) string {
	if !present {
		return "missing"
	}
	return describe(v)
}

func refVector(name string, v any) (RefVector, error) {
	d, ok := v.(*torchpt.Dict)
	if !ok {
		return RefVector{}, fmt.Errorf("vectors[%q] is %s, expected {\"layer\": int, \"vector\": tensor[hidden]}", name, describe(v))
	}
	lv, _ := d.Get("layer")
	layer, ok := lv.(int64)
	if !ok || layer < 0 || layer > math.MaxInt32 {
		return RefVector{}, fmt.Errorf("vectors[%q][\"layer\"] is %v (%s), expected a non-negative int", name, lv, describe(lv))
	}
	tv, _ := d.Get("vector")
	t, ok := tv.(*torchpt.Tensor)
	if !ok || len(t.Shape) != 1 || t.Shape[0] == 0 {
		return RefVector{}, fmt.Errorf("vectors[%q][\"vector\"] is %s, expected a 1-D tensor [hidden]", name, describe(tv))
	}
	if err := checkFinite(fmt.Sprintf("vectors[%q]", name), t.Data); err != nil {
		return RefVector{}, err
	}
	return RefVector{Layer: int(layer), Vector: t.Data}, nil
}

func refExperiment(i int, v any) (RefExperiment, error) {
	d, ok := v.(*torchpt.Dict)
	if !ok {
		return RefExperiment{}, fmt.Errorf("experiments[%d] is %s, expected {\"id\": str, \"interventions\": [...]}", i, describe(v))
	}
	idv, _ := d.Get("id")
	id, ok := idv.(string)
	if !ok {
		return RefExperiment{}, fmt.Errorf("experiments[%d][\"id\"] is %s, expected a string", i, describe(idv))
	}
	iv, _ := d.Get("interventions")
	list, ok := iv.(torchpt.List)
	if !ok {
		return RefExperiment{}, fmt.Errorf("experiment %q: \"interventions\" is %s, expected a list", id, describe(iv))
	}
	exp := RefExperiment{ID: id}
	for j, x := range list {
		xd, ok := x.(*torchpt.Dict)
		if !ok {
			return RefExperiment{}, fmt.Errorf("experiment %q: interventions[%d] is %s, expected {\"vector\": name, \"cap\": float}", id, j, describe(x))
		}
		nv, _ := xd.Get("vector")
		name, ok := nv.(string)
		if !ok {
			return RefExperiment{}, fmt.Errorf("experiment %q: interventions[%d][\"vector\"] is %s, expected a vector name", id, j, describe(nv))
		}
		ri := RefIntervention{Vector: name}
		if cv, has := xd.Get("cap"); has {
			switch c := cv.(type) {
			case float64:
				ri.Cap = c
			case int64:
				ri.Cap = float64(c)
			case *torchpt.Tensor: // float(tensor) in the reference takes a one-element tensor
				if len(c.Data) != 1 {
					return RefExperiment{}, fmt.Errorf("experiment %q: interventions[%d][\"cap\"] is %s, expected a number", id, j, describe(cv))
				}
				ri.Cap = float64(c.Data[0])
			default:
				return RefExperiment{}, fmt.Errorf("experiment %q: interventions[%d][\"cap\"] is %s, expected a number", id, j, describe(cv))
			}
			if math.IsNaN(ri.Cap) || math.IsInf(ri.Cap, 0) || math.Abs(ri.Cap) > math.MaxFloat32 {
				return RefExperiment{}, fmt.Errorf("experiment %q: interventions[%d][\"cap\"] is %v, expected a finite float32", id, j, ri.Cap)
			}
			ri.HasCap = true
		}
		exp.Interventions = append(exp.Interventions, ri)
	}
	return exp, nil
}

// IDs lists the experiment ids in file order.
func (c *CappingConfig) IDs() []string {
	out := make([]string, len(c.Experiments))
	for i, e := range c.Experiments {
		out[i] = e.ID
	}
	return out
}

// Caps converts an experiment's capping interventions into tether floors
// (see Cap), in the reference's order. Interventions without a "cap" are
// skipped as the reference skips them; an experiment with none is an error.
func (c *CappingConfig) Caps(id string) ([]Cap, error) {
	i := slices.IndexFunc(c.Experiments, func(e RefExperiment) bool { return e.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("axis: capping config %s: no experiment %q (it has %d: %s)", c.Path, id, len(c.Experiments), abbreviate(c.IDs(), 12))
	}
	exp := c.Experiments[i]
	var out []Cap
	for j, iv := range exp.Interventions {
		if !iv.HasCap {
			continue
		}
		rv, ok := c.Vectors[iv.Vector]
		if !ok {
			return nil, fmt.Errorf("axis: capping config %s: experiment %q: interventions[%d] names vector %q, which \"vectors\" does not hold", c.Path, id, j, iv.Vector)
		}
		dir, err := UnitVector(rv.Vector)
		if err != nil {
			return nil, fmt.Errorf("axis: capping config %s: vectors[%q]: no direction to cap along: %w", c.Path, iv.Vector, err)
		}
		for k := range dir {
			dir[k] = -dir[k]
		}
		out = append(out, Cap{Layer: rv.Layer, Dir: dir, Tau: float32(-iv.Cap), Vector: iv.Vector})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("axis: capping config %s: experiment %q has no intervention with a \"cap\"", c.Path, id)
	}
	return out, nil
}

func abbreviate(xs []string, n int) string {
	b, _ := json.Marshal(xs[:min(n, len(xs))])
	s := string(b)
	if len(xs) > n {
		s += fmt.Sprintf(" and %d more", len(xs)-n)
	}
	return s
}
