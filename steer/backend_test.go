package steer

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"tether/engine"
	"tether/internal/testmodels"
	"tether/weights"
)

// bf16TelemetryTol is the largest difference TestSameOnOtherBackend allows
// between a projection on float32 weights and one on bfloat16 weights,
// relative to max(|projection|, 1): bfloat16 keeps 8 significant bits
// (relative rounding 2^-9, about 0.002, per weight) and the rounding
// compounds over the tiny model's blocks. On the go backend the largest
// difference seen was 3.3e-4 (the test logs it); 1e-2 leaves room for a GPU's
// other summation order and its own bfloat16 products.
const bf16TelemetryTol = 1e-2

// TestSameOnOtherBackend runs capping, adding and ablation with telemetry on
// the "go" backend and on TETHER_TEST_COMPARE_BACKEND (e.g. "xla:cuda"; "go"
// compares go with itself) and compares them: with float32 weights on both,
// tokens must be equal and telemetry within 1e-4 (the capping arithmetic
// itself); with bfloat16 weights on the other backend (XLA's default),
// telemetry up to the first differing token within bf16TelemetryTol. It is
// skipped when that variable is unset.
func TestSameOnOtherBackend(t *testing.T) {
	other := os.Getenv("TETHER_TEST_COMPARE_BACKEND")
	if other == "" {
		t.Skip("set TETHER_TEST_COMPARE_BACKEND=xla:cuda (or another backend) to compare it with the go backend")
	}
	run := func(backend, dtype string) ([]int, []TelemetryRecord) {
		m := loadTinyModelDType(t, backend, dtype)
		cfg := m.Config()
		rng := rand.New(rand.NewPCG(21, 22))
		u := randomUnit(rng, cfg.HiddenSize)
		c, err := Compile(Plan{Record: true, Interventions: []Intervention{
			{Kind: KindCap, Layer: 1, Vector: u, Tau: 0.01},
			{Kind: KindAdd, Layer: 2, Vector: randomUnit(rng, cfg.HiddenSize), Alpha: 0.05},
			{Kind: KindCap, Layer: 3, Vector: u, Tau: 0.02},
			{Kind: KindAblate, Layer: 4, Vector: randomUnit(rng, cfg.HiddenSize)},
		}}, cfg.HiddenSize, cfg.NumLayers)
		if err != nil {
			t.Fatal(err)
		}
		prompt := append([]int{1}, randomTokens(rng, 10, cfg.VocabSize)...)
		res, err := m.Generate(context.Background(), []engine.Request{{Prompt: prompt, MaxNewTokens: 12, IgnoreEOS: true}},
			engine.GenerateOptions{Hooks: c.Hooks})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Tokens, c.Telemetry(res[0])
	}
	goTokens, goTel := run("go", "float32")
	t.Run("float32", func(t *testing.T) {
		otherTokens, otherTel := run(other, "float32")
		if !slices.Equal(goTokens, otherTokens) {
			t.Fatalf("tokens differ: go %v, %s %v", goTokens, other, otherTokens)
		}
		if len(goTel) != len(otherTel) {
			t.Fatalf("%d telemetry records on go, %d on %s", len(goTel), len(otherTel), other)
		}
		for i := range goTel {
			a, b := goTel[i], otherTel[i]
			if a.Token != b.Token || a.Layer != b.Layer || math.Abs(float64(a.Before-b.Before)) > 1e-4 || math.Abs(float64(a.After-b.After)) > 1e-4 {
				t.Errorf("record %d: go %+v, %s %+v", i, a, other, b)
			}
		}
	})
	t.Run("bfloat16", func(t *testing.T) {
		otherTokens, otherTel := run(other, "bfloat16")
		same := 0 // records of the tokens both runs generated alike (and the one after)
		for same < len(goTokens) && same < len(otherTokens) && goTokens[same] == otherTokens[same] {
			same++
		}
		worst := 0.0
		compared := 0
		for i := 0; i < len(goTel) && i < len(otherTel); i++ {
			a, b := goTel[i], otherTel[i]
			if a.Token > same {
				break
			}
			if a.Token != b.Token || a.Layer != b.Layer {
				t.Fatalf("record %d: go %+v, %s %+v: different token or layer", i, a, other, b)
			}
			for _, d := range [][2]float32{{a.Before, b.Before}, {a.After, b.After}} {
				rel := math.Abs(float64(d[0]-d[1])) / math.Max(math.Abs(float64(d[0])), 1)
				worst = max(worst, rel)
				if rel > bf16TelemetryTol {
					t.Errorf("record %d: go (float32) %+v, %s (bfloat16) %+v: relative difference %.3g over %g", i, a, other, b, rel, bf16TelemetryTol)
				}
			}
			compared++
		}
		if compared == 0 {
			t.Fatal("no telemetry record compared")
		}
		t.Logf("bfloat16 weights on %s: %d of %d tokens as on go (float32); largest telemetry difference %.3g of max(|projection|, 1) over %d records (tolerance %g)",
			other, same, len(goTokens), worst, compared, bf16TelemetryTol)
	})
}

// loadTinyModelDType is loadTinyModel with the weights stored in dtype.
func loadTinyModelDType(t testing.TB, backend, dtype string) *engine.Model {
	t.Helper()
	dir := testmodels.WriteWeights(t, t.TempDir(), tinyLlama, 7)
	cfg, ckpt, err := weights.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	b, err := engine.NewBackend(backend)
	if err != nil {
		t.Skipf("backend %q unavailable: %v", backend, err)
	}
	m, err := engine.LoadWithOptions(b, cfg, ckpt, engine.LoadOptions{WeightDType: dtype})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}
