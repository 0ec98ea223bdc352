package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"sort"
	"strings"
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
// also checks that repeating the same round soon compiles no step graph.
func TestBatcherMatchesGenerate(t *testing.T) {
	cases := []struct {
		family weights.Family
		chunk  int // prefillChunk: 8 prefills the longer prompts in chunks
	}{{weights.FamilyLlama, prefillChunk}, {weights.FamilyGemma2, prefillChunk}, {weights.FamilyQwen3, 8}}
	for _, c := range cases {
		family := c.family
		t.Run(fmt.Sprintf("%s/chunk%d", family, c.chunk), func(t *testing.T) {
			defer func(old int) { prefillChunk = old }(prefillChunk)
			prefillChunk = c.chunk
			m, _ := loadTiny(t, family)
			reqs := steeredRequests(m, rand.New(rand.NewPCG(5, 6)))
			want := make([]Result, len(reqs))
			var acted int64 // clamps that acted, from Generate's telemetry
			for i, r := range reqs {
				want[i] = alone(t, m, r)
				for _, tel := range want[i].Telemetry {
					for _, rec := range tel {
						for _, a := range rec.Acted {
							if a {
								acted++
							}
						}
					}
				}
			}
			if acted == 0 {
				t.Fatal("no clamp acted in the runs alone: the steering does not exercise the caps")
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
			// When rows join depends on timing, so a repeated round may meet a batch shape (or a
			// shape with the other hook variant) that the earlier ones did not; but the shapes are
			// finitely many, so repeating the same round must soon compile nothing at all (a
			// graph rebuilt per round or per join never gets there).
			rounds, quiet := 1, false
			round()
			for ; rounds < 6 && !quiet; rounds++ {
				before := m.Compilations()
				round()
				quiet = m.Compilations() == before
			}
			if !quiet {
				t.Errorf("every one of %d identical rounds compiled new step graphs (%v)", rounds, m.CompileBuckets())
			}
			st := bt.Stats()
			if st.CapActivations != int64(rounds)*acted {
				t.Errorf("stats count %d cap activations, Generate's telemetry %d per round", st.CapActivations, acted)
			}
			if st.Completed != int64(rounds*len(reqs)) || st.Active != 0 || st.Queued != 0 {
				t.Errorf("stats after %d rounds: %+v", rounds, st)
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

// TestBatcherCancel cancels one request mid-generation: it ends with
// StopCancelled and its context's error, its row is freed, and the other
// requests still equal their runs alone. No goroutine is left behind.
func TestBatcherCancel(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	goroutines := runtime.NumGoroutine()
	rng := rand.New(rand.NewPCG(8, 9))
	long := BatchRequest{Request: Request{Prompt: randomTokens(rng, 4, m.cfg.VocabSize), MaxNewTokens: 100, IgnoreEOS: true}}
	others := steeredRequests(m, rng)[:3]
	bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 4, Detokenizer: letterDetok{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := bt.Submit(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	var outs []<-chan Event
	for _, r := range others {
		o, err := bt.Submit(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, o)
	}
	var got int
	for ev := range ch {
		if ev.Done {
			if ev.Result.StopReason != StopCancelled || !errors.Is(ev.Err, context.Canceled) {
				t.Errorf("cancelled request ended with %q, %v", ev.Result.StopReason, ev.Err)
			}
			if len(ev.Result.Tokens) >= long.MaxNewTokens {
				t.Errorf("cancelled request generated all %d tokens", len(ev.Result.Tokens))
			}
			break
		}
		if got++; got == 3 {
			cancel()
		}
	}
	for i, o := range outs {
		res, err := collect(t, fmt.Sprintf("request %d", i), o)
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
		sameGeneration(t, fmt.Sprintf("request %d", i), res, alone(t, m, others[i]))
	}
	waitFor(t, func() bool { return bt.Stats().Active == 0 })
	if err := bt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestBatcherQueueFull fills a one-row batcher's queue and checks that the
// next Submit gets ErrQueueFull, that a cancelled queued request ends
// without running, and that Submit after Close gets ErrBatcherClosed.
func TestBatcherQueueFull(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	rng := rand.New(rand.NewPCG(10, 11))
	req := BatchRequest{Request: Request{Prompt: randomTokens(rng, 4, m.cfg.VocabSize), MaxNewTokens: 60, IgnoreEOS: true}}
	bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 1, MaxQueue: 2})
	if err != nil {
		t.Fatal(err)
	}
	first, err := bt.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return bt.Stats().Active == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	queued, err := bt.Submit(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bt.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, err := bt.Submit(context.Background(), req); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit to a full queue: %v, expected ErrQueueFull", err)
	}
	cancel()
	res, err := collect(t, "queued", queued)
	if !errors.Is(err, context.Canceled) || len(res.Tokens) != 0 || res.StopReason != StopCancelled {
		t.Errorf("cancelled queued request: %d tokens, %q, %v", len(res.Tokens), res.StopReason, err)
	}
	if _, err := collect(t, "first", first); err != nil {
		t.Error(err)
	}
	if err := bt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := bt.Submit(context.Background(), req); !errors.Is(err, ErrBatcherClosed) {
		t.Errorf("Submit after Close: %v, expected ErrBatcherClosed", err)
	}
}

// gatedDetok is letterDetok whose first Decode (on the batcher's loop, at
// the first token) closes started and waits for release: the test holds the
// loop at a known point.
type gatedDetok struct {
	once             sync.Once
	started, release chan struct{}
}

func (d *gatedDetok) Decode(ids []int, skipSpecial bool) (string, error) {
	d.once.Do(func() {
		close(d.started)
		<-d.release
	})
	return letterDetok{}.Decode(ids, skipSpecial)
}

// TestBatcherCloseDeadline closes a batcher whose requests cannot finish
// before the deadline (its loop is held at the first token until Close has
// given up waiting): Close returns the deadline error once the loop has
// exited, and the requests end with ErrBatcherClosed.
func TestBatcherCloseDeadline(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	goroutines := runtime.NumGoroutine()
	rng := rand.New(rand.NewPCG(12, 13))
	req := BatchRequest{Request: Request{Prompt: randomTokens(rng, 4, m.cfg.VocabSize), MaxNewTokens: 120, IgnoreEOS: true}}
	det := &gatedDetok{started: make(chan struct{}), release: make(chan struct{})}
	bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 1, Detokenizer: det})
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan Event
	for range 3 {
		ch, err := bt.Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	<-det.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- bt.Close(ctx) }()
	<-bt.abort // Close's deadline passed: it has told the loop to cancel everything
	close(det.release)
	if err := <-closed; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close past its deadline: %v, expected context.DeadlineExceeded", err)
	}
	for i, ch := range chans {
		res, err := collect(t, fmt.Sprintf("request %d", i), ch)
		if !errors.Is(err, ErrBatcherClosed) || res.StopReason != StopCancelled {
			t.Errorf("request %d after Close: %q, %v, expected cancelled with ErrBatcherClosed", i, res.StopReason, err)
		}
	}
	waitFor(t, func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestBatcherLogprobs checks the first token's log-probabilities against a
// log-softmax of Forward's logits computed here.
func TestBatcherLogprobs(t *testing.T) {
	m, _ := loadTiny(t, "qwen2")
	rng := rand.New(rand.NewPCG(14, 15))
	prompt := randomTokens(rng, 6, m.cfg.VocabSize)
	bt, err := m.NewBatcher(BatcherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	ch, err := bt.Submit(context.Background(), BatchRequest{Request: Request{Prompt: prompt, MaxNewTokens: 1, IgnoreEOS: true}, Logprobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	ev := <-ch
	fw, err := m.Forward(context.Background(), [][]int{prompt}, ForwardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logits := fw.Logits[0]
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v))
	}
	ids := make([]int, len(logits))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return logits[ids[a]] > logits[ids[b]] })
	if ev.Token != ids[0] {
		t.Fatalf("greedy token %d, argmax %d", ev.Token, ids[0])
	}
	if want := float64(logits[ev.Token]) - math.Log(sum); math.Abs(ev.Logprob-want) > 1e-4 {
		t.Errorf("logprob %g, want %g", ev.Logprob, want)
	}
	if len(ev.TopLogprobs) != 3 {
		t.Fatalf("%d top logprobs, expected 3", len(ev.TopLogprobs))
	}
	for i, tl := range ev.TopLogprobs {
		if want := float64(logits[ids[i]]) - math.Log(sum); tl.Token != ids[i] || math.Abs(tl.Logprob-want) > 1e-4 {
			t.Errorf("top %d: %+v, want token %d logprob %g", i, tl, ids[i], want)
		}
	}
}

// TestBatcherSubmitErrors checks that bad requests are refused at Submit
// with an error naming the problem.
func TestBatcherSubmitErrors(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	bt, err := m.NewBatcher(BatcherOptions{MaxClamps: 1, MaxContext: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	u := unitVector(rand.New(rand.NewPCG(1, 2)), m.cfg.HiddenSize)
	cases := []struct {
		name string
		req  BatchRequest
		want string
	}{
		{"empty prompt", BatchRequest{Request: Request{MaxNewTokens: 1}}, "empty"},
		{"no tokens", BatchRequest{Request: Request{Prompt: []int{1}}}, "MaxNewTokens"},
		{"too many clamps", BatchRequest{Request: Request{Prompt: []int{1}, MaxNewTokens: 1},
			Hooks: Hooks{0: {Clamps: []Clamp{floorClamp(u, 0), floorClamp(u, 1)}}}}, "at most 1"},
		{"bad layer", BatchRequest{Request: Request{Prompt: []int{1}, MaxNewTokens: 1}, Hooks: Hooks{9: {Add: u}}}, "layer 9"},
		{"over the context", BatchRequest{Request: Request{Prompt: []int{1, 2}, MaxNewTokens: 63}}, "MaxContext"},
		{"negative logprobs", BatchRequest{Request: Request{Prompt: []int{1}, MaxNewTokens: 1}, Logprobs: -1}, "Logprobs"},
	}
	for _, c := range cases {
		if _, err := bt.Submit(context.Background(), c.req); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, expected an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := m.NewBatcher(BatcherOptions{MaxContext: m.cfg.MaxPositions + 1}); err == nil {
		t.Error("NewBatcher with MaxContext beyond the model's context: no error")
	}
}

// TestBatcherCacheShrinks runs a long request beside two short ones and
// cancels it once all three share the batch: the cache (4 rows of 128
// slots for the long request) stays as it is for shrinkAfter-1 steps, then
// shrinks to the 2 rows and 64 slots the short ones need, while they go
// on; each short one still equals Generate alone, and the cache is freed
// once the batcher is idle.
func TestBatcherCacheShrinks(t *testing.T) {
	m, _ := loadTiny(t, "llama")
	if !m.fineBuckets() {
		t.Skip("the slot counts below are those of the fine cache buckets (multiples of 64)")
	}
	rng := rand.New(rand.NewPCG(12, 13))
	V := m.cfg.VocabSize
	u := unitVector(rng, m.cfg.HiddenSize)
	// Padded prompts of 8 slots: 8+118 needs 128 slots, 8+56 needs 64.
	long := BatchRequest{Request: Request{Prompt: randomTokens(rng, 4, V), MaxNewTokens: 118, IgnoreEOS: true}}
	short := []BatchRequest{
		{Request: Request{Prompt: randomTokens(rng, 5, V), MaxNewTokens: 56, IgnoreEOS: true}},
		{Request: Request{Prompt: randomTokens(rng, 7, V), MaxNewTokens: 56, IgnoreEOS: true},
			Hooks: Hooks{1: {Clamps: []Clamp{floorClamp(u, 0.2)}, Record: true}}},
	}
	bt, err := m.NewBatcher(BatcherOptions{MaxBatch: 4, Detokenizer: letterDetok{}})
	if err != nil {
		t.Fatal(err)
	}
	defer bt.Close(context.Background())
	type shape struct{ active, rows, slots int }
	var steps []shape
	cancelAt := -1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Runs on the batcher's loop after each step: it cancels the long
	// request at the first step all three rows ran together.
	bt.afterStep = func() {
		if bt.cache == nil {
			t.Error("no batch cache after a step")
			return
		}
		steps = append(steps, shape{bt.active(), bt.cache.batch, bt.cache.slots})
		if cancelAt < 0 && bt.active() == 3 {
			cancelAt = len(steps) - 1
			cancel()
		}
	}
	longCh, err := bt.Submit(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	var chans []<-chan Event
	for _, r := range short {
		ch, err := bt.Submit(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	res, err := collect(t, "long", longCh)
	if !errors.Is(err, context.Canceled) || res.StopReason != StopCancelled {
		t.Errorf("long request ended with %q, %v; expected it cancelled", res.StopReason, err)
	}
	if want := alone(t, m, long); !slices64Equal(res.Tokens, want.Tokens[:len(res.Tokens)]) {
		t.Errorf("long request's tokens %v are not a prefix of its run alone %v", res.Tokens, want.Tokens)
	}
	for i, ch := range chans {
		got, err := collect(t, fmt.Sprintf("short %d", i), ch)
		if err != nil {
			t.Errorf("short %d: %v", i, err)
		}
		sameGeneration(t, fmt.Sprintf("short %d", i), got, alone(t, m, short[i]))
	}
	waitFor(t, func() bool { st := bt.Stats(); return st.CacheRows == 0 && st.CacheSlots == 0 })
	if err := bt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if cancelAt < 0 {
		t.Fatalf("the three requests never ran in one step: %v", steps)
	}
	if got, want := steps[cancelAt], (shape{3, 4, 128}); got != want {
		t.Fatalf("step with all three rows: %+v, expected %+v", got, want)
	}
	if len(steps) <= cancelAt+shrinkAfter {
		t.Fatalf("only %d steps after the cancel: %v", len(steps)-cancelAt-1, steps)
	}
	for i := cancelAt + 1; i <= cancelAt+shrinkAfter; i++ {
		want := shape{2, 4, 128} // kept for shrinkAfter-1 steps
		if i == cancelAt+shrinkAfter {
			want = shape{2, 2, 64}
		}
		if steps[i] != want {
			t.Errorf("step %d after the cancel: %+v, expected %+v", i-cancelAt, steps[i], want)
		}
	}
}
