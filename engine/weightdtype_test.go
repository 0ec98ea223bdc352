package engine

import (
	"context"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"

	"tether/weights"
)

// TestCheckpointDTypeByDefault writes the same random model as an F32, a BF16
// and an F16 checkpoint and loads each with default options: on "cpu" the
// weights stay in the checkpoint's dtype (a 16-bit checkpoint holds half the
// bytes of weight storage, counted from the backend's buffers), on "go" they
// are float32; the bf16 checkpoint kept as bfloat16 gives the logits of the
// same checkpoint loaded as float32 within the bfloat16 tolerance (5e-2, the
// values are the same, only the products round to bfloat16), and
// "float32" asked explicitly wins over the default.
func TestCheckpointDTypeByDefault(t *testing.T) {
	open := func(dt weights.DType) (*weights.Config, *weights.Checkpoint) {
		return writeRandomCheckpoint(t, tinyLlamaJSON, 1, dt)
	}
	load := func(backend string, cfg *weights.Config, ck *weights.Checkpoint, opts LoadOptions) *Model {
		be, err := NewBackend(backend)
		if err != nil {
			t.Fatal(err)
		}
		m, err := LoadWithOptions(be, cfg, ck, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m
	}
	cfg32, ck32 := open(weights.F32)
	cfgBF, ckBF := open(weights.BF16)
	cfgH, ckH := open(weights.F16)
	f32 := load("cpu", cfg32, ck32, LoadOptions{})
	for _, c := range []struct {
		name    string
		m       *Model
		want    dtypes.DType
		bytesX2 bool // holds half of f32's weight bytes
	}{
		{"f32 checkpoint on cpu", f32, dtypes.Float32, false},
		{"bf16 checkpoint on cpu", load("cpu", cfgBF, ckBF, LoadOptions{}), dtypes.BFloat16, true},
		{"f16 checkpoint on cpu", load("cpu", cfgH, ckH, LoadOptions{WeightDType: "auto"}), dtypes.Float16, true},
		{"bf16 checkpoint on go", load("go", cfgBF, ckBF, LoadOptions{}), dtypes.Float32, false},
		{"bf16 checkpoint on cpu, float32 asked", load("cpu", cfgBF, ckBF, LoadOptions{WeightDType: "float32"}), dtypes.Float32, false},
	} {
		if c.m.weightDType != c.want {
			t.Errorf("%s: weights held as %s, want %s", c.name, c.m.weightDType, c.want)
		}
		got, full := c.m.HeldWeightBytes(), f32.HeldWeightBytes()
		matrices := 2 * cfg32.ParamCount() // what 16-bit storage saves is the matrices' half
		if c.bytesX2 && (got >= full || full-got > matrices || full-got < matrices*9/10) {
			t.Errorf("%s: %d bytes of weights, want about half of float32's %d (all but the norms)", c.name, got, full)
		}
		if !c.bytesX2 && got != full {
			t.Errorf("%s: %d bytes of weights, want float32's %d", c.name, got, full)
		}
	}
	bf := load("cpu", cfgBF, ckBF, LoadOptions{})
	asF32 := load("cpu", cfgBF, ckBF, LoadOptions{WeightDType: "f32"})
	seqs := [][]int{{1, 5, 9, 200, 17, 3}}
	ctx := context.Background()
	want, err := asF32.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := bf.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxRelDiff(flatten(got.AllLogits[0]), flatten(want.AllLogits[0])); d > 5e-2 || d == 0 {
		t.Errorf("bf16 checkpoint as bfloat16 vs as float32: logits differ by %g, want within (0, 5e-2]", d)
	}
}
