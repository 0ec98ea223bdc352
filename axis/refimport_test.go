package axis

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refExpected is what testdata/refpt/make_fixtures.py printed from torch,
// including the reference's own _apply_cap on random activations.
type refExpected struct {
	Layers int `json:"layers"`
	Hidden int `json:"hidden"`
	Axis   struct {
		Axis  []float64 `json:"axis"`
		Model string    `json:"model"`
	} `json:"axis.pt"`
	AxisBF16 struct {
		Axis []float64 `json:"axis"`
	} `json:"axis_raw_bf16.pt"`
	Config struct {
		Vectors map[string]struct {
			Layer  int       `json:"layer"`
			Vector []float64 `json:"vector"`
		} `json:"vectors"`
		Experiments []struct {
			ID   string     `json:"id"`
			Caps []*float64 `json:"caps"`
		} `json:"experiments"`
		Activations []float64            `json:"activations"`
		Tokens      int                  `json:"tokens"`
		Capped      map[string][]float64 `json:"capped"`
	} `json:"capping_config.pt"`
}

func refPath(name string) string { return filepath.Join("testdata", "refpt", name) }

func readRefExpected(t *testing.T) refExpected {
	t.Helper()
	b, err := os.ReadFile(refPath("expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e refExpected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestImportReferenceAxis(t *testing.T) {
	want := readRefExpected(t)
	for _, tc := range []struct {
		file, dtype, model string
		values             []float64
	}{
		{"axis.pt", "float32", want.Axis.Model, want.Axis.Axis},
		{"axis_raw_bf16.pt", "bfloat16", "", want.AxisBF16.Axis},
	} {
		t.Run(tc.file, func(t *testing.T) {
			a, err := ImportReference(refPath(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if a.Layers != want.Layers || a.Hidden != want.Hidden || a.Model != tc.model {
				t.Fatalf("layers %d hidden %d model %q; torch says %d, %d, %q", a.Layers, a.Hidden, a.Model, want.Layers, want.Hidden, tc.model)
			}
			for l := range a.Layers {
				for i := range a.Hidden {
					if float64(a.Axis[l][i]) != tc.values[l*a.Hidden+i] {
						t.Fatalf("axis[%d][%d] = %v, torch says %v", l, i, a.Axis[l][i], tc.values[l*a.Hidden+i])
					}
				}
			}
			b, _ := os.ReadFile(refPath(tc.file))
			sum := sha256.Sum256(b)
			if a.Extra[MetaSourceSHA256] != hex.EncodeToString(sum[:]) || a.Extra[MetaSourceFile] != tc.file || a.Extra["source_dtype"] != tc.dtype {
				t.Errorf("metadata %v: want source %s, sha256 %x, dtype %s", a.Extra, tc.file, sum, tc.dtype)
			}
			if a.DefaultMean != nil || a.RoleMeans != nil || a.Tau != nil || !strings.Contains(a.Extra[MetaUnknown], "tau") {
				t.Errorf("an imported axis claims data the reference file does not hold: %+v", a.Extra)
			}

			// The written file reads back the same, and asking it for tau
			// says why there is none.
			out := filepath.Join(t.TempDir(), "axis.safetensors")
			if err := Write(out, a); err != nil {
				t.Fatal(err)
			}
			back, err := Read(out)
			if err != nil {
				t.Fatal(err)
			}
			if back.Axis[1][2] != a.Axis[1][2] || back.Extra[MetaSourceSHA256] != a.Extra[MetaSourceSHA256] || back.DefaultMean != nil || !back.Imported() {
				t.Errorf("round trip changed the imported axis: %+v", back.Extra)
			}
			if _, err := back.TauAt(25, 0); err == nil || !strings.Contains(err.Error(), "no thresholds") || !strings.Contains(err.Error(), "--cap-experiment") {
				t.Errorf("TauAt on an imported axis: %v, want an error explaining that it has no tau", err)
			}
		})
	}
}

// applyReference is steering.py's _apply_cap for one activation, in
// float64: v' = v/(|v|+1e-8), h - max(0, <h,v'> - cap) v'.
func applyReference(h []float64, v []float64, c float64) []float64 {
	var n float64
	for _, x := range v {
		n += x * x
	}
	n = math.Sqrt(n) + 1e-8
	var p float64
	for i := range h {
		p += h[i] * v[i] / n
	}
	excess := math.Max(0, p-c)
	out := make([]float64, len(h))
	for i := range h {
		out[i] = h[i] - excess*v[i]/n
	}
	return out
}

// applyFloor is tether's cap: h + max(0, tau - <h,u>) u.
func applyFloor(h []float64, u []float32, tau float32) []float64 {
	var p float64
	for i := range h {
		p += h[i] * float64(u[i])
	}
	lift := math.Max(0, float64(tau)-p)
	out := make([]float64, len(h))
	for i := range h {
		out[i] = h[i] + lift*float64(u[i])
	}
	return out
}

// TestCapConversionMatchesReference applies the converted floors to the
// activations make_fixtures.py capped with the reference's own code, and
// compares with torch's result.
func TestCapConversionMatchesReference(t *testing.T) {
	want := readRefExpected(t)
	cfg, err := ReadCappingConfig(refPath("capping_config.pt"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.IDs(); len(got) != 2 || got[0] != want.Config.Experiments[0].ID || got[1] != want.Config.Experiments[1].ID {
		t.Fatalf("experiments %v, torch says %+v", got, want.Config.Experiments)
	}
	for name, v := range want.Config.Vectors {
		got := cfg.Vectors[name]
		if got.Layer != v.Layer || len(got.Vector) != len(v.Vector) {
			t.Fatalf("vector %s: layer %d, %d values; torch says %d, %d", name, got.Layer, len(got.Vector), v.Layer, len(v.Vector))
		}
		for i := range v.Vector {
			if float64(got.Vector[i]) != v.Vector[i] {
				t.Fatalf("vector %s[%d] = %v, torch says %v", name, i, got.Vector[i], v.Vector[i])
			}
		}
	}
	H, T := want.Hidden, want.Config.Tokens
	row := func(xs []float64, layer, tok int) []float64 {
		return xs[(layer*T+tok)*H : (layer*T+tok+1)*H]
	}
	for _, exp := range want.Config.Experiments {
		caps, err := cfg.Caps(exp.ID)
		if err != nil {
			t.Fatal(err)
		}
		var withCap int
		for _, c := range exp.Caps {
			if c != nil {
				withCap++
			}
		}
		if len(caps) != withCap {
			t.Fatalf("%s: %d caps, want %d (interventions without \"cap\" are skipped)", exp.ID, len(caps), withCap)
		}
		acted := 0
		for layer := range want.Layers {
			for tok := range T {
				h := append([]float64(nil), row(want.Config.Activations, layer, tok)...)
				for _, c := range caps {
					if c.Layer == layer {
						after := applyFloor(h, c.Dir, c.Tau)
						if after[0] != h[0] {
							acted++
						}
						h = after
					}
				}
				ref := row(want.Config.Capped[exp.ID], layer, tok)
				for i := range h {
					if d := math.Abs(h[i] - ref[i]); d > 1e-5*math.Max(1, math.Abs(ref[i])) {
						t.Fatalf("%s layer %d token %d [%d]: tether %v, reference %v", exp.ID, layer, tok, i, h[i], ref[i])
					}
				}
			}
		}
		if acted == 0 {
			t.Errorf("%s: no cap acted on any activation: the comparison proves nothing", exp.ID)
		}
	}
}

// TestCapConversionSign applies both formulas to random vectors of
// assorted norms and random activations, half of them past the cap.
func TestCapConversionSign(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const H = 16
	for trial := range 200 {
		v := make([]float64, H)
		v32 := make([]float32, H)
		scale := math.Pow(10, rng.Float64()*4-1)
		for i := range v {
			v32[i] = float32(rng.NormFloat64() * scale)
			v[i] = float64(v32[i])
		}
		cfg := &CappingConfig{Path: "random", Vectors: map[string]RefVector{"v": {Layer: 0, Vector: v32}},
			Experiments: []RefExperiment{{ID: "e", Interventions: []RefIntervention{{Vector: "v", Cap: rng.NormFloat64() * 3, HasCap: true}}}}}
		caps, err := cfg.Caps("e")
		if err != nil {
			t.Fatal(err)
		}
		h := make([]float64, H)
		for i := range h {
			h[i] = rng.NormFloat64() * 2
		}
		ref := applyReference(h, v, cfg.Experiments[0].Interventions[0].Cap)
		got := applyFloor(h, caps[0].Dir, caps[0].Tau)
		for i := range h {
			if d := math.Abs(got[i] - ref[i]); d > 1e-5*math.Max(1, math.Abs(ref[i])) {
				t.Fatalf("trial %d [%d]: tether %v, reference %v", trial, i, got[i], ref[i])
			}
		}
	}
}

func TestImportErrors(t *testing.T) {
	cfg, err := ReadCappingConfig(refPath("capping_config_bad.pt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func() error
		want []string
	}{
		{"axis key missing", func() error { _, err := ImportReference(refPath("axis_missing.pt")); return err },
			[]string{"axis_missing.pt", "without an \"axis\" key", "vectors"}},
		{"rank 1", func() error { _, err := ImportReference(refPath("axis_rank1.pt")); return err },
			[]string{"axis_rank1.pt", "shape [8]", "[layers, hidden]"}},
		{"capping config given as axis", func() error { _, err := ImportReference(refPath("capping_config.pt")); return err },
			[]string{"capping_config.pt", "without an \"axis\" key"}},
		{"axis given as capping config", func() error { _, err := ReadCappingConfig(refPath("axis.pt")); return err },
			[]string{"axis.pt", "\"vectors\" is missing"}},
		{"unknown vector", func() error { _, err := cfg.Caps("broken"); return err },
			[]string{"capping_config_bad.pt", "layer_9"}},
		{"unknown experiment", func() error { _, err := cfg.Caps("layers_46:54-p0.25"); return err },
			[]string{"no experiment \"layers_46:54-p0.25\"", "broken"}},
		{"missing file", func() error { _, err := ImportReference(refPath("nope.pt")); return err },
			[]string{"nope.pt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
