package probe

import (
	"math"
	"path/filepath"
	"testing"

	"tether/axis"
)

func TestInspectAxisRanksRolesByProjection(t *testing.T) {
	// Axis along (3, 4) at layer 1 (unit (0.6, 0.8)); role means chosen with known projections.
	a := &axis.Axis{Model: "m", Layers: 2, Hidden: 2,
		Axis:        [][]float32{{1, 0}, {3, 4}},
		DefaultMean: [][]float32{{0, 0}, {3, 4}},
		RoleNames:   []string{"a", "b", "c"},
		RoleMeans: [][][]float32{
			{{0, 0}, {0, 0}},   // projection 0
			{{0, 0}, {6, 8}},   // 10
			{{0, 0}, {-3, -4}}, // -5
		},
		Percentiles: []float64{25},
		Tau:         [][]float32{{-1, -2}},
		Extra:       map[string]string{axis.LayerKey: "1", "pc1_cosine": "[0.5,0.9]"},
	}
	path := filepath.Join(t.TempDir(), "axis.safetensors")
	if err := axis.Write(path, a); err != nil {
		t.Fatal(err)
	}
	back, err := axis.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	in, err := InspectAxis(back, -1)
	if err != nil {
		t.Fatal(err)
	}
	if in.Layer != 1 || in.AxisLayer == nil || *in.AxisLayer != 1 {
		t.Fatalf("layer %d axis layer %v, want 1 from the metadata", in.Layer, in.AxisLayer)
	}
	want := []RoleProjection{{"b", 10}, {"a", 0}, {"c", -5}}
	for i, w := range want {
		if in.Roles[i].Role != w.Role || math.Abs(in.Roles[i].Projection-w.Projection) > 1e-6 {
			t.Errorf("rank %d: %+v, want %+v", i, in.Roles[i], w)
		}
	}
	if math.Abs(*in.Default-5) > 1e-6 || math.Abs(in.PerLayer[1].AxisNorm-5) > 1e-6 {
		t.Errorf("default projection %v, |axis| %v; want 5 and 5", in.Default, in.PerLayer[1].AxisNorm)
	}
	if in.PerLayer[1].PC1Cosine == nil || *in.PerLayer[1].PC1Cosine != 0.9 || in.PerLayer[0].Tau[0] != -1 {
		t.Errorf("layer info %+v", in.PerLayer)
	}
	if _, err := InspectAxis(back, 2); err == nil {
		t.Error("layer 2 of 2: no error")
	}
	if in0, err := InspectAxis(back, 0); err != nil || in0.Layer != 0 {
		t.Errorf("explicit layer 0: %v %v", in0, err)
	}
}
