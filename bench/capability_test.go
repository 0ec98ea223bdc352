package bench

import (
	"math"
	"strings"
	"testing"

	"tether/engine"
	"tether/internal/testmodels"
	"tether/model"
)

// handNLL computes the summed next-token NLL of seq by running every prefix on its own
// (the last position's logits only) and a log-sum-exp written here.
func handNLL(t *testing.T, m *engine.Model, seq []int) (float64, int) {
	t.Helper()
	var nll float64
	for i := 1; i < len(seq); i++ {
		res, err := m.Forward(t.Context(), [][]int{seq[:i]}, engine.ForwardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		logits := res.Logits[0]
		var z float64
		for _, l := range logits {
			z += math.Exp(float64(l))
		}
		nll += math.Log(z) - float64(logits[seq[i]])
	}
	return nll, len(seq) - 1
}

// TestPerplexityMatchesHandComputation: Perplexity over one window and over overlapping
// windows of 4 tokens equals exp(mean NLL) computed prefix by prefix on the real
// stories260K model.
func TestPerplexityMatchesHandComputation(t *testing.T) {
	m := testmodels.OpenWith(t, testmodels.Stories260K(t), model.Options{})
	ids, err := m.PlainPrompt("Once upon a time, there was a little girl named Lily.")
	if err != nil {
		t.Fatal(err)
	}
	nll, n := handNLL(t, m.Engine, ids)
	want := math.Exp(nll / float64(n))
	got, err := Perplexity(t.Context(), m.Engine, ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got-want) > 1e-4*want {
		t.Errorf("perplexity %v, hand %v", got, want)
	}
	if want > 20 {
		t.Errorf("hand perplexity %v of the model's own opening: expected a trained model to find it likely", want)
	}
	// Windows of 4 overlapping by 1: windows [0:4], [3:7], ... each predicted from its own start.
	var wNLL float64
	var wN int
	for start := 0; start < len(ids)-1; start += 3 {
		s, c := handNLL(t, m.Engine, ids[start:min(start+4, len(ids))])
		wNLL += s
		wN += c
	}
	got4, count, err := PerplexityWindowed(t.Context(), m.Engine, ids, nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if count != len(ids)-1 || wN != count {
		t.Errorf("predicted %d tokens (hand %d), want %d", count, wN, len(ids)-1)
	}
	if w := math.Exp(wNLL / float64(wN)); math.Abs(got4-w) > 1e-4*w {
		t.Errorf("windowed perplexity %v, hand %v", got4, w)
	}
	// A cap far above every activation changes the model, hence the perplexity.
	u := make([]float32, m.Config.HiddenSize)
	u[0] = 1
	capped, err := Perplexity(t.Context(), m.Engine, ids, engine.Hooks{2: {Clamps: []engine.Clamp{{Dir: u, Lo: 50, Hi: float32(math.Inf(1))}}}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(capped-got) < 1e-3*got {
		t.Errorf("capped perplexity %v equals uncapped %v", capped, got)
	}
	for _, bad := range []struct {
		ids    []int
		window int
	}{{ids[:1], 4}, {ids, 1}, {ids, 100000}} {
		if _, _, err := PerplexityWindowed(t.Context(), m.Engine, bad.ids, nil, bad.window); err == nil {
			t.Errorf("%d tokens, window %d: no error", len(bad.ids), bad.window)
		}
	}
}

// TestExactMatch covers the normalisation: first non-empty line, case, white space and
// punctuation.
func TestExactMatch(t *testing.T) {
	for _, tc := range []struct {
		answer   string
		accepted []string
		want     bool
	}{
		{"12", []string{"12"}, true},
		{"  12.\n", []string{"12"}, true},
		{"\n\nParis!\nIt is in France.", []string{"Paris"}, true},
		{"paris", []string{"Paris"}, true},
		{"The answer is Paris", []string{"Paris"}, false},
		{"BLUE", []string{"BLUE"}, true},
		{"Blue, of course", []string{"BLUE"}, false},
		{"blue\nBLUE", []string{"BLUE"}, true},
		{"red\nBLUE", []string{"BLUE"}, false},
		{"Carbon   dioxide", []string{"carbon dioxide", "CO2"}, true},
		{"H2O", []string{"H2O"}, true},
		{"", []string{""}, false},
		{"   \n  ", []string{"x"}, false},
		{"seventy-two", []string{"72", "seventy-two"}, true},
		{"**72**", []string{"72"}, true},
	} {
		if got := ExactMatch(tc.answer, tc.accepted); got != tc.want {
			t.Errorf("ExactMatch(%q, %q) = %v, want %v", tc.answer, tc.accepted, got, tc.want)
		}
	}
}

// TestBuiltinCapabilityData: at least 40 questions over the three kinds, every accepted
// answer matches itself, and the held-out text is about 1-2k tokens of plain English.
func TestBuiltinCapabilityData(t *testing.T) {
	qs, err := BuiltinCapabilityQuestions()
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 40 {
		t.Errorf("%d questions, want >= 40", len(qs))
	}
	kinds := map[string]int{}
	ids := map[string]bool{}
	for _, q := range qs {
		kinds[strings.SplitN(q.ID, "-", 2)[0]]++
		if ids[q.ID] {
			t.Errorf("duplicate id %s", q.ID)
		}
		ids[q.ID] = true
		for _, a := range q.Answers {
			if !ExactMatch(a, q.Answers) || !ExactMatch(strings.ToUpper(a)+".", q.Answers) {
				t.Errorf("%s: accepted answer %q does not match itself", q.ID, a)
			}
		}
	}
	for _, k := range []string{"arith", "fact", "instr"} {
		if kinds[k] < 10 {
			t.Errorf("%d %s questions, want >= 10", kinds[k], k)
		}
	}
	if w := len(strings.Fields(HeldOutText())); w < 700 || w > 1600 {
		t.Errorf("held-out text has %d words, want about 1-2k tokens", w)
	}
}

// TestMeasureCapability runs both arms on a tiny random chat model: without hooks the arms
// agree exactly; accuracies are the fractions of items marked correct by ExactMatch.
func TestMeasureCapability(t *testing.T) {
	m := testmodels.OpenWith(t, testmodels.Write(t, t.TempDir(), testmodels.TinyChat, 3), model.Options{})
	qs := []CapabilityQuestion{
		{ID: "a", Question: "Reply with only the word BLUE.", Answers: []string{"BLUE"}},
		{ID: "b", Question: "What is 7 plus 5?", Answers: []string{"12"}},
		{ID: "c", Question: "What is the capital of France?", Answers: []string{"Paris"}},
	}
	o := CapabilityOptions{Questions: qs, MaxTokens: 4, Batch: 2, MaxHeldOutTokens: 64}
	r, err := MeasureCapability(t.Context(), m, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Questions != 3 || len(r.Items) != 3 || r.HeldOutTokens != 64 {
		t.Fatalf("result %+v", r)
	}
	if r.PerplexityCapped != r.PerplexityUncapped || r.PerplexityRelative != 0 || r.ExactCapped != r.ExactUncapped {
		t.Errorf("no hooks but the arms differ: %+v", r)
	}
	// A random 320-token model is close to uniform: perplexity near the vocabulary size.
	if r.PerplexityUncapped < 320/4 || r.PerplexityUncapped > 320*4 {
		t.Errorf("perplexity %v of a random model, want near 320", r.PerplexityUncapped)
	}
	for _, it := range r.Items {
		if it.Uncapped != it.Capped {
			t.Errorf("item %s: %q vs %q", it.ID, it.Uncapped, it.Capped)
		}
	}
	u := make([]float32, m.Config.HiddenSize)
	u[1] = 1
	hooks := engine.Hooks{1: {Clamps: []engine.Clamp{{Dir: u, Lo: 100, Hi: float32(math.Inf(1))}}}}
	rc, err := MeasureCapability(t.Context(), m, hooks, o)
	if err != nil {
		t.Fatal(err)
	}
	if rc.PerplexityCapped == rc.PerplexityUncapped {
		t.Errorf("a cap at 100 left perplexity unchanged: %v", rc.PerplexityCapped)
	}
	if want := rc.PerplexityCapped/rc.PerplexityUncapped - 1; math.Abs(rc.PerplexityRelative-want) > 1e-12 {
		t.Errorf("relative %v, want %v", rc.PerplexityRelative, want)
	}
	okU, okC := 0, 0
	for i, it := range rc.Items {
		if it.UncappedCorrect != ExactMatch(it.Uncapped, qs[i].Answers) || it.CappedCorrect != ExactMatch(it.Capped, qs[i].Answers) {
			t.Errorf("item %s marked wrongly", it.ID)
		}
		if it.UncappedCorrect {
			okU++
		}
		if it.CappedCorrect {
			okC++
		}
	}
	if rc.ExactUncapped != float64(okU)/3 || rc.ExactCapped != float64(okC)/3 || rc.ExactAbsolute != rc.ExactCapped-rc.ExactUncapped {
		t.Errorf("accuracies %+v", rc)
	}
}

// TestMeasureCapabilityStoriesPlainPrompt: a model without a chat template answers plain
// "Question: ... Answer:" prompts from the built-in set.
func TestMeasureCapabilityStoriesPlainPrompt(t *testing.T) {
	m := testmodels.OpenWith(t, testmodels.Stories260K(t), model.Options{})
	qs, err := BuiltinCapabilityQuestions()
	if err != nil {
		t.Fatal(err)
	}
	all, err := m.PlainPrompt(HeldOutText())
	if err != nil || len(all) < 1000 {
		t.Fatalf("held-out text: %d tokens, %v: want at least 1000", len(all), err)
	}
	r, err := MeasureCapability(t.Context(), m, nil, CapabilityOptions{Questions: qs[:4], MaxTokens: 3, MaxHeldOutTokens: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.HeldOutTokens != 200 || r.PerplexityUncapped <= 1 || len(r.Items) != 4 {
		t.Errorf("result %+v", r)
	}
}
