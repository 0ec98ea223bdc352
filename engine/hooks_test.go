package engine

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// floorClamp is a floor at lo on the projection onto the unit vector u.
func floorClamp(u []float32, lo float32) Clamp {
	return Clamp{Dir: u, Lo: lo, Hi: float32(math.Inf(1))}
}

// unitVector returns a random unit vector of length n.
func unitVector(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	var norm float64
	for i := range v {
		x := rng.NormFloat64()
		v[i] = float32(x)
		norm += x * x
	}
	for i := range v {
		v[i] /= float32(math.Sqrt(norm))
	}
	return v
}

func projection(h, u []float32) float64 {
	var p float64
	for i := range h {
		p += float64(h[i]) * float64(u[i])
	}
	return p
}

var (
	negInf = float32(math.Inf(-1))
	posInf = float32(math.Inf(1))
)

func TestHooks(t *testing.T) {
	ctx := context.Background()
	for _, fam := range allFamilies {
		t.Run(string(fam), func(t *testing.T) {
			m, src := loadTiny(t, fam)
			rng := rand.New(rand.NewPCG(5, 6))
			H, V := m.cfg.HiddenSize, m.cfg.VocabSize
			seqs := [][]int{randomTokens(rng, 9, V), randomTokens(rng, 4, V)}
			all := []int{0, 1, 2}
			base, err := m.Forward(ctx, seqs, ForwardOptions{AllLogits: true, CaptureLayers: all})
			if err != nil {
				t.Fatal(err)
			}
			u := unitVector(rng, H)

			// Open clamps and no Add: bit-identical to no hook.
			open, err := m.Forward(ctx, seqs, ForwardOptions{AllLogits: true, CaptureLayers: all,
				Hooks: Hooks{1: {Clamps: []Clamp{{Dir: u, Lo: negInf, Hi: posInf}}, Record: true}}})
			if err != nil {
				t.Fatal(err)
			}
			for b := range seqs {
				if !slices.Equal(flatten(open.AllLogits[b]), flatten(base.AllLogits[b])) {
					t.Errorf("seq %d: an open clamp changed the logits", b)
				}
				for _, l := range all {
					if !slices.Equal(flatten(open.Captured[l][b]), flatten(base.Captured[l][b])) {
						t.Errorf("seq %d layer %d: an open clamp changed the residual stream", b, l)
					}
				}
			}

			// A cap at the median projection of layer 1: every position ends >= tau,
			// layer 0 is untouched, and telemetry agrees with the captured stream.
			var projs []float64
			for b := range seqs {
				for _, h := range base.Captured[1][b] {
					projs = append(projs, projection(h, u))
				}
			}
			slices.Sort(projs)
			tau := float32(projs[len(projs)/2])
			compiles := m.compiles.Load()
			capped, err := m.Forward(ctx, seqs, ForwardOptions{AllLogits: true, CaptureLayers: all,
				Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(u, tau)}, Record: true}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.compiles.Load(); got != compiles {
				t.Errorf("changing clamp values recompiled the graph (%d -> %d builds)", compiles, got)
			}
			acted := 0
			for b := range seqs {
				if !slices.Equal(flatten(capped.Captured[0][b]), flatten(base.Captured[0][b])) {
					t.Errorf("seq %d: a hook on layer 1 changed layer 0", b)
				}
				for pos, h := range capped.Captured[1][b] {
					p := projection(h, u)
					if p < float64(tau)-1e-4*math.Max(1, math.Abs(float64(tau))) {
						t.Errorf("seq %d pos %d: projection %g below the cap %g", b, pos, p, tau)
					}
					rec := capped.Telemetry[1][b][pos]
					before := projection(base.Captured[1][b][pos], u)
					if math.Abs(float64(rec.Before[0])-before) > 1e-4 || math.Abs(float64(rec.After[0])-p) > 1e-4 {
						t.Errorf("seq %d pos %d: telemetry before/after %v/%v, stream says %g/%g", b, pos, rec.Before[0], rec.After[0], before, p)
					}
					if math.Abs(before-float64(tau)) > 1e-5 && rec.Acted[0] != (before < float64(tau)) {
						t.Errorf("seq %d pos %d: Acted %v with projection %g and tau %g", b, pos, rec.Acted[0], before, tau)
					}
					if rec.Acted[0] {
						acted++
					}
				}
			}
			if acted == 0 {
				t.Errorf("the cap at the median never acted")
			}

			// Add plus clamps against the reference implementation; changing only
			// values (another direction, threshold and Add) must not recompile.
			ref := &refModel{cfg: m.cfg, src: src}
			for round := range 2 {
				add := make([]float32, H)
				for i := range add {
					add[i] = float32(rng.NormFloat64() * 0.3)
				}
				hk := &LayerHook{Add: add, Clamps: []Clamp{floorClamp(unitVector(rng, H), 0.5), {Dir: unitVector(rng, H), Lo: -0.2, Hi: 0.2}}}
				hooks := Hooks{0: hk, 2: {Clamps: []Clamp{{Dir: unitVector(rng, H), Lo: 0, Hi: 0}}}}
				before := m.compiles.Load()
				res, err := m.Forward(ctx, seqs, ForwardOptions{AllLogits: true, CaptureLayers: all, Hooks: hooks})
				if err != nil {
					t.Fatal(err)
				}
				if round == 1 && m.compiles.Load() != before {
					t.Errorf("changing Add and clamp values recompiled the graph")
				}
				for b, seq := range seqs {
					wantLogits, wantHidden := ref.forward(seq, hooks)
					if d := maxRelDiff(flatten(res.AllLogits[b]), toF32(wantLogits)); d > 1e-4 {
						t.Errorf("round %d seq %d: hooked logits differ from reference: %g", round, b, d)
					}
					for _, l := range all {
						if d := maxRelDiff(flatten(res.Captured[l][b]), toF32(wantHidden[l])); d > 1e-4 {
							t.Errorf("round %d seq %d layer %d: hooked stream differs from reference: %g", round, b, l, d)
						}
					}
					// Ablation (Lo = Hi = 0) leaves no component along the direction.
					for pos, h := range res.Captured[2][b] {
						if p := projection(h, hooks[2].Clamps[0].Dir); math.Abs(p) > 1e-4 {
							t.Errorf("seq %d pos %d: ablated projection %g, expected 0", b, pos, p)
						}
					}
				}
			}

			// NewestOnly: only the last position of the step changes.
			newest, err := m.Forward(ctx, seqs, ForwardOptions{CaptureLayers: []int{1},
				Hooks: Hooks{1: {Add: u, NewestOnly: true}}})
			if err != nil {
				t.Fatal(err)
			}
			for b, seq := range seqs {
				n := len(seq)
				if !slices.Equal(flatten(newest.Captured[1][b][:n-1]), flatten(base.Captured[1][b][:n-1])) {
					t.Errorf("seq %d: NewestOnly hook changed earlier positions", b)
				}
				last, baseLast := newest.Captured[1][b][n-1], base.Captured[1][b][n-1]
				if d := projection(last, u) - projection(baseLast, u); math.Abs(d-1) > 1e-4 {
					t.Errorf("seq %d: NewestOnly Add of a unit vector moved the projection by %g, expected 1", b, d)
				}
			}
		})
	}
}

func TestHookValidation(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	H := m.cfg.HiddenSize
	u := make([]float32, H)
	u[0] = 1
	twice := make([]float32, H)
	twice[1] = 2
	cases := []struct {
		name  string
		hooks Hooks
	}{
		{"layer out of range", Hooks{3: {Add: u}}},
		{"negative layer", Hooks{-1: {Add: u}}},
		{"short Add", Hooks{0: {Add: u[:3]}}},
		{"short Dir", Hooks{0: {Clamps: []Clamp{{Dir: u[:2], Lo: 0, Hi: 1}}}}},
		{"Lo above Hi", Hooks{0: {Clamps: []Clamp{{Dir: u, Lo: 2, Hi: 1}}}}},
		{"Dir not unit", Hooks{0: {Clamps: []Clamp{{Dir: twice, Lo: 0, Hi: 1}}}}},
		{"NaN Lo", Hooks{0: {Clamps: []Clamp{{Dir: u, Lo: float32(math.NaN()), Hi: 1}}}}},
	}
	for _, c := range cases {
		if _, err := m.Forward(context.Background(), [][]int{{1, 2}}, ForwardOptions{Hooks: c.hooks}); err == nil {
			t.Errorf("%s: expected an error", c.name)
		}
	}
}

// TestGenerateWithCap checks hooks during generation: every captured
// position (prompt and generated) respects the cap, and each generated
// token carries telemetry consistent with the cap.
func TestGenerateWithCap(t *testing.T) {
	m, _ := loadTiny(t, "gemma2")
	rng := rand.New(rand.NewPCG(21, 22))
	u := unitVector(rng, m.cfg.HiddenSize)
	const tau = 0.5
	reqs := []Request{{Prompt: randomTokens(rng, 6, m.cfg.VocabSize), MaxNewTokens: 8, IgnoreEOS: true},
		{Prompt: randomTokens(rng, 3, m.cfg.VocabSize), MaxNewTokens: 5, IgnoreEOS: true}}
	res, err := m.Generate(context.Background(), reqs, GenerateOptions{
		Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(u, tau)}, Record: true}}, CaptureLayers: []int{1}})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if len(r.Telemetry) != len(r.Tokens) {
			t.Fatalf("request %d: %d telemetry entries for %d tokens", i, len(r.Telemetry), len(r.Tokens))
		}
		for k, tel := range r.Telemetry {
			rec, ok := tel[1]
			if !ok {
				t.Fatalf("request %d token %d: no telemetry for layer 1", i, k)
			}
			if rec.After[0] < tau-1e-4 || rec.Acted[0] != (rec.Before[0] < tau) {
				t.Errorf("request %d token %d: telemetry %+v inconsistent with the cap %g", i, k, rec, tau)
			}
		}
		for pos, h := range r.Captured[1] {
			if p := projection(h, u); p < tau-1e-4 {
				t.Errorf("request %d position %d: projection %g below the cap", i, pos, p)
			}
		}
	}
}

// TestHookValuesUploadedOncePerChange checks that a generation with fixed
// hooks builds the hook value tensors once (not at every step), keeps them
// on the device (never donated), and that a new threshold set between steps
// rebuilds them once and acts from the next step on, without recompiling.
func TestHookValuesUploadedOncePerChange(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	rng := rand.New(rand.NewPCG(31, 32))
	u := unitVector(rng, m.cfg.HiddenSize)
	const tau1, newTauAt, steps = 0.25, 10, 32
	hooks := Hooks{1: {Clamps: []Clamp{{Dir: u, Lo: tau1, Hi: posInf}}, Record: true}}
	req := []Request{{Prompt: randomTokens(rng, 5, m.cfg.VocabSize), MaxNewTokens: steps, IgnoreEOS: true}}
	tolerance := func(tau float64) float64 { return 1e-4 * math.Max(1, math.Abs(tau)) }

	first, err := m.Generate(context.Background(), req, GenerateOptions{Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(first[0].Telemetry); got != steps {
		t.Fatalf("%d telemetry entries, expected %d", got, steps)
	}
	if got := m.hookValues.builds; got != 1 {
		t.Errorf("a %d-token generation with fixed hooks built the hook tensors %d times, expected once", steps, got)
	}
	for i, hk := range m.hookValues.tensors {
		hk.each(func(tt **tensors.Tensor) {
			if !(*tt).Ok() || !(*tt).IsOnDevice(0) {
				t.Errorf("hook %d: a cached hook tensor %s is not kept on the device", i, (*tt).Shape())
			}
		})
	}
	// A threshold above every projection seen: it acts wherever it is in force.
	maxBefore := math.Inf(-1)
	for _, tel := range first[0].Telemetry {
		maxBefore = math.Max(maxBefore, float64(tel[1].Before[0]))
	}
	tau2 := float32(maxBefore + 1)

	compiles := m.Compilations()
	kept := 0
	second, err := m.Generate(context.Background(), req, GenerateOptions{Hooks: hooks,
		OnToken: func(_, _ int) {
			if kept == newTauAt {
				hooks[1].Clamps[0].Lo = tau2
			}
			kept++
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.hookValues.builds; got != 2 {
		t.Errorf("a new threshold built the hook tensors %d times in all, expected twice (once per configuration)", got)
	}
	if got := m.Compilations(); got != compiles {
		t.Errorf("a new threshold recompiled the graph (%d -> %d builds)", compiles, got)
	}
	tel := second[0].Telemetry
	if len(tel) != steps {
		t.Fatalf("%d telemetry entries, expected %d", len(tel), steps)
	}
	// Telemetry[i] comes from the step that chose token i; the new threshold
	// was set when token newTauAt was kept, so it acts from token newTauAt+1.
	for i, rec := range tel {
		tau := float64(tau1)
		if i > newTauAt {
			tau = float64(tau2)
		}
		r := rec[1]
		if float64(r.After[0]) < tau-tolerance(tau) {
			t.Errorf("token %d: projection after the hook %g, below the threshold %g in force", i, r.After[0], tau)
		}
		if math.Abs(float64(r.Before[0])-tau) > tolerance(tau) && r.Acted[0] != (float64(r.Before[0]) < tau) {
			t.Errorf("token %d: Acted %v with projection %g and threshold %g", i, r.Acted[0], r.Before[0], tau)
		}
	}
	for i := range newTauAt + 1 {
		if second[0].Tokens[i] != first[0].Tokens[i] {
			t.Fatalf("token %d differs from the first run's before the threshold changed", i)
		}
	}
}
