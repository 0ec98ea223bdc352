package steer

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"tether/engine"
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
