package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCPUBackendMatchesGo runs every family on tether's "cpu" backend and on
// simplego ("go"), an independent implementation of the same graph: logits,
// every block output and hook telemetry agree at 1e-4 relative, with f32
// weights. bfloat16 weights on "cpu" stay within 5e-2 of f32 (the
// tolerance of TestBFloat16Weights; 8 significant bits), float16 weights
// within 1e-2 (11 bits), and neither is identical to f32.
func TestCPUBackendMatchesGo(t *testing.T) {
	ctx := context.Background()
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			cfg := tinyConfig(fam)
			src := randomSource(cfg, 42)
			load := func(name, dtype string) *Model {
				be, err := NewBackend(name)
				if err != nil {
					t.Fatal(err)
				}
				m, err := LoadWithOptions(be, cfg, src, LoadOptions{WeightDType: dtype})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(m.Close)
				return m
			}
			goM, cpuM := load("go", "float32"), load("cpu", "float32")
			cpuBF, cpuF16 := load("cpu", "bfloat16"), load("cpu", "float16")
			rng := rand.New(rand.NewPCG(3, 4))
			seqs := [][]int{randomTokens(rng, 12, cfg.VocabSize), randomTokens(rng, 5, cfg.VocabSize)}
			H := cfg.HiddenSize
			u := make([]float32, H)
			add := make([]float32, H)
			var norm float64
			for i := range u {
				u[i] = float32(rng.NormFloat64())
				add[i] = float32(rng.NormFloat64() * 0.1)
				norm += float64(u[i] * u[i])
			}
			for i := range u {
				u[i] /= float32(math.Sqrt(norm))
			}
			layers := make([]int, cfg.NumLayers)
			for i := range layers {
				layers[i] = i
			}
			opts := ForwardOptions{AllLogits: true, CaptureLayers: layers, Hooks: Hooks{
				1: {Add: add, Clamps: []Clamp{{Dir: u, Lo: 0.5, Hi: float32(math.Inf(1))}, {Dir: u, Lo: -1, Hi: 0.1}}, Record: true},
			}}
			want, err := goM.Forward(ctx, seqs, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cpuM.Forward(ctx, seqs, opts)
			if err != nil {
				t.Fatal(err)
			}
			const tol = 1e-4
			for s := range seqs {
				if d := maxRelDiff(flatten(got.AllLogits[s]), flatten(want.AllLogits[s])); d > tol {
					t.Errorf("seq %d: logits differ from go by %g", s, d)
				}
				for _, l := range layers {
					if d := maxRelDiff(flatten(got.Captured[l][s]), flatten(want.Captured[l][s])); d > tol {
						t.Errorf("seq %d: block %d differs from go by %g", s, l, d)
					}
				}
				for p, rec := range want.Telemetry[1][s] {
					g := got.Telemetry[1][s][p]
					if d := maxRelDiff(g.Before, rec.Before); d > tol {
						t.Errorf("seq %d pos %d: telemetry before differs by %g", s, p, d)
					}
					if d := maxRelDiff(g.After, rec.After); d > tol {
						t.Errorf("seq %d pos %d: telemetry after differs by %g", s, p, d)
					}
					for c := range rec.Acted {
						if g.Acted[c] != rec.Acted[c] {
							t.Errorf("seq %d pos %d clamp %d: acted %v, go says %v", s, p, c, g.Acted[c], rec.Acted[c])
						}
					}
				}
			}
			plain, err := cpuM.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, half := range []struct {
				m   *Model
				tol float64
			}{{cpuBF, 5e-2}, {cpuF16, 1e-2}} {
				res, err := half.m.Forward(ctx, seqs, ForwardOptions{AllLogits: true})
				if err != nil {
					t.Fatal(err)
				}
				for s := range seqs {
					d := maxRelDiff(flatten(res.AllLogits[s]), flatten(plain.AllLogits[s]))
					if d > half.tol || d == 0 {
						t.Errorf("seq %d: %s weights on cpu differ from float32 by %g, expected within (0, %g]", s, half.m.weightDType, d, half.tol)
					}
				}
			}
		})
	}
}

// TestFloat16NeedsABackendWithIt checks that float16 weights on a backend
// without float16 (simplego) are refused with an error naming the way out.
func TestFloat16NeedsABackendWithIt(t *testing.T) {
	be, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig("llama")
	_, err = LoadWithOptions(be, cfg, randomSource(cfg, 1), LoadOptions{WeightDType: "float16"})
	if err == nil || !strings.Contains(err.Error(), "cpu") {
		t.Errorf("float16 weights on go: got %v, want an error pointing to the cpu backend", err)
	}
}
