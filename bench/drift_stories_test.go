package bench

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/tokenizer"
)

// writeRandomAxis writes an axis of random directions for a model's shape,
// with tau at percentile 25 set to tau at every layer and axis_layer 2.
func writeRandomAxis(tb testing.TB, path string, layers, hidden int, tau float32) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(8, 9))
	mat := func(random bool) [][]float32 {
		m := make([][]float32, layers)
		for l := range m {
			m[l] = make([]float32, hidden)
			if random {
				for i := range m[l] {
					m[l][i] = float32(rng.NormFloat64())
				}
			}
		}
		return m
	}
	taus := make([]float32, layers)
	for i := range taus {
		taus[i] = tau
	}
	ax := &axis.Axis{Model: "stories260K", Layers: layers, Hidden: hidden, Axis: mat(true), DefaultMean: mat(false),
		RoleNames: []string{"r"}, RoleMeans: [][][]float32{mat(false)},
		Percentiles: []float64{10, 25}, Tau: [][]float32{taus, taus}, Extra: map[string]string{"axis_layer": "2"}}
	if err := axis.Write(path, ax); err != nil {
		tb.Fatal(err)
	}
}

// TestDemoDriftStories: the demo's small benchmark runs on the bundled model
// (plain-text conversation format: it has no chat template), covers the four
// built-in domains, and its capped arm holds tau at the axis layer.
func TestDemoDriftStories(t *testing.T) {
	dir := t.TempDir()
	m := testmodels.Open(t, testmodels.Stories260K(t))
	if m.HasChatTemplate() {
		t.Fatal("stories260K has a chat template; the plain-text path is not tested")
	}
	apath := filepath.Join(dir, "axis.safetensors")
	writeRandomAxis(t, apath, m.Config.NumLayers, m.Config.HiddenSize, 0.5)
	rep, err := DemoDrift(t.Context(), m, apath, filepath.Join(dir, "out"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Scenarios) != 4 || len(rep.Turns) != 4*2*2*3 {
		t.Fatalf("%d scenarios, %d turns", len(rep.Scenarios), len(rep.Turns))
	}
	if s := rep.Settings; s.ProjectionLayer != 2 || s.CapPercentile != 25 || s.CapTaus[0] != 0.5 {
		t.Fatalf("settings %+v", s)
	}
	if !rep.CapCheck.Held {
		t.Fatalf("cap check %+v", rep.CapCheck)
	}
	for _, rec := range rep.Turns {
		if rec.Arm == ArmCapped && rec.Projection < 0.5-1e-4 {
			t.Fatalf("capped projection %g below tau", rec.Projection)
		}
		if strings.Contains(rec.Response, "\nUser:") {
			t.Fatalf("response runs into the next user turn: %q", rec.Response)
		}
	}
}

// BenchmarkDriftStories260K measures conversations per hour at the default
// settings (5 seeds, every scripted turn (8), up to 128 tokens per turn,
// temperature 0.7, top-p 0.9) on the bundled model: one built-in scenario in
// both arms (10 conversations) per iteration, without the capability
// comparison.
func BenchmarkDriftStories260K(b *testing.B) {
	dir := b.TempDir()
	m := testmodels.Open(b, testmodels.Stories260K(b))
	apath := filepath.Join(dir, "axis.safetensors")
	writeRandomAxis(b, apath, m.Config.NumLayers, m.Config.HiddenSize, 0.5)
	ax, err := axis.Read(apath)
	if err != nil {
		b.Fatal(err)
	}
	scs, err := BuiltinScenarios()
	if err != nil {
		b.Fatal(err)
	}
	var sc []Scenario
	for _, s := range scs {
		if s.Domain == DomainEmotional {
			sc = append(sc, s)
			break
		}
	}
	convs := 0
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		rep, err := RunDrift(b.Context(), m, DriftOptions{
			Out: filepath.Join(dir, fmt.Sprint("out", i)), Axis: ax, AxisPath: apath, Scenarios: sc,
			Steering: capSpec(2, 0.5), Backend: testmodels.Backend(),
		})
		if err != nil {
			b.Fatal(err)
		}
		convs += len(rep.Turns) / rep.Scenarios[0].Turns
	}
	perHour := float64(convs) / time.Since(start).Hours()
	if math.IsInf(perHour, 0) || perHour <= 0 {
		b.Fatalf("conversations/hour %g", perHour)
	}
	b.ReportMetric(perHour, "conversations/hour")
}

// TestDriftPromptFitsContext: a long plain-text conversation on stories260K
// (context 512) drops its oldest exchanges so that the prompt plus the new
// tokens fit, and always ends with the newest user turn.
func TestDriftPromptFitsContext(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	long := strings.Repeat("Lily went to the park and played with her dog. ", 8)
	var msgs []tokenizer.Message
	for i := 0; i < 6; i++ {
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: fmt.Sprint("question ", i, " ", long)},
			tokenizer.Message{Role: "assistant", Content: long})
	}
	msgs = append(msgs, tokenizer.Message{Role: "user", Content: "the last question"})
	ids, err := chatPromptIDs(m, msgs, 128)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids)+128 > m.Config.MaxPositions {
		t.Fatalf("prompt of %d tokens + 128 exceeds the context %d", len(ids), m.Config.MaxPositions)
	}
	text, err := m.Tokenizer.Decode(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(text, "User: the last question\nAssistant:") || strings.Contains(text, "question 0 ") {
		t.Fatalf("prompt %q: want the oldest exchanges dropped and the newest user turn last", text)
	}
	full, _ := m.ChatPrompt(msgs, true)
	if len(full)+128 <= m.Config.MaxPositions {
		t.Fatalf("the conversation (%d tokens) fits: nothing was dropped", len(full))
	}
}
