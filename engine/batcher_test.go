package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"tether/weights"
)

// steeredRequests returns six requests with mixed steering on model m:
// uncapped, capped with telemetry, add-steered, ablated with telemetry,
// sampled with a seed and two clamps, and a NewestOnly cap with a stop
// string.
func steeredRequests(m *Model, rng *rand.Rand) []BatchRequest {
	H, V := m.cfg.HiddenSize, m.cfg.VocabSize
	u, w := unitVector(rng, H), unitVector(rng, H)
	add := make([]float32, H)
	for i := range add {
		add[i] = 0.8 * u[i]
	}
	prompt := func(n int) []int { return randomTokens(rng, n, V) }
	return []BatchRequest{
		{Request: Request{Prompt: prompt(5), MaxNewTokens: 12, IgnoreEOS: true}},
		{Request: Request{Prompt: prompt(9), MaxNewTokens: 10, IgnoreEOS: true},
			Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(u, 0.3)}, Record: true}}},
		{Request: Request{Prompt: prompt(3), MaxNewTokens: 14, IgnoreEOS: true},
			Hooks: Hooks{0: {Add: add}, 2: {Add: add}}},
		{Request: Request{Prompt: prompt(12), MaxNewTokens: 9, IgnoreEOS: true},
			Hooks: Hooks{1: {Clamps: []Clamp{{Dir: w, Lo: 0, Hi: 0}}, Record: true}, 2: {Clamps: []Clamp{{Dir: w, Lo: 0, Hi: 0}}, Record: true}}},
		{Request: Request{Prompt: prompt(7), MaxNewTokens: 11, IgnoreEOS: true, Sampling: SamplingParams{Temperature: 0.9, TopP: 0.95, Seed: 7}},
			Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(u, -0.2), {Dir: w, Lo: negInf, Hi: 0.1}}, Record: true}}},
		{Request: Request{Prompt: prompt(17), MaxNewTokens: 13, StopStrings: []string{"q"}},
			Hooks: Hooks{0: {Clamps: []Clamp{floorClamp(w, 0.5)}, NewestOnly: true, Record: true}}},
	}
}

// collect reads a request's events until Done and checks that the token
// events agree with the final Result.
func collect(t *testing.T, name string, ch <-chan Event) (Result, error) {
	t.Helper()
	var toks []int
	var text string
	var recs []map[int]HookRecord
	for ev := range ch {
		text += ev.Text
		if ev.Done {
			if !reflect.DeepEqual(toks, ev.Result.Tokens) && !(len(toks) == 0 && len(ev.Result.Tokens) == 0) {
				t.Errorf("%s: events carried tokens %v, Result %v", name, toks, ev.Result.Tokens)
			}
			if text != ev.Result.Text {
				t.Errorf("%s: events carried text %q, Result %q", name, text, ev.Result.Text)
			}
			if len(recs) > 0 && !reflect.DeepEqual(recs, ev.Result.Telemetry) {
				t.Errorf("%s: events carried other records than Result.Telemetry", name)
			}
			return *ev.Result, ev.Err
		}
		toks = append(toks, ev.Token)
		if ev.Records != nil {
			recs = append(recs, ev.Records)
		}
	}
	t.Fatalf("%s: channel closed without a Done event", name)
	return Result{}, nil
}

// alone returns what Generate gives for r by itself.
func alone(t *testing.T, m *Model, r BatchRequest) Result {
	t.Helper()
	res, err := m.Generate(context.Background(), []Request{r.Request}, GenerateOptions{Hooks: r.Hooks, Detokenizer: letterDetok{}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

// sameGeneration compares the parts of two results a batch must not change.
func sameGeneration(t *testing.T, name string, got, want Result) {
	t.Helper()
	if !slices64Equal(got.Tokens, want.Tokens) || got.Text != want.Text || got.StopReason != want.StopReason {
		t.Errorf("%s: batched gave %v %q (%s), alone %v %q (%s)", name, got.Tokens, got.Text, got.StopReason, want.Tokens, want.Text, want.StopReason)
	}
	if !reflect.DeepEqual(got.Telemetry, want.Telemetry) {
		t.Errorf("%s: batched telemetry differs from alone:\n got %v\nwant %v", name, got.Telemetry, want.Telemetry)
	}
}

// slices64Equal compares token lists, nil equal to empty.
func slices64Equal(a, b []int) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// TestBatcherMatchesGenerate submits six differently steered requests at
// staggered times (so rows join a running batch, the batch grows, shrinks
// and the cache shifts) and checks that each gives exactly what Generate
// gives for it alone: tokens, text, stop reason and hook telemetry. It
// also checks that a second identical round compiles no new step graph.
func TestBatcherMatchesGenerate(t *testing.T) {
	for _, family := range []weights.Family{weights.FamilyLlama, weights.FamilyGemma2} {
		t.Run(string(family), func(t *testing.T) {
			m, _ := loadTiny(t, family)
			reqs := steeredRequests(m, rand.New(rand.NewPCG(5, 6)))
			want := make([]Result, len(reqs))
			for i, r := range reqs {
				want[i] = alone(t, m, r)
			}
			bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 4, Detokenizer: letterDetok{}})
			if err != nil {
				t.Fatal(err)
			}
			defer bt.Close(context.Background())
			round := func() {
				var wg sync.WaitGroup
				for i, r := range reqs {
					ch, err := bt.Submit(context.Background(), r)
					if err != nil {
						t.Fatal(err)
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						got, err := collect(t, fmt.Sprintf("request %d", i), ch)
						if err != nil {
							t.Errorf("request %d: %v", i, err)
						}
						sameGeneration(t, fmt.Sprintf("request %d", i), got, want[i])
					}()
					if i%2 == 1 {
						// Let the batch run a few steps before the next ones join.
						waitFor(t, func() bool { return bt.Stats().Steps >= int64(3*i) })
					}
				}
				wg.Wait()
			}
			round()
			compiled := m.Compilations()
			round()
			if got := m.Compilations(); got != compiled {
				t.Errorf("a second identical round compiled %d step graphs, expected none", got-compiled)
			}
			st := bt.Stats()
			if st.Completed != int64(2*len(reqs)) || st.Active != 0 || st.Queued != 0 {
				t.Errorf("stats after two rounds: %+v", st)
			}
		})
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond)
	}
}
