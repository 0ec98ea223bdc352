package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tether/engine"
	"tether/internal/testmodels"
	"tether/steer"
	"tether/tokenizer"
)

// steeringCase is one kind of request of the exactness test: its body field and the
// steer.Spec (with or without the axis) that tether generate's flags give for it.
type steeringCase struct {
	name     string
	steering map[string]any // nil: no steering field
	spec     steer.Spec
	withAxis bool
}

func pct(p float64) *float64 { return &p }

func steeringCases(axisPath string) []steeringCase {
	proj := map[string]any{"axis": "assistant"}
	return []steeringCase{
		{name: "plain"},
		{name: "uncapped", steering: map[string]any{"projections": proj}, withAxis: true},
		{name: "capped", steering: map[string]any{"cap": []any{map[string]any{"axis": "assistant", "layers": "1:3", "percentile": 50}}, "projections": proj},
			spec: steer.Spec{Cap: []steer.CapSpec{{Layers: "1:3", Percentile: pct(50)}}}, withAxis: true},
		{name: "capped-tau", steering: map[string]any{"cap": []any{map[string]any{"axis": "assistant", "layers": []int{2, 3}, "tau": 0.25}}, "projections": proj},
			spec: steer.Spec{Cap: []steer.CapSpec{{Layers: "2,3", Tau: []float64{0.25}}}}, withAxis: true},
		// Two cap entries on different layers: as tether generate's one cap with a threshold per
		// layer.
		{name: "capped-list", steering: map[string]any{"cap": []any{
			map[string]any{"axis": "assistant", "layers": []int{1}, "tau": 0.3},
			map[string]any{"axis": "assistant", "layers": "2,3", "tau": 0.2}}, "projections": proj},
			spec: steer.Spec{Cap: []steer.CapSpec{{Layers: "1,2,3", Tau: []float64{0.3, 0.2, 0.2}}}}, withAxis: true},
		{name: "steered", steering: map[string]any{"add": []any{map[string]any{"vector": "assistant", "layers": "1", "coef": 3, "units": "unit"}}, "projections": proj},
			spec: steer.Spec{Add: []steer.AddSpec{{Vector: axisPath, Layers: "1", Coef: 3, Units: "unit"}}}, withAxis: true},
		{name: "ablated", steering: map[string]any{"ablate": []any{map[string]any{"vector": "assistant", "layers": "-2"}}, "projections": proj},
			spec: steer.Spec{Ablate: []steer.AblateSpec{{Layers: "-2"}}}, withAxis: true},
	}
}

// direct generates a chat answer the way tether generate --chat does, alone, with the
// case's spec resolved by steer.Resolve: its text and telemetry.
func (f *fixture) direct(t *testing.T, c steeringCase, msgs []tokenizer.Message, maxNew int, temp float64, seed uint64) (string, []steer.TelemetryRecord) {
	t.Helper()
	var setup *steer.Setup
	var err error
	if c.steering != nil {
		ax := f.ax
		if !c.withAxis {
			ax = nil
		}
		if setup, err = steer.Resolve(t.Context(), c.spec, ax, steer.ForModel(f.m)); err != nil {
			t.Fatal(err)
		}
	}
	var hooks engine.Hooks
	if setup != nil {
		hooks = setup.Compiled.Hooks
	}
	res := f.generateWith(t, hooks, msgs, maxNew, temp, seed)
	if setup == nil {
		return res.Text, nil
	}
	return res.Text, setup.Compiled.Telemetry(res)
}

// generateWith generates a chat answer with engine.Generate alone, as tether generate --chat
// does, with the given hooks.
func (f *fixture) generateWith(t *testing.T, hooks engine.Hooks, msgs []tokenizer.Message, maxNew int, temp float64, seed uint64) engine.Result {
	t.Helper()
	ids, err := f.m.ChatPrompt(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	opts := engine.GenerateOptions{Detokenizer: tokenizer.NewContinuation(f.m.Tokenizer, ids), Hooks: hooks}
	req := engine.Request{Prompt: ids, MaxNewTokens: maxNew, StopTokens: f.m.StopTokens(), StopStrings: f.m.ChatStopStrings(),
		Sampling: engine.SamplingParams{Temperature: temp, TopP: 1, RepetitionPenalty: 1, Seed: seed}}
	res, err := f.m.Engine.Generate(t.Context(), []engine.Request{req}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res[0]
}

func projectionsOf(t *testing.T, ch openai.ChatCompletionChoice) []steer.TelemetryRecord {
	t.Helper()
	f, ok := ch.JSON.ExtraFields["projections"]
	if !ok {
		return nil
	}
	var out []steer.TelemetryRecord
	if err := json.Unmarshal([]byte(f.Raw()), &out); err != nil {
		t.Fatalf("projections: %v in %s", err, f.Raw())
	}
	return out
}

func sameRecords(a, b []steer.TelemetryRecord) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// servedChat is one answer of chatConcurrently: its text, its projections (nil when the response
// carries none) and its projection summary (nil likewise).
type servedChat struct {
	text string
	recs []steer.TelemetryRecord
	sum  *ProjectionSummary
}

// chatConcurrently sends one chat request of msgs (a system and a user message) per entry of
// steerings (its "steering" body field; nil: none) at once, so that they share batches, through
// the official OpenAI SDK, and returns the answers in order.
func (f *fixture) chatConcurrently(t *testing.T, steerings []any, msgs []tokenizer.Message, maxNew int64, temp float64, seed int64) []servedChat {
	t.Helper()
	results := make([]servedChat, len(steerings))
	errs := make(chan error, len(steerings))
	var wg sync.WaitGroup
	for i, st := range steerings {
		wg.Go(func() {
			params := openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(maxNew), Temperature: openai.Float(temp), Seed: openai.Int(seed),
				Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage(msgs[0].Content), openai.UserMessage(msgs[1].Content)}}
			var opts []option.RequestOption
			if st != nil {
				opts = append(opts, option.WithJSONSet("steering", st))
			}
			resp, err := f.client.Chat.Completions.New(context.Background(), params, opts...)
			if err != nil {
				errs <- fmt.Errorf("request %d: %w", i, err)
				return
			}
			g := servedChat{text: resp.Choices[0].Message.Content}
			if p, ok := resp.Choices[0].JSON.ExtraFields["projections"]; ok {
				if err := json.Unmarshal([]byte(p.Raw()), &g.recs); err != nil {
					errs <- fmt.Errorf("request %d: projections: %w", i, err)
					return
				}
			}
			if p, ok := resp.Choices[0].JSON.ExtraFields["projection_summary"]; ok {
				g.sum = &ProjectionSummary{}
				if err := json.Unmarshal([]byte(p.Raw()), g.sum); err != nil {
					errs <- fmt.Errorf("request %d: projection_summary: %w", i, err)
					return
				}
			}
			results[i] = g
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return results
}

// TestSteeringExact sends plain, uncapped, capped, steered and ablated chat requests at once
// (so that they share batches) through the official OpenAI SDK; each answer's text and
// projections must equal what engine.Generate gives for the same steering resolved by
// steer.Resolve, alone, with the same seed.
func TestSteeringExact(t *testing.T) {
	f := startServer(t, options{})
	cases := steeringCases(f.axisPath)
	msgs := []tokenizer.Message{{Role: "system", Content: "You are a pirate."}, {Role: "user", Content: "hello there, who are you?"}}
	const maxNew, temp, seed = 14, 0.9, 42
	steerings := make([]any, len(cases))
	for i, c := range cases {
		if c.steering != nil {
			steerings[i] = c.steering
		}
	}
	results := f.chatConcurrently(t, steerings, msgs, maxNew, temp, seed)
	for i, c := range cases {
		text, recs := f.direct(t, c, msgs, maxNew, temp, seed)
		g := results[i]
		if g.text != text {
			t.Errorf("%s: served text %q, generate alone %q", c.name, g.text, text)
		}
		if c.steering == nil {
			if g.recs != nil || g.sum != nil {
				t.Errorf("%s: projections without asking: %v %v", c.name, g.recs, g.sum)
			}
			continue
		}
		if !sameRecords(g.recs, recs) {
			t.Errorf("%s: served projections\n%v\ngenerate alone\n%v", c.name, g.recs, recs)
		}
		want := steer.Summarize(recs, 2) // the axis has no axis_layer: the middle layer of 4
		if g.sum == nil || g.sum.Layer != 2 || math.Abs(g.sum.MeanProjection-want.MeanAfter) > 1e-9 || g.sum.CappedTokens != want.CappedTokens {
			t.Errorf("%s: summary %+v, want layer 2 mean %v capped %d", c.name, g.sum, want.MeanAfter, want.CappedTokens)
		}
		capped := 0
		for _, r := range recs {
			if r.Capped {
				capped++
			}
		}
		if strings.HasPrefix(c.name, "capped") && capped == 0 {
			t.Errorf("%s: the cap never acted: the test would not tell capped from uncapped", c.name)
		}
		if !strings.HasPrefix(c.name, "capped") && capped != 0 {
			t.Errorf("%s: %d capped records without a cap", c.name, capped)
		}
	}
}

// TestStreamingMatchesNonStreaming: a capped streamed chat through the SDK gives, over its
// chunks, the same text and projections (each token's in the chunk of that token or the
// last one) as the non-streamed answer, and the usage chunk when asked.
func TestStreamingMatchesNonStreaming(t *testing.T) {
	f := startServer(t, options{})
	c := steeringCases(f.axisPath)[2]
	params := openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(20), Temperature: openai.Float(0.8), Seed: openai.Int(5),
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("tell me a story about a robot")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}
	steering := option.WithJSONSet("steering", c.steering)
	stream := f.client.Chat.Completions.NewStreaming(t.Context(), params, steering)
	var text strings.Builder
	var recs []steer.TelemetryRecord
	var usage openai.CompletionUsage
	chunks, finish := 0, ""
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if len(ch.Choices) == 0 {
			usage = ch.Usage
			continue
		}
		text.WriteString(ch.Choices[0].Delta.Content)
		if ch.Choices[0].FinishReason != "" {
			finish = ch.Choices[0].FinishReason
		}
		if p, ok := ch.Choices[0].JSON.ExtraFields["projections"]; ok {
			var part []steer.TelemetryRecord
			if err := json.Unmarshal([]byte(p.Raw()), &part); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, part...)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{}
	resp, err := f.client.Chat.Completions.New(t.Context(), params, steering)
	if err != nil {
		t.Fatal(err)
	}
	if text.String() != resp.Choices[0].Message.Content || finish != resp.Choices[0].FinishReason {
		t.Errorf("streamed %q (%s), non-streamed %q (%s)", text.String(), finish, resp.Choices[0].Message.Content, resp.Choices[0].FinishReason)
	}
	if want := projectionsOf(t, resp.Choices[0]); !sameRecords(recs, want) {
		t.Errorf("streamed projections\n%v\nnon-streamed\n%v", recs, want)
	}
	if usage.CompletionTokens != resp.Usage.CompletionTokens || usage.PromptTokens != resp.Usage.PromptTokens || usage.TotalTokens != usage.PromptTokens+usage.CompletionTokens {
		t.Errorf("stream usage %+v, response usage %+v", usage, resp.Usage)
	}
	if chunks < 3 {
		t.Errorf("%d chunks: expected one per token and a usage chunk", chunks)
	}
}

// TestCompletionsMatchGenerate: on the real stories260K, a text completion (streamed and not)
// gives the text that engine.Generate gives for tether generate's tokenization (BOS added)
// with the same seed, including a stop string cut.
func TestCompletionsMatchGenerate(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	f := startServer(t, options{model: m})
	const prompt = "Once upon a time"
	for _, tc := range []struct {
		name string
		temp float64
		stop []string
	}{{"greedy", 0, nil}, {"sampled", 0.8, nil}, {"stop string", 0, []string{"was"}}} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := m.PlainPrompt(prompt)
			if err != nil {
				t.Fatal(err)
			}
			res, err := m.Engine.Generate(t.Context(), []engine.Request{{Prompt: ids, MaxNewTokens: 30, StopTokens: m.StopTokens(), StopStrings: tc.stop,
				Sampling: engine.SamplingParams{Temperature: tc.temp, TopP: 1, RepetitionPenalty: 1, Seed: 9}}},
				engine.GenerateOptions{Detokenizer: tokenizer.NewContinuation(m.Tokenizer, ids)})
			if err != nil {
				t.Fatal(err)
			}
			want := res[0]
			if tc.stop != nil && want.StopReason != engine.StopString {
				t.Fatalf("the stop string %q never appears: the case tests nothing (%q)", tc.stop, want.Text)
			}
			params := openai.CompletionNewParams{Model: "tiny", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(prompt)},
				MaxTokens: openai.Int(30), Temperature: openai.Float(tc.temp), Seed: openai.Int(9)}
			if tc.stop != nil {
				params.Stop = openai.CompletionNewParamsStopUnion{OfString: openai.String(tc.stop[0])}
			}
			resp, err := f.client.Completions.New(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			wantFinish := map[string]string{engine.StopString: "stop", engine.StopEOS: "stop", engine.StopLength: "length"}[want.StopReason]
			if resp.Choices[0].Text != want.Text || string(resp.Choices[0].FinishReason) != wantFinish || resp.Usage.CompletionTokens != int64(len(want.Tokens)) || resp.Usage.PromptTokens != int64(len(ids)) {
				t.Errorf("served %q (%s, %d+%d tokens), generate %q (%s, %d+%d)", resp.Choices[0].Text, resp.Choices[0].FinishReason,
					resp.Usage.PromptTokens, resp.Usage.CompletionTokens, want.Text, wantFinish, len(ids), len(want.Tokens))
			}
			stream := f.client.Completions.NewStreaming(t.Context(), params)
			var text strings.Builder
			for stream.Next() {
				if ch := stream.Current(); len(ch.Choices) > 0 {
					text.WriteString(ch.Choices[0].Text)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != want.Text {
				t.Errorf("streamed %q, generate %q", text.String(), want.Text)
			}
			// The same prompt as token ids (used as given: these already hold the BOS).
			ids64 := make([]int64, len(ids))
			for i, id := range ids {
				ids64[i] = int64(id)
			}
			params.Prompt = openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: ids64}
			resp, err = f.client.Completions.New(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Text != want.Text || resp.Usage.PromptTokens != int64(len(ids)) {
				t.Errorf("token-id prompt: served %q (%d prompt tokens), generate %q (%d)", resp.Choices[0].Text, resp.Usage.PromptTokens, want.Text, len(ids))
			}
		})
	}
}

// TestLoad: 32 clients send 64 requests with mixed steering at once. Each capped request
// caps at its own tau far above every projection, so every capped record's "after" must be
// that request's tau (another request's steering would show another tau); uncapped requests
// must show no cap. Nothing is lost, the server stays up, memory stays bounded (the heap in
// use after the load returns to within heapBound of the heap after a warm-up round, so a
// leak of a request's buffers, events or KV cache would fail), and it shuts down cleanly.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	f := startServer(t, options{maxBatch: 8, maxQueue: 64})
	const clients, perClient = 32, 2
	// One request first, so that compiled graphs and pools count in the baseline.
	warm := openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(6),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("warm up")}}
	if _, err := f.client.Chat.Completions.New(t.Context(), warm); err != nil {
		t.Fatal(err)
	}
	before := heapInuse()
	var wg sync.WaitGroup
	errs := make(chan error, clients*perClient)
	for cl := range clients {
		wg.Go(func() {
			for k := range perClient {
				i := cl*perClient + k
				tau := 1000 + float64(i)
				var steering map[string]any
				switch i % 3 {
				case 0:
					steering = map[string]any{"cap": []any{map[string]any{"axis": "assistant", "layers": "1:3", "tau": tau}}, "projections": map[string]any{"axis": "assistant", "layers": "1:3"}}
				case 1:
					steering = map[string]any{"projections": map[string]any{"axis": "assistant", "layers": "1:3"}}
				}
				params := openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(6), Seed: openai.Int(int64(i)),
					Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("request %d", i))}}
				var opts []option.RequestOption
				if steering != nil {
					opts = append(opts, option.WithJSONSet("steering", steering))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				resp, err := f.client.Chat.Completions.New(ctx, params, opts...)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					continue
				}
				recs := projectionsOf(t, resp.Choices[0])
				switch i % 3 {
				case 0:
					if len(recs) == 0 {
						errs <- fmt.Errorf("request %d: no projections", i)
					}
					for _, r := range recs {
						if !r.Capped || math.Abs(float64(r.After)-tau) > 0.05 {
							errs <- fmt.Errorf("request %d (tau %g): record %+v is not its own cap", i, tau, r)
							break
						}
					}
				case 1:
					if len(recs) == 0 {
						errs <- fmt.Errorf("request %d: no projections", i)
					}
					for _, r := range recs {
						if r.Capped || r.After != r.Before {
							errs <- fmt.Errorf("request %d (uncapped): record %+v shows a cap", i, r)
							break
						}
					}
				default:
					if recs != nil {
						errs <- fmt.Errorf("request %d: projections without asking", i)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if code, body := f.get(t, "/health"); code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("after the load: /health %d %v", code, body)
	}
	st := f.gen.Stats()
	if want := int64(clients*perClient + 1); st.Submitted != want || st.Completed != want {
		t.Errorf("batcher submitted %d completed %d, want %d each", st.Submitted, st.Completed, want)
	}
	if after, bound := heapInuse(), heapBound(before); after > bound {
		t.Errorf("heap in use %d MiB after %d requests, %d MiB before: over the bound of %d MiB (2x + %d MiB)",
			after>>20, clients*perClient, before>>20, bound>>20, heapSlack>>20)
	}
	f.shutdown(t)
}

// heapSlack is the heap growth TestLoad allows beyond doubling.
const heapSlack = 8 << 20

// heapBound is the most heap TestLoad accepts after the load, for before bytes in use first.
func heapBound(before uint64) uint64 { return 2*before + heapSlack }

// heapInuse returns the heap in use after a garbage collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// get fetches path and decodes its JSON.
func (f *fixture) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return resp.StatusCode, out
}

// errorOf checks an OpenAI-shaped error from the SDK.
func errorOf(t *testing.T, err error) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error, got %v", err)
	}
	return apiErr
}
