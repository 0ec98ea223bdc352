package serve

import (
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestEndpoints: /v1/steering lists the axis file's calibration as written, /metrics counts
// the requests and tokens answered, and greedy log-probabilities are consistent (the chosen
// token is the most likely one; the alternatives' probabilities sum to at most 1).
func TestEndpoints(t *testing.T) {
	f := startServer(t, options{})
	code, st := f.get(t, "/v1/steering")
	data, _ := st["data"].([]any)
	if code != 200 || len(data) != 1 {
		t.Fatalf("/v1/steering: %d %v", code, st)
	}
	a := data[0].(map[string]any)
	tau := a["tau"].(map[string]any)
	for pi, p := range f.ax.Percentiles {
		row := tau[strconv.FormatFloat(p, 'g', -1, 64)].([]any)
		for l, v := range row {
			if float32(v.(float64)) != f.ax.Tau[pi][l] {
				t.Errorf("/v1/steering tau at percentile %g layer %d = %v, file has %v", p, l, v, f.ax.Tau[pi][l])
			}
		}
	}
	if a["name"] != "assistant" || a["layers"] != float64(4) {
		t.Errorf("/v1/steering entry %v", a)
	}

	resp, err := f.client.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(5),
		Temperature: openai.Float(0), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(3),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}})
	if err != nil {
		t.Fatal(err)
	}
	lps := resp.Choices[0].Logprobs.Content
	if len(lps) != int(resp.Usage.CompletionTokens) || len(lps) == 0 {
		t.Fatalf("%d logprobs for %d tokens", len(lps), resp.Usage.CompletionTokens)
	}
	for i, lp := range lps {
		if len(lp.TopLogprobs) != 3 || lp.TopLogprobs[0].Logprob != lp.Logprob || lp.Logprob > 0 {
			t.Errorf("token %d: logprob %v, top %v: greedy picks the most likely token", i, lp.Logprob, lp.TopLogprobs)
		}
		var sum float64
		for _, top := range lp.TopLogprobs {
			sum += math.Exp(top.Logprob)
		}
		if sum > 1+1e-9 {
			t.Errorf("token %d: top probabilities sum to %v > 1", i, sum)
		}
	}

	r, err := http.Get(f.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	text := string(body)
	want := map[string]string{
		`tether_requests_total{endpoint="/v1/chat/completions",code="200"}`: "1",
		`tether_completion_tokens_total`:                                    strconv.FormatInt(resp.Usage.CompletionTokens, 10),
		`tether_prompt_tokens_total`:                                        strconv.FormatInt(resp.Usage.PromptTokens, 10),
		`tether_queue_depth`:                                                "0",
		`tether_time_to_first_token_seconds_count`:                          "1",
	}
	for name, v := range want {
		re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(name) + " (.+)$")
		m := re.FindStringSubmatch(text)
		if m == nil || strings.TrimSpace(m[1]) != v {
			t.Errorf("metric %s = %v, want %s", name, m, v)
		}
	}
}

// TestBench: the benchmark measures every setting it is asked for, loses no request, and its
// token counts stay within what was asked.
func TestBench(t *testing.T) {
	m := tinyModel(t)
	path, _ := writeAxis(t, m, 3)
	axes, err := LoadAxes([]string{"a=" + path}, m)
	if err != nil {
		t.Fatal(err)
	}
	p := 50.0
	rows, err := Bench(t.Context(), m, BenchOptions{Concurrency: []int{1, 3}, Requests: 2, MaxTokens: 4, MaxBatch: 4, Axes: axes, Prompt: "hi",
		Cap: &Steering{Cap: []CapRequest{{Axis: "a", Layers: "1:3", Percentile: &p}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 2 modes x (sequential + 2 concurrencies)", len(rows))
	}
	for _, r := range rows {
		if r.Tokens <= 0 || r.Tokens > r.Requests*4 || r.TokensPerS <= 0 || r.Requests != r.Clients*2 {
			t.Errorf("row %+v: want 1..%d tokens over %d requests", r, r.Requests*4, r.Clients*2)
		}
	}
}
