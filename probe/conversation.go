package probe

import (
	"fmt"

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

// Prompter turns single-turn conversations into token ids for one model, the same way for
// generation and for capture, through the model's one chat renderer (model.Model.RenderChat: the
// chat template with enable_thinking off by default, a system prompt the template rejects or
// drops folded into the user turn, the plain User/Assistant format without a template). An empty
// system prompt means no system message at all, as the reference pipeline does for the ""
// default prompt. It is safe for concurrent use.
type Prompter struct {
	m *model.Model
}

// NewPrompter returns a Prompter for m (which needs a tokenizer).
func NewPrompter(m *model.Model) *Prompter {
	return &Prompter{m: m}
}

// messages builds the chat messages of a system prompt and a question.
func messages(system, question string) []tokenizer.Message {
	if system == "" {
		return []tokenizer.Message{{Role: "user", Content: question}}
	}
	return []tokenizer.Message{{Role: "system", Content: system}, {Role: "user", Content: question}}
}

// Prompt returns the token ids that generation continues: the rendered conversation up to and
// including the opening of the assistant turn (add_generation_prompt).
func (p *Prompter) Prompt(system, question string) ([]int, error) {
	ids, err := p.m.ChatPrompt(messages(system, question), true)
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	return ids, nil
}

// Span tokenises the whole conversation, response included, and locates the response's tokens,
// as the reference Assistant Axis code does: a forward pass over the full conversation after
// generation. It is ConversationSpans of [system, user, assistant], so a rollout's capture and
// `tether project` of the same conversation see the same tokens.
func (p *Prompter) Span(c Conversation) (Span, error) {
	msgs := append(messages(c.System, c.Question), tokenizer.Message{Role: "assistant", Content: c.Response})
	ids, spans, err := ConversationSpans(p.m, msgs)
	if err != nil {
		return Span{}, err
	}
	return Span{Tokens: ids, Start: spans[0].Start, End: spans[0].End}, nil
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
