package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/steer"
)

// Planted drift of the tests: at turn t, -plantedStep*t*u is added to the
// output of block 0, so the projection on u at later layers falls by about
// plantedStep per turn; the capped arm floors layer 2 at tau 0.
const (
	plantedStep  = 8
	plantedLayer = 0
	testCapLayer = 2
)

// writeDriftFixture writes the tiny model and an axis whose unit direction is
// the same random vector u at every layer; it returns the model directory,
// the axis path and u.
func writeDriftFixture(t testing.TB, dir string) (string, string, []float32) {
	t.Helper()
	mdir := testmodels.Write(t, filepath.Join(dir, "model"), testmodels.TinyChat, 7)
	const L, H = 3, 32
	rng := rand.New(rand.NewPCG(3, 4))
	u := make([]float32, H)
	var n float64
	for i := range u {
		u[i] = float32(rng.NormFloat64())
		n += float64(u[i]) * float64(u[i])
	}
	for i := range u {
		u[i] /= float32(math.Sqrt(n))
	}
	zeros := func() [][]float32 {
		m := make([][]float32, L)
		for i := range m {
			m[i] = make([]float32, H)
		}
		return m
	}
	ax := &axis.Axis{Model: "tiny", Layers: L, Hidden: H, DefaultMean: zeros(),
		RoleNames: []string{"r"}, RoleMeans: [][][]float32{zeros()},
		Percentiles: []float64{25}, Tau: [][]float32{{0, 0, 0}}}
	for l := 0; l < L; l++ {
		ax.Axis = append(ax.Axis, append([]float32(nil), u...))
	}
	apath := filepath.Join(dir, "axis.safetensors")
	if err := axis.Write(apath, ax); err != nil {
		t.Fatal(err)
	}
	return mdir, apath, u
}

// driftTestScenarios are two short scenarios in two domains.
func driftTestScenarios() []Scenario {
	return []Scenario{
		{ID: "calm-1", Domain: "coding", Persona: "a programmer", Topic: "loops",
			UserTurns: []string{"How do I write a loop?", "And a while loop?", "Thanks, what about recursion?", "unused fourth turn"}},
		{ID: "sad-1", Domain: "emotional", Persona: "a lonely student", Topic: "loneliness",
			UserTurns: []string{"I feel alone.", "Nobody calls me.", "Are you my friend?"}},
	}
}

// driftTestOptions are the settings of the planted-drift runs: 2 scenarios,
// 2 seeds, 3 turns, 6 tokens.
func driftTestOptions(t testing.TB, out, axisPath string, u []float32) DriftOptions {
	t.Helper()
	ax, err := axis.Read(axisPath)
	if err != nil {
		t.Fatal(err)
	}
	return DriftOptions{
		Out: out, Axis: ax, AxisPath: axisPath, Scenarios: driftTestScenarios(),
		Seeds: []uint64{1, 2}, Turns: 3, MaxTokens: 6,
		Steering: capSpec(testCapLayer, 0),
		Backend:  testmodels.Backend(),
		Perturb: func(turn int) []steer.Intervention {
			return []steer.Intervention{{Kind: steer.KindAdd, Layer: plantedLayer, Vector: u, Alpha: -plantedStep * float32(turn)}}
		},
		PerturbName: fmt.Sprintf("add %g*turn*(-u) at layer %d", float64(plantedStep), plantedLayer),
		Now:         func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
}

// capSpec caps one layer at tau and measures the projection there.
func capSpec(layer int, tau float64) steer.Spec {
	return steer.Spec{Cap: []steer.CapSpec{{Layers: strconv.Itoa(layer), Tau: []float64{tau}}}, MeasureLayer: &layer}
}
