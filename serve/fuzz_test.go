package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tether/engine"
)

// FuzzRequestBody sends arbitrary bodies to /v1/chat/completions and /v1/completions of a server
// on the tiny model with two axes (requests of at most 4 tokens): every answer is a success
// (200, a JSON response or a server-sent event stream) or an OpenAI-shaped error (an "error"
// object with a message and a type) with a 4xx status, never a panic or a 5xx.
func FuzzRequestBody(f *testing.F) {
	for _, seed := range []string{
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`,
		`{"model":"tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"steering":{"cap":[{"axis":"assistant","layers":"1:3","percentile":25},{"axis":"second","layers":[2],"tau":0.5}],"projections":{"axis":"assistant","layers":"0:4"}}}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"steering":{"add":[{"vector":"assistant","layers":"1","coef":2,"units":"unit"},{"vector":"second","layers":"1:3","coef":-1}],"ablate":[{"vector":"second","layers":"2"}]}}`,
		`{"model":"tiny","prompt":"Once upon","max_tokens":2,"temperature":0.7,"top_p":0.9,"seed":3,"stop":["\n"],"n":2,"logprobs":2}`,
		`{"model":"tiny","prompt":[1,2,3],"max_tokens":1}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":3}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"steering":{"cap":[{"axis":"assistant","layers":"9","tau":"NaN"}]}}`,
		`{"messages":[]}`,
		`{"model":"tiny","messages":[{"role":"tool","content":"x"}]}`,
		`{`,
		``,
	} {
		f.Add("chat/completions", seed)
		f.Add("completions", seed)
	}
	m := tinyModel(f)
	axisA, _ := writeAxis(f, m, 3)
	axisB, _ := writeAxis(f, m, 5)
	axes, err := LoadAxes([]string{"assistant=" + axisA, "second=" + axisB}, m)
	if err != nil {
		f.Fatal(err)
	}
	gen, err := m.Engine.NewBatcher(engine.BatcherOptions{MaxBatch: 4, MaxQueue: 16, MaxClamps: DefaultMaxClamps})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = gen.Close(context.Background()) })
	srv, err := New(Config{Model: m, ModelName: "tiny", Axes: axes, Generator: gen, MaxBodyBytes: 1 << 16,
		MaxTokens: 4, MaxN: 2, MaxClamps: DefaultMaxClamps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, endpoint, body string) {
		if endpoint != "chat/completions" && endpoint != "completions" {
			return
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/"+endpoint, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		switch {
		case rec.Code == http.StatusOK:
			if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/event-stream") {
				if !bytes.Contains(out, []byte("data: ")) {
					t.Fatalf("200 stream without events: %q", out)
				}
				return
			}
			if !json.Valid(out) {
				t.Fatalf("200 with a body that is not JSON: %q", out)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e struct {
				Error *struct {
					Message string `json:"message"`
					Type    string `json:"type"`
				} `json:"error"`
			}
			if err := json.Unmarshal(out, &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("status %d without an OpenAI error object: %q", rec.Code, out)
			}
		default:
			t.Fatalf("status %d for body %q: %q", rec.Code, body, out)
		}
	})
}
