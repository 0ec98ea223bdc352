package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
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
	// logprobs asks for each token's log-probability, topLogprobs for that many alternatives.
	logprobs    bool
	topLogprobs int
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
	if req.Logprobs != nil && *req.Logprobs {
		j.logprobs = true
		if req.TopLogprobs != nil {
			j.topLogprobs = *req.TopLogprobs
		}
	}
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
	if req.TopLogprobs != nil {
		if *req.TopLogprobs < 0 || *req.TopLogprobs > maxTopLogprobs {
			return invalid("top_logprobs", "%d: expected 0 to %d", *req.TopLogprobs, maxTopLogprobs)
		}
		if *req.TopLogprobs > 0 && (req.Logprobs == nil || !*req.Logprobs) {
			return invalid("top_logprobs", "needs logprobs: true")
		}
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
		writeError(w, invalid("prompt", "expected a prompt (a string or token ids)"))
		return
	}
	if req.Logprobs != nil && (*req.Logprobs < 0 || *req.Logprobs > maxCompletionLogprobs) {
		writeError(w, invalid("logprobs", "%d: expected 0 to %d", *req.Logprobs, maxCompletionLogprobs))
		return
	}
	ids := req.Prompt.IDs
	if ids != nil {
		if vocab := s.cfg.Model.Config.VocabSize; slices.ContainsFunc(ids, func(id int) bool { return id < 0 || id >= vocab }) {
			writeError(w, invalid("prompt", "token ids: expected ids from 0 to %d (the model's vocabulary)", vocab-1))
			return
		}
	} else {
		// The same tokenization as tether generate: the tokenizer's special tokens (BOS) added.
		var err error
		if ids, err = s.cfg.Model.PlainPrompt(req.Prompt.Text); err != nil {
			writeError(w, invalid("prompt", "%v", err))
			return
		}
	}
	j, e := s.prepare(r.Context(), "text", ids, &req.commonParams)
	if e != nil {
		writeError(w, e)
		return
	}
	j.start = start
	if req.Logprobs != nil {
		j.logprobs, j.topLogprobs = true, *req.Logprobs
	}
	s.run(w, r, j)
}

// prepare checks the shared fields and resolves the steering.
func (s *Server) prepare(ctx context.Context, kind string, ids []int, p *commonParams) (*job, *apiError) {
	if p.Model != "" && p.Model != s.cfg.ModelName {
		return nil, s.modelNotFound(p.Model)
	}
	j := &job{kind: kind, prompt: ids, stops: append([]string(nil), p.Stop...), n: 1, stream: p.Stream,
		maxNew: s.cfg.MaxTokens}
	if len(ids) > s.cfg.MaxPromptTokens || len(ids) >= s.cfg.MaxContext {
		param := "messages"
		if kind == "text" {
			param = "prompt"
		}
		return nil, &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: param, Code: "context_length_exceeded",
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
	// The batcher's rows hold at most MaxContext tokens: the answer ends there ("length").
	j.maxNew = min(j.maxNew, s.cfg.MaxContext-len(ids))
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
	st, e := resolveSteering(ctx, p.Steering, s.cfg.Model, s.cfg.Axes, s.cfg.MaxClamps)
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
	engine.Event
}

// submit starts the job's n sequences, each under its own context (so that a stop string
// seen by the server ends it), and merges their events; on failure it cancels those already
// started.
func (s *Server) submit(ctx context.Context, j *job) (<-chan choiceEvent, []context.CancelFunc, *apiError) {
	var chans []<-chan engine.Event
	var cancels []context.CancelFunc
	fail := func(e *apiError) (<-chan choiceEvent, []context.CancelFunc, *apiError) {
		for _, c := range cancels {
			c()
		}
		return nil, nil, e
	}
	for i := range j.n {
		req := engine.BatchRequest{Request: engine.Request{Prompt: j.prompt, MaxNewTokens: j.maxNew, Sampling: j.sampling,
			StopTokens: s.cfg.Model.StopTokens()}, Hooks: j.steering.hooks(), Logprob: j.logprobs, Logprobs: j.topLogprobs}
		req.Sampling.Seed += uint64(i)
		cctx, cancel := context.WithCancel(ctx)
		cancels = append(cancels, cancel)
		ch, err := s.cfg.Generator.Submit(cctx, req)
		if err != nil {
			switch {
			case errors.Is(err, engine.ErrQueueFull):
				return fail(&apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_exceeded", Code: "queue_full",
					Message: "the server's queue is full: retry later"})
			case errors.Is(err, engine.ErrBatcherClosed):
				return fail(&apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down",
					Message: "the server is shutting down"})
			default:
				return fail(invalid("", "%s", strings.TrimPrefix(err.Error(), "engine: Submit: ")))
			}
		}
		chans = append(chans, ch)
	}
	merged := make(chan choiceEvent)
	var wg sync.WaitGroup
	for i, ch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				select {
				case merged <- choiceEvent{index: i, Event: ev}:
				case <-ctx.Done():
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(merged)
	}()
	return merged, cancels, nil
}

// textState follows the text of one choice as engine.Generate cuts it for tether generate: the
// prompt's continuation, an incomplete UTF-8 sequence held back, stop strings cut (the
// sequence ends at the token that completes one).
type textState struct {
	det     *tokenizer.Continuation
	stop    *engine.StopMatcher
	tokens  []int
	decoded int
	text    strings.Builder
	stopped bool
}

// push adds a token and returns the text that became safe to send.
func (t *textState) push(tok int) (string, error) {
	t.tokens = append(t.tokens, tok)
	text, err := t.det.Decode(t.tokens, true)
	if err != nil {
		return "", fmt.Errorf("decoding generated tokens: %w", err)
	}
	if len(text) <= t.decoded || strings.HasSuffix(text, string(utf8.RuneError)) {
		return "", nil
	}
	return t.emit(text), nil
}

// emit pushes the new part of text through the stop matcher.
func (t *textState) emit(text string) string {
	out, stopped := t.stop.Push(text[t.decoded:])
	t.decoded = len(text)
	t.stopped = stopped
	t.text.WriteString(out)
	return out
}

// finish flushes what was held back at the end of generation.
func (t *textState) finish() string {
	if t.stopped {
		return ""
	}
	var out string
	if text, err := t.det.Decode(t.tokens, true); err == nil && len(text) > t.decoded {
		out = t.emit(text)
		if t.stopped {
			return out
		}
	}
	rest := t.stop.Flush()
	t.text.WriteString(rest)
	return out + rest
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

// choiceState is the progress of one choice.
type choiceState struct {
	text     *textState
	kept     int // tokens kept (those after a stop string are dropped)
	recsSent int // tokens whose projections were streamed
	first    bool
	logprobs logprobList
	done     bool
}

// run generates the job and answers, as one response or as server-sent events.
func (s *Server) run(w http.ResponseWriter, r *http.Request, j *job) {
	ctx := r.Context()
	log := s.log.With("request_id", requestID(ctx))
	events, cancels, e := s.submit(ctx, j)
	if e != nil {
		writeError(w, e)
		return
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
	}()
	id := map[string]string{"chat": "chatcmpl-", "text": "cmpl-"}[j.kind] + requestID(ctx)
	object := map[string]string{"chat": "chat.completion", "text": "text_completion"}[j.kind]
	base := response{ID: id, Object: object, Created: j.start.Unix(), Model: s.cfg.ModelName}
	var sse *sseWriter
	if j.stream {
		if j.kind == "chat" {
			base.Object = "chat.completion.chunk"
		}
		sse = newSSE(w)
	}
	states := make([]*choiceState, j.n)
	for i := range states {
		states[i] = &choiceState{first: true, text: &textState{det: tokenizer.NewContinuation(s.cfg.Model.Tokenizer, j.prompt),
			stop: engine.NewStopMatcher(j.stops)}}
	}
	final := make([]choice, j.n)
	u := usage{}
	var failed error
	for ev := range events {
		cs := states[ev.index]
		if cs.done {
			continue
		}
		if !ev.Done {
			if cs.text.stopped {
				continue // tokens after a stop string, before the cancel took effect
			}
			text, err := cs.text.push(ev.Token)
			if err != nil {
				failed = err
				cancels[ev.index]()
				cs.done = true
				continue
			}
			cs.kept++
			if j.logprobs {
				cs.logprobs.add(s.cfg.Model.Tokenizer, ev.Event)
			}
			if cs.text.stopped {
				cancels[ev.index]() // the sequence ends here, as engine.Generate ends it
			}
			if sse != nil {
				var recs []steer.TelemetryRecord
				if ev.Records != nil {
					recs = j.steering.tokenRecords(ev.Records, cs.kept-1)
					cs.recsSent = cs.kept
				}
				if text != "" || recs != nil || j.logprobs || cs.first && j.kind == "chat" {
					c := choice{Index: ev.index, Projections: recs}
					if j.logprobs {
						c.Logprobs = cs.logprobs.since(cs.kept-1, j.kind)
					}
					s.sendChunk(sse, base, j.kind, cs, text, c)
				}
			}
			continue
		}
		cs.done = true
		if ev.Err != nil && !cs.text.stopped {
			if ctx.Err() != nil {
				continue
			}
			failed = ev.Err
			continue
		}
		if ev.Result == nil {
			continue
		}
		res := *ev.Result
		reason := finishReason(res.StopReason)
		rest := ""
		if cs.text.stopped {
			reason = "stop"
		} else {
			rest = cs.text.finish()
			if cs.text.stopped {
				reason = "stop"
			}
			cs.kept = len(res.Tokens)
		}
		res.Tokens = res.Tokens[:min(cs.kept, len(res.Tokens))]
		res.Telemetry = res.Telemetry[:min(cs.kept, len(res.Telemetry))]
		recs, sum := j.steering.records(res)
		s.metrics.tokens(res.PromptTokens, len(res.Tokens))
		u.PromptTokens = res.PromptTokens
		u.CompletionTokens += len(res.Tokens)
		c := choice{Index: ev.index, FinishReason: &reason, Summary: sum}
		log.Info("generated", "choice", ev.index, "prompt_tokens", res.PromptTokens, "completion_tokens", len(res.Tokens),
			"finish_reason", reason, "steering", steeringDescription(j.steering))
		if sse != nil {
			if j.steering != nil && j.steering.projections {
				c.Projections = recsFrom(recs, cs.recsSent)
			}
			s.sendChunk(sse, base, j.kind, cs, rest, c)
			continue
		}
		if j.steering != nil && j.steering.projections {
			c.Projections = recsFrom(recs, 0)
		}
		if j.logprobs {
			c.Logprobs = cs.logprobs.since(0, j.kind)
		}
		text := cs.text.text.String()
		if j.kind == "chat" {
			c.Message = &chatMessageOut{Role: "assistant", Content: &text}
		} else {
			c.Text = &text
		}
		final[ev.index] = c
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if err := ctx.Err(); err != nil {
		log.Info("client went away: its sequences were cancelled", "error", err)
		return
	}
	if failed != nil {
		log.Error("generation failed", "error", failed)
		e := &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: failed.Error()}
		if errors.Is(failed, engine.ErrBatcherClosed) {
			e = &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "shutting_down", Message: "the server shut down before the answer was complete"}
		}
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

// recsFrom returns the records of tokens from index from on, never nil.
func recsFrom(recs []steer.TelemetryRecord, from int) []steer.TelemetryRecord {
	out := []steer.TelemetryRecord{}
	for _, r := range recs {
		if r.Token >= from {
			out = append(out, r)
		}
	}
	return out
}

// sendChunk sends a chunk of choice c with text.
func (s *Server) sendChunk(sse *sseWriter, base response, kind string, cs *choiceState, text string, c choice) {
	if kind == "chat" {
		c.Delta = &chatMessageOut{}
		if cs.first {
			c.Delta.Role = "assistant"
		}
		if text != "" || cs.first {
			c.Delta.Content = &text
		}
	} else {
		c.Text = &text
	}
	cs.first = false
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
