package probe

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"tether/model"
	"tether/tokenizer"
)

// Conversation is one single-turn exchange of a rollout: an optional system prompt, the user's
// question and the assistant's response.
type Conversation struct {
	System, Question, Response string
}

// Span is a tokenised conversation and the half-open range [Start, End) of its tokens that
// belong to the assistant's response.
type Span struct {
	Tokens     []int
	Start, End int
}

// Len is the number of response tokens in the span.
func (s Span) Len() int { return s.End - s.Start }

// Prompter turns conversations into token ids for one model, the same way for generation and for
// capture. It is safe for concurrent use.
//
// Models with a chat template: the conversation is rendered with the template, with
// enable_thinking=false (see renderChat). An empty system prompt means no system message at all,
// as the reference pipeline does for the "" default prompt. A template that rejects the system role (it raises, as Gemma 2's does) is detected
// from the template's own error the first time, and from then on the system prompt is prepended
// to the user turn as "<system>\n\n<question>", as the reference project does.
//
// Models without a chat template: the prompt is the plain text "<system>\n\n<question>\n\n" (or
// "<question>\n\n" without a system prompt) encoded with the tokenizer's special tokens (BOS),
// and the response follows it directly.
type Prompter struct {
	m *model.Model

	mu           sync.Mutex
	foldSystem   bool // the template rejected a system message
	systemTested bool // whether foldSystem has been decided
}

// NewPrompter returns a Prompter for m (which needs a tokenizer).
func NewPrompter(m *model.Model) *Prompter {
	return &Prompter{m: m}
}

// HasTemplate reports whether the model renders conversations with a chat template.
func (p *Prompter) HasTemplate() bool { return p.m.Template != nil }

// FoldsSystem reports whether the model's template was found to reject system messages, so that
// system prompts are prepended to the user turn.
func (p *Prompter) FoldsSystem() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.foldSystem
}

// FoldSystemPrompt is how a system prompt joins the question when the template has no system
// role: "<system>\n\n<question>".
func FoldSystemPrompt(system, question string) string {
	if system == "" {
		return question
	}
	return system + "\n\n" + question
}

// PlainPromptText is the prompt of a model without a chat template: "<system>\n\n<question>\n\n",
// or "<question>\n\n" without a system prompt.
func PlainPromptText(system, question string) string {
	if system == "" {
		return question + "\n\n"
	}
	return system + "\n\n" + question + "\n\n"
}

// messages builds the chat messages for a system prompt and a question.
func messages(system, question string, fold bool) []tokenizer.Message {
	if system == "" {
		return []tokenizer.Message{{Role: "user", Content: question}}
	}
	if fold {
		return []tokenizer.Message{{Role: "user", Content: FoldSystemPrompt(system, question)}}
	}
	return []tokenizer.Message{{Role: "system", Content: system}, {Role: "user", Content: question}}
}

// render renders the conversation's opening (system and user) plus extra messages, folding the
// system prompt into the user turn when the template rejects a system message.
func (p *Prompter) render(system, question string, extra []tokenizer.Message, addGen bool) (string, error) {
	p.mu.Lock()
	fold, tested := p.foldSystem, p.systemTested
	p.mu.Unlock()
	msgs := append(messages(system, question, fold), extra...)
	text, err := p.renderChat(msgs, addGen)
	if err == nil || system == "" || fold || tested {
		if err == nil && system != "" && !tested {
			p.setFold(false)
		}
		return text, err
	}
	var te *tokenizer.TemplateError
	if !errors.As(err, &te) {
		return "", err
	}
	// The template raised with a system message: try again with the system prompt folded into
	// the user turn; if that renders, the template does not take a system role.
	folded, err2 := p.renderChat(append(messages(system, question, true), extra...), addGen)
	if err2 != nil {
		return "", fmt.Errorf("%w (and with the system prompt folded into the user turn: %v)", err, err2)
	}
	p.setFold(true)
	return folded, nil
}

// renderChat renders messages with the model's template, with the tokenizer config's special
// tokens and enable_thinking=false: rollouts answer directly, without a reasoning block (Qwen 3's
// template then writes an empty <think></think> block into the prompt); templates that do not
// read enable_thinking are unaffected.
func (p *Prompter) renderChat(msgs []tokenizer.Message, addGen bool) (string, error) {
	if p.m.Template == nil {
		return "", fmt.Errorf("probe: model %s: %w", p.m.Name, model.ErrNoChatTemplate)
	}
	var opts tokenizer.RenderOptions
	if p.m.TokenizerConfig != nil {
		opts = p.m.TokenizerConfig.RenderOptions()
	}
	noThinking := false
	opts.EnableThinking = &noThinking
	opts.AddGenerationPrompt = addGen
	text, err := p.m.Template.Render(msgs, opts)
	if err != nil {
		return "", fmt.Errorf("probe: model %s: chat template: %w", p.m.Name, err)
	}
	return text, nil
}

func (p *Prompter) setFold(fold bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.systemTested {
		p.foldSystem, p.systemTested = fold, true
	}
}

// Prompt returns the token ids that generation continues: the rendered conversation up to and
// including the opening of the assistant turn (add_generation_prompt), or the plain prompt.
func (p *Prompter) Prompt(system, question string) ([]int, error) {
	if p.m.Template == nil {
		return p.m.PlainPrompt(PlainPromptText(system, question))
	}
	text, err := p.render(system, question, nil, true)
	if err != nil {
		return nil, err
	}
	ids, err := p.m.Tokenizer.Encode(text, false)
	if err != nil {
		return nil, fmt.Errorf("probe: model %s: encode prompt: %w", p.m.Name, err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("probe: model %s: the chat template rendered an empty prompt", p.m.Name)
	}
	return ids, nil
}

// Span tokenises the whole conversation, response included, and locates the response's tokens,
// as the reference Assistant Axis code does: a forward pass over the full conversation after
// generation.
//
// With a chat template the conversation is rendered with the assistant message and without a
// generation prompt. The response starts where the rendering of the conversation without the
// assistant message, with add_generation_prompt, ends (so the assistant header is not part of
// it); it ends where the response content ends in the rendered text, so the end-of-turn tokens
// the template adds (<|im_end|>, <end_of_turn>, ...) are excluded: they are the same for every
// rollout and would pull every mean towards one shared vector. The content is located in the
// rendered text after the header (leading and trailing white space ignored, as templates often
// strip it). Token boundaries come from encoding the text up to each end: when a token straddles
// a boundary it counts as part of the response.
//
// Without a chat template the tokens are the plain prompt followed by the response text, encoded
// together with BOS; the response is everything after the prompt's tokens.
func (p *Prompter) Span(c Conversation) (Span, error) {
	if p.m.Template == nil {
		return p.plainSpan(c)
	}
	head, err := p.render(c.System, c.Question, nil, true)
	if err != nil {
		return Span{}, err
	}
	full, err := p.render(c.System, c.Question, []tokenizer.Message{{Role: "assistant", Content: c.Response}}, false)
	if err != nil {
		return Span{}, err
	}
	headLen := commonPrefixLen(head, full)
	content := strings.TrimSpace(c.Response)
	if content == "" {
		content = c.Response // a response of white space only is its own content
	}
	start, end := headLen, headLen
	if content != "" {
		i := strings.Index(full[headLen:], content)
		if j := strings.LastIndex(content, "</think>"); i < 0 && j >= 0 {
			// Templates drop or move a reasoning block of earlier turns: keep the answer after it.
			content = strings.TrimSpace(content[j+len("</think>"):])
			i = strings.Index(full[headLen:], content)
		}
		if i < 0 {
			return Span{}, fmt.Errorf("probe: model %s: the chat template does not reproduce the response text after the assistant header (rendered %q)",
				p.m.Name, truncate(full[headLen:], 200))
		}
		start, end = headLen+i, headLen+i+len(content)
	}
	enc := func(s string) ([]int, error) { return p.m.Tokenizer.Encode(s, false) }
	ids, err := enc(full)
	if err != nil {
		return Span{}, fmt.Errorf("probe: model %s: encode conversation: %w", p.m.Name, err)
	}
	startIDs, err := enc(full[:start])
	if err != nil {
		return Span{}, fmt.Errorf("probe: model %s: encode conversation: %w", p.m.Name, err)
	}
	endIDs, err := enc(full[:end])
	if err != nil {
		return Span{}, fmt.Errorf("probe: model %s: encode conversation: %w", p.m.Name, err)
	}
	s := Span{Tokens: ids, Start: commonPrefixIDs(ids, startIDs)}
	s.End = boundaryEnd(ids, endIDs)
	if start == end {
		s.End = s.Start
	}
	if s.End < s.Start {
		s.End = s.Start
	}
	return s, nil
}

// plainSpan is Span for a model without a chat template.
func (p *Prompter) plainSpan(c Conversation) (Span, error) {
	promptText := PlainPromptText(c.System, c.Question)
	prompt, err := p.m.PlainPrompt(promptText)
	if err != nil {
		return Span{}, err
	}
	ids, err := p.m.PlainPrompt(promptText + c.Response)
	if err != nil {
		return Span{}, err
	}
	return Span{Tokens: ids, Start: commonPrefixIDs(ids, prompt), End: len(ids)}, nil
}

// boundaryEnd is where the tokens of a text prefix end inside ids: len(prefix) when ids starts
// with them, else one past their common part (the token that straddles the boundary).
func boundaryEnd(ids, prefix []int) int {
	n := commonPrefixIDs(ids, prefix)
	if n == len(prefix) {
		return n
	}
	return min(n+1, len(ids))
}

func commonPrefixIDs(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func commonPrefixLen(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
