package serve

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"tether/engine"
	"tether/steer"
	"tether/tokenizer"
)

// nodeSDKDir holds the Node conformance script and the pinned openai npm package's
// package.json and package-lock.json; npmPrefix is where .ci/run installs that package
// (relative to this package's directory, the tests' working directory).
const (
	nodeSDKDir = "testdata/openai-npm"
	npmPrefix  = "../.tether/npm"
)

// nodeSDK returns node's path, the installed node_modules holding the pinned openai package
// and its version, or skips the test saying what is missing.
func nodeSDK(t *testing.T) (node, modules, version string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the OpenAI Node SDK conformance test needs it")
	}
	var pin struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	raw, err := os.ReadFile(filepath.Join(nodeSDKDir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &pin); err != nil || pin.Dependencies["openai"] == "" {
		t.Fatalf("%s/package.json: no pinned openai dependency (%v)", nodeSDKDir, err)
	}
	modules, err = filepath.Abs(filepath.Join(npmPrefix, "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	install := "from the repository root, copy serve/" + nodeSDKDir + "/package.json and package-lock.json into .tether/npm and run `npm ci --no-audit --no-fund --prefix .tether/npm` (.ci/run does)"
	var got struct {
		Version string `json:"version"`
	}
	raw, err = os.ReadFile(filepath.Join(modules, "openai", "package.json"))
	if err != nil {
		t.Skipf("the openai npm package is not installed in %s: %s", modules, install)
	}
	if err := json.Unmarshal(raw, &got); err != nil || got.Version != pin.Dependencies["openai"] {
		t.Skipf("%s holds openai %q, the test pins %q: %s", modules, got.Version, pin.Dependencies["openai"], install)
	}
	return node, modules, got.Version
}

// nodeResult is what conformance.cjs prints.
type nodeResult struct {
	SDKVersion string `json:"sdk_version"`
	Chat       struct {
		Object, Content, Role string
		FinishReason          string `json:"finish_reason"`
		Usage                 usage
	}
	Stream struct {
		Content           string
		Chunks            int
		Role              string
		FinishReason      string `json:"finish_reason"`
		Usage             *usage
		UsageChunkChoices *int `json:"usage_chunk_choices"`
	}
	Completion struct {
		Object, Text string
		FinishReason string `json:"finish_reason"`
		Usage        usage
	}
	Steered struct {
		Content           string
		Projections       []steer.TelemetryRecord
		ProjectionSummary *ProjectionSummary `json:"projection_summary"`
	}
	Errors map[string]struct {
		Thrown              bool
		APIError            bool `json:"api_error"`
		Class               string
		Status              int
		Message, Type, Code *string
		Param               *string
	}
}

// TestOpenAINodeSDK drives the server with the official OpenAI Node SDK (the openai npm
// package, pinned): a chat completion, a streamed one with include_usage, a completion, a
// capped chat completion with the steering field passed the JS way, and two errors. The texts
// and projections must equal what engine.Generate gives alone with the same seed (as tether
// generate would), the stream must carry the same text and usage as the plain answer, and the
// errors must reach the SDK as its own error classes with the server's status and message.
// It skips when node or the pinned package is absent.
func TestOpenAINodeSDK(t *testing.T) {
	node, modules, version := nodeSDK(t)
	f := startServer(t, options{})
	const maxNew, temp, seed = 12, 0.9, 42
	msgs := []tokenizer.Message{{Role: "system", Content: "You are a pirate."}, {Role: "user", Content: "hello there, who are you?"}}
	const prompt = "once upon a time"
	capped := steeringCases(f.axisPath)[2]
	if capped.name != "capped" {
		t.Fatalf("steering case %q, expected the capped one", capped.name)
	}
	badSteering := map[string]any{"cap": []any{map[string]any{"axis": "no-such-axis", "layers": "1", "tau": 0}}}
	spec := map[string]any{"model": "tiny", "messages": msgs, "prompt": prompt, "max_tokens": maxNew, "temperature": temp,
		"seed": seed, "steering": capped.steering, "bad_steering": badSteering}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(t.Context(), node, filepath.Join(nodeSDKDir, "conformance.cjs"), f.url+"/v1", string(specJSON))
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node conformance.cjs: %v\n%s", err, stderr.String())
	}
	var got nodeResult
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("conformance.cjs printed %q: %v", out, err)
	}

	// Chat, plain and streamed: Generate's text; the same usage both ways.
	text, _ := f.direct(t, steeringCases(f.axisPath)[0], msgs, maxNew, temp, seed)
	ids, err := f.m.ChatPrompt(msgs, true)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Chat
	if c.Object != "chat.completion" || c.Role != "assistant" || c.Content != text {
		t.Errorf("chat: %q %q %q, generate alone %q", c.Object, c.Role, c.Content, text)
	}
	if c.Usage.PromptTokens != len(ids) || c.Usage.CompletionTokens < 1 || c.Usage.CompletionTokens > maxNew ||
		c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
		t.Errorf("chat usage %+v: want %d prompt tokens and 1..%d completion tokens", c.Usage, len(ids), maxNew)
	}
	if c.FinishReason != "length" && c.FinishReason != "stop" {
		t.Errorf("chat finish_reason %q, want length or stop", c.FinishReason)
	}
	s := got.Stream
	if s.Content != text || s.Role != "assistant" || s.FinishReason != c.FinishReason || s.Chunks < 3 {
		t.Errorf("stream: %q (role %q, finish %q, %d chunks), want the chat's %q (%q)", s.Content, s.Role, s.FinishReason, s.Chunks, text, c.FinishReason)
	}
	if s.Usage == nil || *s.Usage != c.Usage || s.UsageChunkChoices == nil || *s.UsageChunkChoices != 0 {
		t.Errorf("stream usage %v in a chunk of %v choices, want %+v in a chunk of none", s.Usage, s.UsageChunkChoices, c.Usage)
	}

	// Completion: tether generate's plain prompt (BOS added), no chat stop strings.
	pids, err := f.m.PlainPrompt(prompt)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.m.Engine.Generate(t.Context(), []engine.Request{{Prompt: pids, MaxNewTokens: maxNew, StopTokens: f.m.StopTokens(),
		Sampling: engine.SamplingParams{Temperature: temp, TopP: 1, RepetitionPenalty: 1, Seed: seed}}},
		engine.GenerateOptions{Detokenizer: tokenizer.NewContinuation(f.m.Tokenizer, pids)})
	if err != nil {
		t.Fatal(err)
	}
	if cp := got.Completion; cp.Object != "text_completion" || cp.Text != res[0].Text || cp.Usage.PromptTokens != len(pids) ||
		cp.Usage.CompletionTokens != len(res[0].Tokens) {
		t.Errorf("completion: %q %q usage %+v, generate alone %q (%d + %d tokens)", cp.Object, cp.Text, cp.Usage, res[0].Text, len(pids), len(res[0].Tokens))
	}

	// Steering as an extra body field: the capped answer and projections of Generate alone.
	text, recs := f.direct(t, capped, msgs, maxNew, temp, seed)
	st := got.Steered
	if st.Content != text || !sameRecords(st.Projections, recs) {
		t.Errorf("steered: %q with projections\n%v\ngenerate alone %q with\n%v", st.Content, st.Projections, text, recs)
	}
	acted := false
	for _, r := range recs {
		acted = acted || r.Capped
	}
	if !acted || st.ProjectionSummary == nil || st.ProjectionSummary.CappedTokens == 0 {
		t.Errorf("steered: the cap never acted (summary %+v): the test would not tell the field was read", st.ProjectionSummary)
	}

	// Errors: the SDK's classes, with the status and message the server sends.
	for _, tc := range []struct {
		name, class string
		status      int
		body        map[string]any
	}{
		{"unknown_model", "NotFoundError", 404, map[string]any{"model": "no-such-model"}},
		{"bad_steering", "BadRequestError", 400, map[string]any{"steering": badSteering}},
	} {
		e := got.Errors[tc.name]
		body := map[string]any{"model": "tiny", "messages": msgs, "max_tokens": maxNew}
		for k, v := range tc.body {
			body[k] = v
		}
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		status, answer := f.post(t, "/v1/chat/completions", string(raw), nil)
		want, _ := answer["error"].(map[string]any)
		msg, _ := want["message"].(string)
		if status != tc.status || msg == "" {
			t.Fatalf("%s: the server answered %d %v, expected %d with an error message", tc.name, status, answer, tc.status)
		}
		if !e.Thrown || !e.APIError || e.Class != tc.class || e.Status != tc.status || e.Message == nil || *e.Message != msg {
			t.Errorf("%s: the SDK threw %+v (message %v), want %s with status %d and message %q", tc.name, e, deref(e.Message), tc.class, tc.status, msg)
		}
		if code, _ := want["code"].(string); code != "" && (e.Code == nil || *e.Code != code) {
			t.Errorf("%s: the SDK's error code %v, the server's %q", tc.name, deref(e.Code), code)
		}
	}
	if got.SDKVersion != version {
		t.Errorf("the script ran openai %q, the installed package is %q", got.SDKVersion, version)
	}
}

// deref returns *p, or "<nil>".
func deref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
