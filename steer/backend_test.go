package steer

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"

	"tether/engine"
)

// TestSameOnOtherBackend runs capping, adding and ablation on the "go"
// backend and on TETHER_TEST_COMPARE_BACKEND (e.g. "xla:cuda") and compares
// tokens and telemetry. It is skipped when that variable is unset.
func TestSameOnOtherBackend(t *testing.T) {
	other := os.Getenv("TETHER_TEST_COMPARE_BACKEND")
	if other == "" {
		t.Skip("set TETHER_TEST_COMPARE_BACKEND=xla:cuda (or another backend) to compare it with the go backend")
	}
	run := func(backend string) ([]int, []TelemetryRecord) {
		m := loadTinyModel(t, backend)
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
	goTokens, goTel := run("go")
	otherTokens, otherTel := run(other)
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
}
