package engine

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"tether/weights"
)

// TestLoadRejectsNonFiniteWeights plants one NaN or Inf in a weight and
// expects Load to name that tensor and the flat index of the planted value.
func TestLoadRejectsNonFiniteWeights(t *testing.T) {
	cases := []struct {
		tensor string
		index  int
		value  float32
	}{
		{"model.layers.1.mlp.down_proj.weight", 37, float32(math.NaN())},
		{"model.layers.2.self_attn.k_proj.weight", 0, float32(math.Inf(1))},
		{"model.norm.weight", 31, float32(math.Inf(-1))},
		{"model.embed_tokens.weight", 96*32 - 1, float32(math.NaN())},
	}
	b := testBackend(t)
	for _, c := range cases {
		t.Run(c.tensor, func(t *testing.T) {
			cfg := tinyConfig(weights.FamilyQwen2)
			src := randomSource(cfg, 42)
			src.data[c.tensor][c.index] = c.value
			m, err := Load(b, cfg, src)
			requireNonFiniteError(t, m, err, c.tensor, c.index, c.value)
		})
	}
}

// requireNonFiniteError fails the test unless Load (which returned m, err)
// refused a NaN or Inf planted at flat index of tensor with an error naming
// both.
func requireNonFiniteError(t *testing.T, m *Model, err error, tensor string, index int, value float32) {
	t.Helper()
	if err == nil {
		m.Close()
		t.Fatalf("Load accepted %v planted in %s", value, tensor)
	}
	for _, want := range []string{`"` + tensor + `"`, "flat index " + strconv.Itoa(index), "not finite"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// scaled multiplies every value of src's tensor name by k.
func scaled(src *memSource, name string, k float32) {
	for i := range src.data[name] {
		src.data[name][i] *= k
	}
}

// loadFrom loads cfg's weights src on the test backend.
func loadFrom(t *testing.T, cfg *weights.Config, src *memSource) *Model {
	t.Helper()
	m, err := Load(testBackend(t), cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// wantNonFinite checks that err is a *NonFiniteError for step and layer
// whose message names both.
func wantNonFinite(t *testing.T, err error, step, layer int) {
	t.Helper()
	var nf *NonFiniteError
	if !errors.As(err, &nf) {
		t.Fatalf("error %v, expected a NonFiniteError", err)
	}
	if nf.Step != step || nf.Layer != layer {
		t.Errorf("NonFiniteError at step %d layer %d, expected step %d layer %d (%v)", nf.Step, nf.Layer, step, layer, err)
	}
	if nf.Count <= 0 || nf.Count > nf.Values {
		t.Errorf("NonFiniteError counts %d of %d values", nf.Count, nf.Values)
	}
	want := "step " + strconv.Itoa(step)
	if layer >= 0 {
		want += " (" + map[bool]string{true: "prefill", false: "decode"}[step == 0] + "): non-finite residual stream after layer " + strconv.Itoa(layer)
	} else {
		want += " (" + map[bool]string{true: "prefill", false: "decode"}[step == 0] + "): non-finite logits"
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

// runPaths runs m on prompts through every path that reaches the graph:
// Forward (with a capture), Generate of one sequence and a batched Generate
// of prompts of different lengths, and returns each path's error.
func runPaths(m *Model, prompts [][]int, hooks Hooks) map[string]error {
	ctx := context.Background()
	errs := map[string]error{}
	_, errs["forward"] = m.Forward(ctx, prompts, ForwardOptions{Hooks: hooks, CaptureLayers: []int{0}})
	_, errs["generate"] = m.Generate(ctx, []Request{{Prompt: prompts[0], MaxNewTokens: 4}}, GenerateOptions{Hooks: hooks})
	var reqs []Request
	for _, p := range prompts {
		reqs = append(reqs, Request{Prompt: p, MaxNewTokens: 4})
	}
	_, errs["batched generate"] = m.Generate(ctx, reqs, GenerateOptions{Hooks: hooks, CaptureLayers: []int{2}})
	return errs
}

// TestNonFiniteStops checks that a residual stream or logits beyond float32
// stop every path with an error naming the step and the first bad layer:
// overflowing weights in one block, huge steering at one layer, and an
// output head that overflows only the logits. The same prompts on the
// unchanged model run without error.
func TestNonFiniteStops(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	cfg := tinyConfig(weights.FamilyQwen2)
	prompts := [][]int{randomTokens(rng, 6, cfg.VocabSize), randomTokens(rng, 3, cfg.VocabSize)}
	for i := range prompts {
		for j, id := range prompts[i] {
			prompts[i][j] = max(id, 1) // keep the padding token 0 out of the prompts
		}
	}
	huge := make([]float32, cfg.HiddenSize)
	for i, v := range unitVector(rng, cfg.HiddenSize) {
		huge[i] = 1e30 * v // as --steer-coef 1e30 would add
	}
	cases := []struct {
		name   string
		change func(src *memSource)
		hooks  Hooks
		layer  int
	}{
		{name: "unchanged", layer: -2},
		// down_proj x 1e25 makes block 1's output ~1e25: its square overflows.
		{name: "overflowing weights in layer 1", change: func(s *memSource) { scaled(s, "model.layers.1.mlp.down_proj.weight", 1e25) }, layer: 1},
		{name: "steering 1e30 at layer 2", hooks: Hooks{2: {Add: huge}}, layer: 2},
		{name: "steering 1e30 at layer 0, newest only", hooks: Hooks{0: {Add: huge, NewestOnly: true}}, layer: 0},
		// final norm x 1e38 and head x 1e3: the products overflow, the residual stream does not.
		{name: "overflowing output head", change: func(s *memSource) {
			scaled(s, "model.norm.weight", 1e38)
			scaled(s, "lm_head.weight", 1e3)
		}, layer: -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := randomSource(cfg, 42)
			if c.change != nil {
				c.change(src)
			}
			m := loadFrom(t, cfg, src)
			for path, err := range runPaths(m, prompts, c.hooks) {
				t.Run(path, func(t *testing.T) {
					if c.layer == -2 {
						if err != nil {
							t.Fatalf("unchanged model: %v", err)
						}
						return
					}
					wantNonFinite(t, err, 0, c.layer)
				})
			}
		})
	}
}

// TestNonFiniteAtDecodeStep makes one token's embedding huge and forces the
// model to generate it (a zero output head makes every logit 0, so greedy
// picks token 0): the prompt is clean, and the first decoding step, which
// feeds that token, must fail at layer 0.
func TestNonFiniteAtDecodeStep(t *testing.T) {
	cfg := tinyConfig(weights.FamilyQwen2)
	src := randomSource(cfg, 42)
	H := cfg.HiddenSize
	for i := range H {
		src.data["model.embed_tokens.weight"][i] = 1e25 // token 0's row
	}
	scaled(src, "lm_head.weight", 0)
	m := loadFrom(t, cfg, src)
	res, err := m.Generate(context.Background(), []Request{{Prompt: []int{5, 9, 3}, MaxNewTokens: 5}}, GenerateOptions{})
	wantNonFinite(t, err, 1, 0)
	if res != nil {
		t.Errorf("Generate returned results %v with its error", res)
	}
}
