package steer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"tether/engine"
	"tether/internal/testmodels"
)

// hookStructure is what the engine compiles a graph for (see
// engine.LayerHook): hooked layers, whether each adds, its clamp count and
// flags. Values are graph inputs and are left out.
func hookStructure(h engine.Hooks) string {
	var layers []int
	for l := range h {
		layers = append(layers, l)
	}
	slices.Sort(layers)
	s := ""
	for _, l := range layers {
		hk := h[l]
		s += fmt.Sprintf("%d:%v,%d,%v,%v;", l, hk.Add != nil, len(hk.Clamps), hk.NewestOnly, hk.Record)
	}
	return s
}

// TestValuesDoNotChangeStructure checks that plans differing only in tau,
// alpha, ablation value and vectors compile to hooks of the same structure,
// so the engine reuses its graph (the engine's tests check that equal
// structure means no recompilation).
func TestValuesDoNotChangeStructure(t *testing.T) {
	const H, L = 8, 6
	plan := func(scale float32) Plan {
		v := make([]float32, H)
		for i := range v {
			v[i] = scale * float32(i+1)
		}
		return Plan{Record: true, Monitor: map[int][]float32{5: v}, Interventions: []Intervention{
			{Kind: KindCap, Layer: 1, Vector: v, Tau: scale},
			{Kind: KindCap, Layer: 2, Vector: v, Tau: float32(math.Inf(-1))},
			{Kind: KindAdd, Layer: 2, Vector: v, Alpha: scale - 1},
			{Kind: KindAblate, Layer: 3, Vector: v, Value: scale},
		}}
	}
	a, err := Compile(plan(1), H, L)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Compile(plan(-3.5), H, L)
	if err != nil {
		t.Fatal(err)
	}
	if hookStructure(a.Hooks) != hookStructure(b.Hooks) {
		t.Fatalf("structure changed with values: %s vs %s", hookStructure(a.Hooks), hookStructure(b.Hooks))
	}
	if want := "1:false,1,false,true;2:true,1,false,true;3:false,1,false,true;5:false,1,false,true;"; hookStructure(a.Hooks) != want {
		t.Fatalf("structure %s, want %s", hookStructure(a.Hooks), want)
	}
	if !slices.Equal(a.RecordedLayers(), []int{1, 2, 3, 5}) {
		t.Fatalf("recorded layers %v", a.RecordedLayers())
	}
}

// TestValuesDoNotRecompile generates with plans that differ only in values
// and checks the engine built no new graph.
func TestValuesDoNotRecompile(t *testing.T) {
	m := loadTinyModel(t, testmodels.Backend())
	cfg := m.Config()
	rng := rand.New(rand.NewPCG(31, 32))
	prompt := append([]int{1}, randomTokens(rng, 6, cfg.VocabSize)...)
	gen := func(tau, alpha, value float32) {
		c, err := Compile(Plan{Record: true, Interventions: []Intervention{
			{Kind: KindCap, Layer: 1, Vector: randomUnit(rng, cfg.HiddenSize), Tau: tau},
			{Kind: KindAdd, Layer: 2, Vector: randomUnit(rng, cfg.HiddenSize), Alpha: alpha},
			{Kind: KindAblate, Layer: 4, Vector: randomUnit(rng, cfg.HiddenSize), Value: value},
		}}, cfg.HiddenSize, cfg.NumLayers)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Generate(context.Background(), []engine.Request{{Prompt: prompt, MaxNewTokens: 4, IgnoreEOS: true}},
			engine.GenerateOptions{Hooks: c.Hooks}); err != nil {
			t.Fatal(err)
		}
	}
	gen(0.1, 0.5, 0)
	before := m.Compilations()
	gen(float32(math.Inf(-1)), 0, 0.3)
	gen(-2, 7, -1)
	if after := m.Compilations(); after != before {
		t.Fatalf("changing tau, alpha, value and vectors built %d new graphs", after-before)
	}
}
