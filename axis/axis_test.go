package axis

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sample() *Axis {
	const L, H = 3, 4
	a := &Axis{Model: "test/model", Layers: L, Hidden: H, RoleNames: []string{"pirate", "poet"},
		Percentiles: []float64{1, 25}, Extra: map[string]string{"rollouts": "10"}}
	for l := 0; l < L; l++ {
		a.Axis = append(a.Axis, []float32{float32(l + 1), 0, 0, 0})
		a.DefaultMean = append(a.DefaultMean, []float32{1, 2, 3, float32(l)})
	}
	for r := range a.RoleNames {
		var m [][]float32
		for l := 0; l < L; l++ {
			m = append(m, []float32{float32(r), float32(l), -1, 0.5})
		}
		a.RoleMeans = append(a.RoleMeans, m)
	}
	a.Tau = [][]float32{{-1, -2, -3}, {0.5, 0.25, 0}}
	return a
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "axis.safetensors")
	want := sample()
	if err := Write(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != want.Model || got.Layers != want.Layers || got.Hidden != want.Hidden ||
		strings.Join(got.RoleNames, ",") != "pirate,poet" || got.Extra["rollouts"] != "10" {
		t.Fatalf("header fields differ: %+v", got)
	}
	for l := range want.Axis {
		for i := range want.Axis[l] {
			if got.Axis[l][i] != want.Axis[l][i] || got.DefaultMean[l][i] != want.DefaultMean[l][i] ||
				got.RoleMeans[1][l][i] != want.RoleMeans[1][l][i] {
				t.Fatalf("layer %d element %d differs", l, i)
			}
		}
	}
	tau, err := got.TauAt(25, 1)
	if err != nil || tau != 0.25 {
		t.Fatalf("TauAt(25, 1) = %v, %v; want 0.25", tau, err)
	}
	if _, err := got.TauAt(50, 1); err == nil || !strings.Contains(err.Error(), "not calibrated") {
		t.Fatalf("TauAt of an uncalibrated percentile: %v", err)
	}
	u, err := got.Unit(2)
	if err != nil || math.Abs(float64(u[0])-1) > 1e-7 {
		t.Fatalf("Unit(2) = %v, %v", u, err)
	}
}

// TestPlainSafetensors reads the file with nothing but the format's spec (as
// Python's safetensors would): an 8-byte header length, a JSON header with
// dtype/shape/data_offsets and string metadata.
func TestPlainSafetensors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "axis.safetensors")
	if err := Write(path, sample()); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatal(err)
	}
	var meta map[string]string
	if err := json.Unmarshal(header["__metadata__"], &meta); err != nil {
		t.Fatalf("__metadata__ must be a string map: %v", err)
	}
	if meta["convention"] != Convention || meta["layers"] != "3" || meta["percentiles"] != "1,25" {
		t.Fatalf("metadata = %v", meta)
	}
	var tau struct {
		DType   string  `json:"dtype"`
		Shape   []int   `json:"shape"`
		Offsets []int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(header["tau"], &tau); err != nil {
		t.Fatal(err)
	}
	if tau.DType != "F32" || len(tau.Shape) != 2 || tau.Shape[0] != 2 || tau.Shape[1] != 3 {
		t.Fatalf("tau entry = %+v", tau)
	}
	data := raw[8+n:]
	first := math.Float32frombits(binary.LittleEndian.Uint32(data[tau.Offsets[0]:]))
	if first != -1 {
		t.Fatalf("tau[0][0] read by hand = %v, want -1", first)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		mutate func(a *Axis)
		want   string
	}{
		{"NaN in axis", func(a *Axis) { a.Axis[1][2] = float32(math.NaN()) }, "NaN"},
		{"wrong hidden", func(a *Axis) { a.DefaultMean[0] = a.DefaultMean[0][:2] }, "hidden size"},
		{"tau rows", func(a *Axis) { a.Tau = a.Tau[:1] }, "tau rows"},
		{"role count", func(a *Axis) { a.RoleNames = a.RoleNames[:1] }, "role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := sample()
			tc.mutate(a)
			err := Write(filepath.Join(dir, tc.name), a)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Write error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Read(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Fatal("Read of a missing file succeeded")
	}
	a := sample()
	if _, err := a.Unit(7); err == nil {
		t.Fatal("Unit out of range succeeded")
	}
	a.Axis[0] = make([]float32, 4)
	if _, err := a.Unit(0); err == nil || !strings.Contains(err.Error(), "norm") {
		t.Fatalf("Unit of a zero axis: %v", err)
	}
}
