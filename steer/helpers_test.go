package steer

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"tether/axis"
	"tether/engine"
	"tether/internal/testmodels"
	"tether/weights"
)

// tinyLlama is the small Llama-family model of the steering tests.
var tinyLlama = testmodels.Llama{Hidden: 64, Intermediate: 128, Layers: 6, Heads: 4, KVHeads: 2, Vocab: 300,
	MaxPositions: 256, BOS: 1, EOS: 2}

// loadTinyModel writes a random tiny model to a temporary directory and
// loads it on the test backend.
func loadTinyModel(t testing.TB, backend string) *engine.Model {
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
	m, err := engine.Load(b, cfg, ckpt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func randomTokens(rng *rand.Rand, n, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 3 + rng.IntN(vocab-3) // avoid BOS/EOS
	}
	return out
}

func randomUnit(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	u, err := axis.UnitVector(v)
	if err != nil {
		panic(err)
	}
	return u
}

func flat(rows [][]float32) []float32 {
	var out []float32
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func bitEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// maxAbsDiff returns max |a-b|.
func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func tempPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}
