package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"tether/engine"
	"tether/steer"
	"tether/tokenizer"
)

// job is a validated generation request: what every choice of it runs.
type job struct {
	kind      string // "chat" or "text"
	prompt    []int
	stops     []string
	maxNew    int
	sampling  engine.SamplingParams
	n         int
	stream    bool
	withUsage bool
	steering  *resolved
	start     time.Time
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req chatRequest
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if e := s.checkChat(&req); e != nil {
		writeError(w, e)
		return
	}
	msgs := make([]tokenizer.Message, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = tokenizer.Message{Role: m.Role, Content: string(m.Content)}
	}
	m := s.cfg.Model
	ids, err := m.ChatPrompt(msgs, true)
	if err != nil {
		writeError(w, invalid("messages", "%v", err))
		return
	}
	j, e := s.prepare(r.Context(), "chat", ids, &req.commonParams)
	if e != nil {
		writeError(w, e)
		return
	}
	j.stops = append(j.stops, m.ChatStopStrings()...)
	j.start = start
	s.run(w, r, j)
}

// checkChat checks what is particular to a chat request.
func (s *Server) checkChat(req *chatRequest) *apiError {
	if len(req.Messages) == 0 {
		return invalid("messages", "expected at least one message")
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant":
		default:
			return invalid(fmt.Sprintf("messages[%d].role", i), "role %q: expected system, user or assistant", m.Role)
		}
		if m.Role == "developer" {
			req.Messages[i].Role = "system"
		}
	}
	if req.Logprobs != nil && *req.Logprobs || req.TopLogprobs != nil && *req.TopLogprobs > 0 {
		return invalid("logprobs", "log probabilities are not available from this server's engine yet")
	}
	return nil
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var req completionRequest
	if e := decode(r, &req); e != nil {
		writeError(w, e)
		return
	}
	if !req.Prompt.Set {
		writeError(w, invalid("prompt", "expected a prompt (a string)"))
		return
	}
	if req.Logprobs != nil && *req.Logprobs > 0 {
		writeError(w, invalid("logprobs", "log probabilities are not available from this server's engine yet"))
		return
	}
	// The same tokenization as tether generate: the tokenizer's special tokens (BOS) added.
	ids, err := s.cfg.Model.PlainPrompt(req.Prompt.Text)
	if err != nil {
		writeError(w, invalid("prompt", "%v", err))
		return
	}
	j, e := s.prepare(r.Context(), "text", ids, &req.commonParams)
	if e != nil {
		writeError(w, e)
		return
	}
	j.start = start
	s.run(w, r, j)
}

// prepare checks the shared fields and resolves the steering.
func (s *Server) prepare(ctx context.Context, kind string, ids []int, p *commonParams) (*job, *apiError) {
	if p.Model != "" && p.Model != s.cfg.ModelName {
		return nil, s.modelNotFound(p.Model)
	}
	j := &job{kind: kind, prompt: ids, stops: append([]string(nil), p.Stop...), n: 1, stream: p.Stream,
		maxNew: s.cfg.MaxTokens}
	if len(ids) > s.cfg.MaxPromptTokens {
		return nil, &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: "messages", Code: "context_length_exceeded",
			Message: fmt.Sprintf("the prompt has %d tokens, over the limit of %d (the model's context is %d tokens)",
				len(ids), s.cfg.MaxPromptTokens, s.cfg.Model.Config.MaxPositions)}
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"max_tokens", p.MaxTokens}, {"max_completion_tokens", p.MaxCompletionTokens}} {
		if f.v == nil {
			continue
		}
		if *f.v < 1 || *f.v > s.cfg.MaxTokens {
			return nil, invalid(f.name, "%d: expected 1 to %d", *f.v, s.cfg.MaxTokens)
		}
		j.maxNew = *f.v
	}
	if p.N != nil {
		if *p.N < 1 || *p.N > s.cfg.MaxN {
			return nil, invalid("n", "%d: expected 1 to %d", *p.N, s.cfg.MaxN)
		}
		j.n = *p.N
	}
	j.sampling = engine.SamplingParams{Temperature: 1, TopP: 1, RepetitionPenalty: 1, Seed: rand.Uint64()}
	if p.Temperature != nil {
		if !(*p.Temperature >= 0 && *p.Temperature <= 2) {
			return nil, invalid("temperature", "%v: expected 0 to 2", *p.Temperature)
		}
		j.sampling.Temperature = *p.Temperature
	}
	if p.TopP != nil {
		if !(*p.TopP > 0 && *p.TopP <= 1) {
			return nil, invalid("top_p", "%v: expected a value in (0, 1]", *p.TopP)
		}
		j.sampling.TopP = *p.TopP
	}
	if p.Seed != nil {
		j.sampling.Seed = uint64(*p.Seed)
	}
	if err := j.sampling.Validate(); err != nil {
		return nil, invalid("", "%v", err)
	}
	if len(j.stops) > 4 {
		return nil, invalid("stop", "%d stop strings: expected at most 4", len(j.stops))
	}
	if p.StreamOptions != nil {
		if !p.Stream {
			return nil, invalid("stream_options", "only allowed with stream: true")
		}
		j.withUsage = p.StreamOptions.IncludeUsage
	}
	st, e := resolveSteering(ctx, p.Steering, s.cfg.Model, s.cfg.Axes)
	if e != nil {
		var ae *apiError
		if errors.As(e, &ae) {
			return nil, ae
		}
		return nil, invalid("steering", "%v", e)
	}
	j.steering = st
	return j, nil
}

// choiceEvent is an event of the choice at index.
type choiceEvent struct {
	index int
	Event
}

// submit starts the job's n sequences and merges their events; on failure it cancels those
// already started.
func (s *Server) submit(ctx context.Context, j *job) (<-chan choiceEvent, *apiError) {
	merged := make(chan choiceEvent)
	var chans []<-chan Event
	for i := range j.n {
		req := engine.Request{Prompt: j.prompt, MaxNewTokens: j.maxNew, Sampling: j.sampling,
			StopTokens: s.cfg.Model.StopTokens(), StopStrings: j.stops}
		req.Sampling.Seed += uint64(i)
		ch, err := s.cfg.Generator.Submit(ctx, Job{Request: req, Hooks: j.steering.hooks(),
			Detokenizer: tokenizer.NewContinuation(s.cfg.Model.Tokenizer, j.prompt)})
		if err != nil {
			switch {
			case errors.Is(err, ErrQueueFull):
				return nil, &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "queue_full",
					Message: "the server's queue is full: retry later"}
			case errors.Is(err, ErrClosed):
				return nil, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down",
					Message: "the server is shutting down"}
			default:
				return nil, &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
			}
		}
		chans = append(chans, ch)
	}
	left := make(chan struct{}, len(chans))
	for i, ch := range chans {
		go func() {
			for ev := range ch {
				select {
				case merged <- choiceEvent{index: i, Event: ev}:
				case <-ctx.Done():
				}
			}
			left <- struct{}{}
		}()
	}
	go func() {
		for range chans {
			<-left
		}
		close(merged)
	}()
	return merged, nil
}

// textState follows the streamed text of one choice as the engine cuts it (continuation
// decoding, stop strings held back), so that the pieces add up to Result.Text.
type textState struct {
	det     *tokenizer.Continuation
	stop    *engine.StopMatcher
	tokens  []int
	decoded int
	sent    strings.Builder
	first   bool
}

// push adds a token and returns the text that became safe to send.
func (t *textState) push(tok int) string {
	t.tokens = append(t.tokens, tok)
	text, err := t.det.Decode(t.tokens, true)
	if err != nil || len(text) <= t.decoded || strings.HasSuffix(text, string(utf8.RuneError)) {
		return ""
	}
	emit, _ := t.stop.Push(text[t.decoded:])
	t.decoded = len(text)
	t.sent.WriteString(emit)
	return emit
}

// rest is what is left to send of the final text.
func (t *textState) rest(final string) string {
	sent := t.sent.String()
	if !strings.HasPrefix(final, sent) {
		return ""
	}
	t.sent.WriteString(final[len(sent):])
	return final[len(sent):]
}

// finishReason maps an engine stop reason to OpenAI's.
func finishReason(stop string) string {
	switch stop {
	case engine.StopLength, engine.StopContext:
		return "length"
	default:
		return "stop"
	}
}

// run generates the job and answers, as one response or as server-sent events.
func (s *Server) run(w http.ResponseWriter, r *http.Request, j *job) {
	ctx := r.Context()
	log := s.log.With("request_id", requestID(ctx))
	events, e := s.submit(ctx, j)
	if e != nil {
		writeError(w, e)
		return
	}
	id := map[string]string{"chat": "chatcmpl-", "text": "cmpl-"}[j.kind] + requestID(ctx)
	object := map[string]string{"chat": "chat.completion", "text": "text_completion"}[j.kind]
	base := response{ID: id, Object: object, Created: j.start.Unix(), Model: s.cfg.ModelName}
	var sse *sseWriter
	if j.stream {
		base.Object = map[string]string{"chat": "chat.completion.chunk", "text": "text_completion"}[j.kind]
		sse = newSSE(w)
	}
	states := make([]*textState, j.n)
	for i := range states {
		states[i] = &textState{det: tokenizer.NewContinuation(s.cfg.Model.Tokenizer, j.prompt), stop: engine.NewStopMatcher(j.stops), first: true}
	}
	final := make([]choice, j.n)
	u := usage{}
	gotFirst := false
	var failed error
	for ev := range events {
		if !ev.Done {
			if !gotFirst {
				gotFirst = true
				s.metrics.firstToken(time.Since(j.start))
			}
			if sse != nil {
				if text := states[ev.index].push(ev.Token); text != "" || states[ev.index].first && j.kind == "chat" {
					s.sendDelta(sse, base, j.kind, ev.index, states[ev.index], text, nil)
				}
			}
			continue
		}
		if ev.Err != nil && !errors.Is(ev.Err, context.Canceled) {
			failed = ev.Err
			continue
		}
		if ev.Result == nil {
			continue
		}
		res := *ev.Result
		recs, sum, capped := j.steering.records(res)
		s.metrics.tokens(res.PromptTokens, len(res.Tokens), capped)
		u.PromptTokens = res.PromptTokens
		u.CompletionTokens += len(res.Tokens)
		reason := finishReason(res.StopReason)
		c := choice{Index: ev.index, FinishReason: &reason, Projections: recs, Summary: sum}
		if j.steering != nil && j.steering.projections && c.Projections == nil {
			c.Projections = []steer.TelemetryRecord{}
		}
		log.Info("generated", "choice", ev.index, "prompt_tokens", res.PromptTokens, "completion_tokens", len(res.Tokens),
			"stop", res.StopReason, "steering", steeringDescription(j.steering))
		if sse != nil {
			st := states[ev.index]
			s.sendDelta(sse, base, j.kind, ev.index, st, st.rest(res.Text), &c)
			continue
		}
		text := res.Text
		if j.kind == "chat" {
			c.Message = &chatMessageOut{Role: "assistant", Content: &text}
		} else {
			c.Text = &text
		}
		final[ev.index] = c
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if err := ctx.Err(); err != nil {
		log.Info("client went away: sequence cancelled", "error", err)
		return
	}
	if failed != nil {
		log.Error("generation failed", "error", failed)
		e := &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: failed.Error()}
		if sse != nil {
			sse.send(e.body())
			return
		}
		writeError(w, e)
		return
	}
	if sse != nil {
		if j.withUsage {
			chunk := base
			chunk.Choices, chunk.Usage = []choice{}, &u
			sse.send(chunk)
		}
		sse.done()
		return
	}
	base.Choices, base.Usage = final, &u
	writeJSON(w, http.StatusOK, base)
}

// sendDelta sends a chunk with text for choice index; end (with the finish reason and
// projections) closes the choice.
func (s *Server) sendDelta(sse *sseWriter, base response, kind string, index int, st *textState, text string, end *choice) {
	c := choice{Index: index}
	if end != nil {
		c = *end
	}
	if kind == "chat" {
		c.Delta = &chatMessageOut{}
		if st.first {
			c.Delta.Role = "assistant"
		}
		if text != "" || st.first {
			c.Delta.Content = &text
		}
	} else {
		c.Text = &text
	}
	st.first = false
	chunk := base
	chunk.Choices = []choice{c}
	sse.send(chunk)
}

func steeringDescription(r *resolved) string {
	if r == nil {
		return "none"
	}
	return r.setup.Description
}

// sseWriter writes server-sent events.
type sseWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newSSE(w http.ResponseWriter) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sseWriter{w: w, f: f}
}

func (s *sseWriter) send(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	fmt.Fprintf(s.w, "data: %s\n\n", b)
	if s.f != nil {
		s.f.Flush()
	}
}

func (s *sseWriter) done() {
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	if s.f != nil {
		s.f.Flush()
	}
}
