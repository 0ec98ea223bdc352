package axis

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDefaultLayer: the axis_layer metadata wins when it names a layer of the file; otherwise
// the reference's table (by architecture metadata and shape), otherwise the middle layer.
func TestDefaultLayer(t *testing.T) {
	for _, tc := range []struct {
		name           string
		layers, hidden int
		extra          map[string]string
		want           int
		reason         string
	}{
		{"metadata", 6, 8, map[string]string{LayerKey: "4"}, 4, "axis_layer metadata"},
		{"metadata beyond the file", 6, 8, map[string]string{LayerKey: "6"}, 3, "middle layer"},
		{"metadata not a number", 6, 8, map[string]string{LayerKey: "x"}, 3, "middle layer"},
		{"reference table", 64, 5120, map[string]string{ArchitectureKey: "Qwen3ForCausalLM"}, 32, "Qwen/Qwen3-32B"},
		{"metadata over the table", 64, 5120, map[string]string{ArchitectureKey: "Qwen3ForCausalLM", LayerKey: "40"}, 40, "metadata"},
		{"unknown model", 7, 8, nil, 3, "middle layer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Axis{Layers: tc.layers, Hidden: tc.hidden, Extra: tc.extra}
			got, reason := DefaultLayer(a)
			if got != tc.want || !strings.Contains(reason, tc.reason) {
				t.Fatalf("DefaultLayer = %d (%s), want %d (%s)", got, reason, tc.want, tc.reason)
			}
		})
	}
}

// TestCheckModel: another shape is refused, another config.json of the same shape too (its
// sha256 computed here independently) unless allowed; the same config passes.
func TestCheckModel(t *testing.T) {
	dir := t.TempDir()
	config := []byte(`{"hidden_size": 8, "num_hidden_layers": 4}`)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(config)
	same := hex.EncodeToString(sum[:])
	m := ModelInfo{Name: "tiny", Layers: 4, Hidden: 8, Dir: dir}
	mk := func(layers, hidden int, sha string) *Axis {
		return &Axis{Model: "tiny", Layers: layers, Hidden: hidden, Extra: map[string]string{ConfigKey: sha}}
	}
	for _, tc := range []struct {
		name       string
		a          *Axis
		allowOther bool
		want       string // "" for no error
	}{
		{"same model", mk(4, 8, same), false, ""},
		{"no recorded config", mk(4, 8, ""), false, ""},
		{"wrong hidden size", mk(4, 9, same), false, "hidden size 9 but the model has 8"},
		{"wrong layer count", mk(5, 8, same), false, "5 layers but the model has 4"},
		{"other config", mk(4, 8, strings.Repeat("ab", 32)), false, "config sha256"},
		{"other config allowed", mk(4, 8, strings.Repeat("ab", 32)), true, ""},
		{"wrong shape even when allowed", mk(4, 9, same), true, "hidden size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.CheckModel(m, tc.allowOther)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestUnitVector: the result has norm 1 and the direction of v; zero and non-finite vectors
// are errors.
func TestUnitVector(t *testing.T) {
	u, err := UnitVector([]float32{3, 0, -4})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float32{0.6, 0, -0.8} {
		if math.Abs(float64(u[i]-want)) > 1e-7 {
			t.Fatalf("UnitVector(3,0,-4) = %v, want (0.6, 0, -0.8)", u)
		}
	}
	for _, bad := range [][]float32{{0, 0}, {float32(math.NaN()), 1}, {float32(math.Inf(1)), 1}} {
		if _, err := UnitVector(bad); err == nil {
			t.Errorf("UnitVector(%v): no error", bad)
		}
	}
}
