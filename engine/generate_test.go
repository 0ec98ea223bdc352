package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"tether/weights"
)

// letterDetok decodes id i as the letter 'a' + i%26 (a stand-in tokenizer).
type letterDetok struct{}

func (letterDetok) Decode(ids []int, skipSpecial bool) (string, error) {
	var b strings.Builder
	for _, id := range ids {
		b.WriteByte(byte('a' + id%26))
	}
	return b.String(), nil
}

// argmaxOf returns the index of the largest value (lowest on ties).
func argmaxOf(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestGreedyMatchesForward checks end to end that greedy generation picks,
// at every step, the argmax of a full forward pass over prompt+generated,
// and that Captured covers prompt and generated positions with the same
// values as that forward pass.
func TestGreedyMatchesForward(t *testing.T) {
	ctx := context.Background()
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m, _ := loadTiny(t, fam)
			m.cfg.EOSTokenIDs = nil // let every sequence run to its length
			rng := rand.New(rand.NewPCG(7, 8))
			V := m.cfg.VocabSize
			reqs := []Request{
				{Prompt: randomTokens(rng, 7, V), MaxNewTokens: 9},
				{Prompt: randomTokens(rng, 2, V), MaxNewTokens: 4},
				{Prompt: randomTokens(rng, 12, V), MaxNewTokens: 6},
			}
			res, err := m.Generate(ctx, reqs, GenerateOptions{CaptureLayers: []int{1}})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				if len(r.Tokens) != reqs[i].MaxNewTokens || r.StopReason != StopLength {
					t.Fatalf("request %d: %d tokens, reason %q; expected %d, %q", i, len(r.Tokens), r.StopReason, reqs[i].MaxNewTokens, StopLength)
				}
				seq := append(slices.Clone(reqs[i].Prompt), r.Tokens...)
				full, err := m.Forward(ctx, [][]int{seq}, ForwardOptions{AllLogits: true, CaptureLayers: []int{1}})
				if err != nil {
					t.Fatal(err)
				}
				P := len(reqs[i].Prompt)
				for k, tok := range r.Tokens {
					if want := argmaxOf(full.AllLogits[0][P-1+k]); want != tok {
						t.Errorf("request %d token %d: generated %d, full forward argmax %d", i, k, tok, want)
					}
				}
				if len(r.Captured[1]) != len(seq) {
					t.Fatalf("request %d: captured %d positions, expected %d", i, len(r.Captured[1]), len(seq))
				}
				if d := maxRelDiff(flatten(r.Captured[1]), flatten(full.Captured[1][0])); d > 1e-4 {
					t.Errorf("request %d: captured stream differs from full forward: %g", i, d)
				}
			}

			// The batch equals each request run alone.
			for i, rq := range reqs {
				alone, err := m.Generate(ctx, []Request{rq}, GenerateOptions{CaptureLayers: []int{1}})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(alone[0].Tokens, res[i].Tokens) {
					t.Errorf("request %d: alone %v, in batch %v", i, alone[0].Tokens, res[i].Tokens)
				}
				if d := maxRelDiff(flatten(alone[0].Captured[1]), flatten(res[i].Captured[1])); d > 1e-4 {
					t.Errorf("request %d: captured stream alone differs from batch: %g", i, d)
				}
			}

			// Greedy and seeded sampling are deterministic.
			sampled := slices.Clone(reqs)
			for i := range sampled {
				sampled[i].Sampling = SamplingParams{Temperature: 0.9, TopP: 0.95, Seed: uint64(i)}
			}
			for _, rs := range [][]Request{reqs, sampled} {
				a, err := m.Generate(ctx, rs, GenerateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				b, err := m.Generate(ctx, rs, GenerateOptions{})
				if err != nil {
					t.Fatal(err)
				}
				for i := range a {
					if !slices.Equal(a[i].Tokens, b[i].Tokens) {
						t.Errorf("request %d: two runs differ: %v vs %v", i, a[i].Tokens, b[i].Tokens)
					}
				}
			}
		})
	}
}

func TestGenerateStops(t *testing.T) {
	ctx := context.Background()
	m, _ := loadTiny(t, weights.FamilyLlama)
	prompt := []int{1, 5, 9, 13}
	// The config's EOS ends generation unless the request sets IgnoreEOS.
	m.cfg.EOSTokenIDs = nil
	probe, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m.cfg.EOSTokenIDs = []int{probe[0].Tokens[2]}
	ignored, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12, IgnoreEOS: true}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ignored[0].Tokens, probe[0].Tokens) || ignored[0].StopReason != StopLength {
		t.Errorf("IgnoreEOS: got %v %q, expected %v %q", ignored[0].Tokens, ignored[0].StopReason, probe[0].Tokens, StopLength)
	}
	eos, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first := slices.Index(probe[0].Tokens, probe[0].Tokens[2]); eos[0].StopReason != StopEOS || !slices.Equal(eos[0].Tokens, probe[0].Tokens[:first]) {
		t.Errorf("EOS: got %v %q, expected %v %q", eos[0].Tokens, eos[0].StopReason, probe[0].Tokens[:first], StopEOS)
	}
	m.cfg.EOSTokenIDs = nil
	free, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12}}, GenerateOptions{Detokenizer: letterDetok{}})
	if err != nil {
		t.Fatal(err)
	}
	toks := free[0].Tokens
	text, _ := letterDetok{}.Decode(toks, true)
	if free[0].Text != text {
		t.Errorf("Text %q, expected %q", free[0].Text, text)
	}

	// A stop token at the 4th generated token: 3 tokens kept, reason eos.
	stopTok, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12, StopTokens: []int{toks[3]}}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := slices.Index(toks, toks[3])
	if got := stopTok[0]; got.StopReason != StopEOS || !slices.Equal(got.Tokens, toks[:first]) {
		t.Errorf("stop token: got %v %q, expected %v %q", got.Tokens, got.StopReason, toks[:first], StopEOS)
	}

	// A stop string made of generated tokens 3..4: text ends before it.
	stop := text[3:5]
	cut := strings.Index(text, stop)
	var streamed []int
	ss, err := m.Generate(ctx, []Request{{Prompt: prompt, MaxNewTokens: 12, StopStrings: []string{stop}}},
		GenerateOptions{Detokenizer: letterDetok{}, OnToken: func(seq, tok int) { streamed = append(streamed, tok) }})
	if err != nil {
		t.Fatal(err)
	}
	if got := ss[0]; got.StopReason != StopString || got.Text != text[:cut] || len(got.Tokens) != cut+len(stop) {
		t.Errorf("stop string %q: got %q %q (%d tokens), expected %q %q (%d tokens)", stop, got.Text, got.StopReason, len(got.Tokens), text[:cut], StopString, cut+len(stop))
	}
	if !slices.Equal(streamed, ss[0].Tokens) {
		t.Errorf("OnToken saw %v, Result.Tokens %v", streamed, ss[0].Tokens)
	}

	// Cancellation stops after the current step with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	res, err := m.Generate(cctx, []Request{{Prompt: prompt, MaxNewTokens: 12}}, GenerateOptions{OnToken: func(int, int) {
		if n++; n == 2 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || len(res) != 1 || res[0].StopReason != StopCancelled || len(res[0].Tokens) != 2 {
		t.Errorf("cancel: err %v, results %+v", err, res)
	}

	// The context length bounds generation: the stop reason says which limit was hit, and every
	// position up to the context end is captured.
	for _, tc := range []struct {
		prompt, maxNew, wantTokens int
		wantReason                 string
	}{
		{m.cfg.MaxPositions - 3, 10, 3, StopContext},
		{m.cfg.MaxPositions - 3, 3, 3, StopLength}, // both limits at once: the request's own
		{m.cfg.MaxPositions - 3, 2, 2, StopLength},
		{m.cfg.MaxPositions, 5, 0, StopContext},
	} {
		long := make([]int, tc.prompt)
		for i := range long {
			long[i] = 1 + i%50
		}
		lr, err := m.Generate(ctx, []Request{{Prompt: long, MaxNewTokens: tc.maxNew, IgnoreEOS: true}}, GenerateOptions{CaptureLayers: []int{0}})
		if err != nil {
			t.Fatal(err)
		}
		if len(lr[0].Tokens) != tc.wantTokens || lr[0].StopReason != tc.wantReason {
			t.Errorf("prompt %d, max new %d: %d tokens (%q), expected %d (%q)", tc.prompt, tc.maxNew, len(lr[0].Tokens), lr[0].StopReason, tc.wantTokens, tc.wantReason)
		}
		if got := len(lr[0].Captured[0]); got != tc.prompt+tc.wantTokens {
			t.Errorf("prompt %d, max new %d: %d positions captured, expected %d", tc.prompt, tc.maxNew, got, tc.prompt+tc.wantTokens)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	ctx := context.Background()
	m, _ := loadTiny(t, weights.FamilyQwen3)
	tooLong := make([]int, m.cfg.MaxPositions+1)
	cases := []struct {
		name string
		reqs []Request
		opts GenerateOptions
		want string
	}{
		{"no requests", nil, GenerateOptions{}, "no requests"},
		{"empty prompt", []Request{{MaxNewTokens: 3}}, GenerateOptions{}, "empty"},
		{"prompt too long", []Request{{Prompt: tooLong, MaxNewTokens: 3}}, GenerateOptions{}, "longer than the model's context"},
		{"token outside vocab", []Request{{Prompt: []int{1, 500}, MaxNewTokens: 3}}, GenerateOptions{}, "outside the vocabulary"},
		{"no max tokens", []Request{{Prompt: []int{1}}}, GenerateOptions{}, "MaxNewTokens"},
		{"stop strings without detokenizer", []Request{{Prompt: []int{1}, MaxNewTokens: 2, StopStrings: []string{"x"}}}, GenerateOptions{}, "Detokenizer"},
		{"bad sampling", []Request{{Prompt: []int{1}, MaxNewTokens: 2, Sampling: SamplingParams{Temperature: -1}}}, GenerateOptions{}, "temperature"},
		{"bad capture layer", []Request{{Prompt: []int{1}, MaxNewTokens: 2}}, GenerateOptions{CaptureLayers: []int{9}}, "capture layer"},
	}
	for _, c := range cases {
		_, err := m.Generate(ctx, c.reqs, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, expected one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	b := testBackend(t)
	cfg := tinyConfig(weights.FamilyQwen2)
	cases := []struct {
		name   string
		mutate func(s *memSource)
		want   []string
	}{
		{"missing tensor", func(s *memSource) { delete(s.data, "model.layers.1.mlp.up_proj.weight") },
			[]string{"model.layers.1.mlp.up_proj.weight", "missing"}},
		{"wrong shape", func(s *memSource) { s.shapes["model.layers.2.self_attn.k_proj.weight"] = []int{32, 16} },
			[]string{"model.layers.2.self_attn.k_proj.weight", "[32 16]", "[16 32]"}},
		{"missing bias", func(s *memSource) { delete(s.data, "model.layers.0.self_attn.v_proj.bias") },
			[]string{"model.layers.0.self_attn.v_proj.bias"}},
		{"missing lm_head", func(s *memSource) { delete(s.data, "lm_head.weight") }, []string{"lm_head.weight"}},
	}
	for _, c := range cases {
		src := randomSource(cfg, 1)
		c.mutate(src)
		_, err := Load(b, cfg, src)
		if err == nil {
			t.Errorf("%s: expected an error", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", c.name, err, w)
			}
		}
	}
	bad := *cfg
	bad.NumKVHeads = 3
	if _, err := Load(b, &bad, randomSource(cfg, 1)); err == nil || !strings.Contains(err.Error(), "NumKVHeads") {
		t.Errorf("bad config: error %v", err)
	}
}

func TestNewBackendNames(t *testing.T) {
	for name, want := range map[string]string{"": "cpu", "cpu": "cpu", "cpu:workers=1": "cpu", "go": "go", "go:dotgeneral_small,ops_sequential": "go"} {
		b, err := NewBackend(name)
		if err != nil {
			t.Errorf("NewBackend(%q): %v", name, err)
		} else if b.String() != want {
			t.Errorf("NewBackend(%q) is %q, want %q", name, b.String(), want)
		}
	}
	for _, name := range []string{"tpu", "go:no_such_option", "xla:", "cpu:workers=0", "cpu:no_such_option"} {
		if _, err := NewBackend(name); err == nil {
			t.Errorf("NewBackend(%q): expected an error", name)
		}
	}
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	_, err := NewBackend("xla:nosuchplugin")
	if err == nil || !(strings.Contains(err.Error(), "pjrt_c_api_nosuchplugin_plugin.so") || strings.Contains(err.Error(), "without cgo")) {
		t.Errorf("missing plugin: error %v, expected one naming the searched files", err)
	}
}

// TestBatchCompaction generates for requests of very different lengths, so
// that the batch shrinks twice as sequences finish, and checks every result
// against the same request run alone.
func TestBatchCompaction(t *testing.T) {
	ctx := context.Background()
	for _, fam := range []weights.Family{weights.FamilyLlama, weights.FamilyGemma3} {
		m, _ := loadTiny(t, fam)
		rng := rand.New(rand.NewPCG(31, 32))
		var reqs []Request
		for i, n := range []int{1, 2, 2, 3, 7, 11} {
			reqs = append(reqs, Request{Prompt: randomTokens(rng, 2+i, m.cfg.VocabSize), MaxNewTokens: n, IgnoreEOS: true,
				Sampling: SamplingParams{Temperature: 0.8, Seed: uint64(i)}})
		}
		opts := GenerateOptions{CaptureLayers: []int{0, 2}, Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(unitVector(rng, m.cfg.HiddenSize), 0)}, Record: true}}}
		before := m.compactions
		res, err := m.Generate(ctx, reqs, opts)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.compactions - before; got < 2 {
			t.Errorf("%s: the batch was compacted %d times, expected at least 2", fam, got)
		}
		for i, rq := range reqs {
			alone, err := m.Generate(ctx, []Request{rq}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(alone[0].Tokens, res[i].Tokens) {
				t.Errorf("%s request %d: alone %v, in batch %v", fam, i, alone[0].Tokens, res[i].Tokens)
				continue
			}
			for _, l := range opts.CaptureLayers {
				if len(res[i].Captured[l]) != len(rq.Prompt)+len(res[i].Tokens) {
					t.Errorf("%s request %d: %d captured positions, expected %d", fam, i, len(res[i].Captured[l]), len(rq.Prompt)+len(res[i].Tokens))
				}
				if d := maxRelDiff(flatten(res[i].Captured[l]), flatten(alone[0].Captured[l])); d > 1e-4 {
					t.Errorf("%s request %d layer %d: captures differ from the request alone: %g", fam, i, l, d)
				}
			}
			for k := range res[i].Telemetry {
				if d := maxRelDiff(res[i].Telemetry[k][1].Before, alone[0].Telemetry[k][1].Before); d > 1e-4 {
					t.Errorf("%s request %d token %d: telemetry differs from the request alone", fam, i, k)
				}
			}
		}
	}
}
