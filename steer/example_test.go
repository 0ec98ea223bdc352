package steer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"

	"tether/axis"
	"tether/engine"
	"tether/internal/testmodels"
	"tether/model"
	"tether/steer"
	"tether/tokenizer"
	"tether/weights"
)

// Example resolves a steering request (as a server receives it, in JSON) for a random tiny
// model and an axis, and generates with it: the capped layers hold their floor at every token.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "steer-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := testmodels.Llama{Hidden: 32, Intermediate: 64, Layers: 4, Heads: 4, KVHeads: 2, Vocab: 300,
		MaxPositions: 128, BOS: 1, EOS: 2}
	if err := weights.WriteRandomModel(dir, cfg.JSON(), 1, weights.F32); err != nil {
		log.Fatal(err)
	}
	if err := tokenizer.WriteTestTokenizer(dir, cfg.Vocab); err != nil {
		log.Fatal(err)
	}
	m, err := model.Open(dir, model.Options{Backend: testmodels.Backend()})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// An axis as probe writes it: one direction per layer (here e_l), the taus of the 25th
	// percentile, and the layer the axis is read at.
	ax := &axis.Axis{Model: "tiny", Layers: 4, Hidden: 32, Percentiles: []float64{25},
		Tau: [][]float32{{0.5, 1, 1.5, 2}}, Extra: map[string]string{axis.LayerKey: "1"}}
	for l := range 4 {
		v := make([]float32, 32)
		v[l] = 1
		ax.Axis = append(ax.Axis, v)
	}

	var spec steer.Spec
	if err := json.Unmarshal([]byte(`{"cap": [{"layers": "2:4", "percentile": 25}]}`), &spec); err != nil {
		log.Fatal(err)
	}
	setup, err := steer.Resolve(ctx, spec, ax, steer.ForModel(m))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(setup.Description)

	ids, err := m.PlainPrompt("Once upon a time")
	if err != nil {
		log.Fatal(err)
	}
	res, err := m.Engine.Generate(ctx, []engine.Request{{Prompt: ids, MaxNewTokens: 8, IgnoreEOS: true}},
		engine.GenerateOptions{Hooks: setup.Compiled.Hooks})
	if err != nil {
		log.Fatal(err)
	}
	taus := map[int]float32{}
	for _, c := range setup.Caps {
		taus[c.Layer] = c.Tau
	}
	held, records := true, 0
	for _, r := range setup.Compiled.Telemetry(res[0]) {
		if tau, capped := taus[r.Layer]; capped {
			records++
			held = held && r.After >= tau-1e-4
		}
	}
	fmt.Printf("%d (token, capped layer) records; every projection after the cap >= tau: %v\n", records, held)
	// Output:
	// cap on layers 2,3 at tau [1.5 2] (percentile 25 of the axis file); projection measured at layer 1 (the axis file's axis_layer metadata)
	// 16 (token, capped layer) records; every projection after the cap >= tau: true
}
