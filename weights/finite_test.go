package weights

import (
	"math"
	"path/filepath"
	"testing"
)

// TestFirstNonFinite plants one non-finite value in a slice of finite ones
// (including the largest finite float32) and expects its index.
func TestFirstNonFinite(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, at := range []int{0, 5, 999} {
			x := make([]float32, 1000)
			for i := range x {
				x[i] = float32(i) - 500
			}
			x[3] = math.MaxFloat32
			x[4] = -math.SmallestNonzeroFloat32
			if got := FirstNonFinite(x); got != -1 {
				t.Fatalf("finite slice: index %d", got)
			}
			x[at] = bad
			if got := FirstNonFinite(x); got != at {
				t.Errorf("%v at %d: found at %d", bad, at, got)
			}
		}
	}
}

// TestCheckpointFirstNonFinite writes a checkpoint per float dtype with one
// NaN or Inf planted in its second tensor and expects that tensor, index and
// value; a clean checkpoint reports nothing.
func TestCheckpointFirstNonFinite(t *testing.T) {
	for _, dt := range []DType{F32, BF16, F16} {
		for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
			dir := t.TempDir()
			clean := []float32{1, -2, 0.5, 3}
			planted := []float32{0.25, 1, -1, 2, 4, 8}
			planted[4] = float32(bad)
			a, err := NewFloatTensor("a.weight", dt, []int{2, 2}, clean)
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewFloatTensor("b.weight", dt, []int{2, 3}, planted)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(filepath.Join(dir, SingleFileName), []Tensor{a, b}, nil); err != nil {
				t.Fatal(err)
			}
			c, err := OpenCheckpoint(dir)
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.FirstNonFinite()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			same := v != nil && (v.Value == bad || math.IsNaN(v.Value) && math.IsNaN(bad))
			if v == nil || v.Tensor != "b.weight" || v.Index != 4 || !same {
				t.Errorf("%s %v: got %v, expected b.weight index 4", dt, bad, v)
			}
		}
	}
	dir := t.TempDir()
	a, _ := NewFloatTensor("a.weight", BF16, []int{2}, []float32{math.MaxFloat32 / 2, -1})
	if err := WriteFile(filepath.Join(dir, SingleFileName), []Tensor{a}, nil); err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.FirstNonFinite(); v != nil || err != nil {
		t.Errorf("clean checkpoint: %v, %v", v, err)
	}
}
