package serve

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestBadInput: each malformed request gets OpenAI's error shape with the status, type and
// param that name the problem, and the server keeps answering.
func TestBadInput(t *testing.T) {
	f := startServer(t, options{apiKey: "sesame", maxBody: 4096})
	auth := map[string]string{"Authorization": "Bearer sesame"}
	chat := func(extra string) string {
		return `{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4` + extra + `}`
	}
	for _, tc := range []struct {
		name, path, body string
		header           map[string]string
		status           int
		param, code      string
		message          string // a part of the message
	}{
		{"malformed JSON", "/v1/chat/completions", `{"messages": [`, auth, 400, "", "", "malformed JSON"},
		{"wrong type", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "four"}`, auth, 400, "max_tokens", "", "expected int"},
		{"wrong content type", "/v1/chat/completions", `{"messages": [{"role": "user", "content": 5}]}`, auth, 400, "", "", "string or a list"},
		{"no messages", "/v1/chat/completions", `{"model": "tiny"}`, auth, 400, "messages", "", "at least one"},
		{"unknown role", "/v1/chat/completions", `{"messages": [{"role": "wizard", "content": "hi"}]}`, auth, 400, "messages[0].role", "", "wizard"},
		{"unknown model", "/v1/chat/completions", `{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}`, auth, 404, "model", "model_not_found", "gpt-9"},
		{"unknown axis", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "nope", "layers": "1", "percentile": 25}]}`), auth, 400, "steering.cap[0].axis", "", "loaded: assistant"},
		{"layers out of range", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "2:9", "percentile": 25}]}`), auth, 400, "steering.cap[0].layers", "", "4 layers"},
		{"uncalibrated percentile", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "percentile": 90}]}`), auth, 400, "steering.cap[0].percentile", "", "not calibrated"},
		{"percentile and tau", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "percentile": 25, "tau": 1}]}`), auth, 400, "steering.cap[0]", "", "exclusive"},
		{"tau NaN", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "tau": NaN}]}`), auth, 400, "", "", "malformed JSON"},
		{"tau as text", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "tau": "NaN"}]}`), auth, 400, "", "", "number"},
		{"second cap out of range", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "tau": 1}, {"axis": "assistant", "layers": "2:9", "tau": 1}]}`), auth, 400, "steering.cap[1].layers", "", "4 layers"},
		{"second cap's unknown axis", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1", "tau": 1}, {"axis": "nope", "layers": "2", "tau": 1}]}`), auth, 400, "steering.cap[1].axis", "", "unknown axis"},
		{"five caps on a layer", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "1:3", "tau": 1}, {"axis": "assistant", "layers": "1", "tau": 2}, {"axis": "assistant", "layers": "0:2", "tau": 3}, {"axis": "assistant", "layers": "1", "tau": 4}, {"axis": "assistant", "layers": "1", "tau": 5}]}`), auth, 400, "steering.cap[4].layers", "", "at most 4 per layer"},
		{"four caps and an ablation on a layer", "/v1/chat/completions", chat(`, "steering": {"cap": [{"axis": "assistant", "layers": "2", "tau": 1}, {"axis": "assistant", "layers": "2", "tau": 2}, {"axis": "assistant", "layers": "2", "tau": 3}, {"axis": "assistant", "layers": "2", "tau": 4}], "ablate": [{"vector": "assistant", "layers": "2:4"}]}`), auth, 400, "steering.ablate[0].layers", "", "layer 2 would have 5 clamps"},
		{"unknown add vector", "/v1/chat/completions", chat(`, "steering": {"add": [{"vector": "assistant", "layers": "1", "coef": 1}, {"vector": "/etc/passwd", "layers": "1", "coef": 1}]}`), auth, 400, "steering.add[1].vector", "", "unknown vector"},
		{"unknown ablation axis", "/v1/chat/completions", chat(`, "steering": {"ablate": [{"vector": "nope", "layers": "1"}]}`), auth, 400, "steering.ablate[0].vector", "", "loaded: assistant"},
		{"second ablation's layers", "/v1/chat/completions", chat(`, "steering": {"ablate": [{"vector": "assistant", "layers": "1"}, {"vector": "assistant", "layers": "7"}]}`), auth, 400, "steering.ablate[1].layers", "", "4 layers"},
		{"projection layers", "/v1/chat/completions", chat(`, "steering": {"projections": {"axis": "assistant", "layers": "5"}}`), auth, 400, "steering.projections.layers", "", "4 layers"},
		{"bad units", "/v1/chat/completions", chat(`, "steering": {"add": [{"vector": "assistant", "layers": "1", "coef": 1, "units": "furlongs"}]}`), auth, 400, "steering.add[0].units", "", "furlongs"},
		{"huge max_tokens", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000000}`, auth, 400, "max_tokens", "", "expected 1 to 200"},
		{"prompt over the context", "/v1/completions", `{"prompt": "` + strings.Repeat("abc ", 600) + `"}`, auth, 400, "prompt", "context_length_exceeded", "over the limit"},
		{"chat over the context", "/v1/chat/completions", `{"messages": [{"role": "user", "content": "` + strings.Repeat("abc ", 600) + `"}]}`, auth, 400, "messages", "context_length_exceeded", "over the limit"},
		{"token id out of range", "/v1/completions", `{"prompt": [1, 2, 320]}`, auth, 400, "prompt", "", "ids from 0 to 319"},
		{"empty token ids", "/v1/completions", `{"prompt": []}`, auth, 400, "", "", "token ids"},
		{"oversized body", "/v1/completions", `{"prompt": "` + strings.Repeat("a", 5000) + `"}`, auth, 413, "", "request_too_large", "4096 bytes"},
		{"missing key", "/v1/chat/completions", chat(""), nil, 401, "", "invalid_api_key", "API key"},
		{"wrong key", "/v1/chat/completions", chat(""), map[string]string{"Authorization": "Bearer sesamf"}, 401, "", "invalid_api_key", "API key"},
		{"n too large", "/v1/chat/completions", chat(`, "n": 50`), auth, 400, "n", "", "expected 1 to 4"},
		{"temperature out of range", "/v1/chat/completions", chat(`, "temperature": 7`), auth, 400, "temperature", "", "0 to 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := f.post(t, tc.path, tc.body, tc.header)
			e, ok := body["error"].(map[string]any)
			if status != tc.status || !ok {
				t.Fatalf("status %d body %v, want %d and an error object", status, body, tc.status)
			}
			msg, _ := e["message"].(string)
			param, _ := e["param"].(string)
			code, _ := e["code"].(string)
			if _, has := e["type"].(string); !has || param != tc.param || code != tc.code || !strings.Contains(msg, tc.message) {
				t.Errorf("error %v, want param %q code %q and a message containing %q", e, tc.param, tc.code, tc.message)
			}
		})
	}
	// Unknown fields are tolerated.
	if status, body := f.post(t, "/v1/chat/completions", chat(`, "frequency_penalty": 0, "user": "x", "whatever": {"a": 1}`), auth); status != 200 {
		t.Errorf("unknown fields: %d %v", status, body)
	}
	// The SDK sees the same errors as *openai.Error.
	bad := openai.NewClient(option.WithBaseURL(f.url+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err := bad.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "tiny",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if e := errorOf(t, err); e.StatusCode != 401 || e.Code != "invalid_api_key" {
		t.Errorf("SDK with a wrong key: %d %q", e.StatusCode, e.Code)
	}
	good := openai.NewClient(option.WithBaseURL(f.url+"/v1/"), option.WithAPIKey("sesame"), option.WithMaxRetries(0))
	_, err = good.Chat.Completions.New(t.Context(), openai.ChatCompletionNewParams{Model: "gpt-9",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if e := errorOf(t, err); e.StatusCode != 404 || e.Code != "model_not_found" || e.Param != "model" {
		t.Errorf("SDK with an unknown model: %d %q %q", e.StatusCode, e.Code, e.Param)
	}
	models, err := good.Models.List(t.Context())
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "tiny" {
		t.Errorf("models: %v %v", models, err)
	}
}

// TestDisconnectCancels: a client that goes away mid-stream frees its row: the batcher has
// nothing active or queued soon after, well before the 200 tokens asked for, and the server
// still answers.
func TestDisconnectCancels(t *testing.T) {
	f := startServer(t, options{maxBatch: 1})
	ctx, cancel := context.WithCancel(t.Context())
	stream := f.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "tiny", MaxTokens: openai.Int(200),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("go on and on")}})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	_ = stream.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := f.gen.Stats()
		if st.Active == 0 && st.Queued == 0 {
			if st.Tokens >= 200 {
				t.Fatalf("the cancelled sequence generated %d tokens: it ran to its end", st.Tokens)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows still busy 20 s after the client left: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := f.get(t, "/health"); code != http.StatusOK {
		t.Fatalf("health after a disconnect: %d", code)
	}
}
