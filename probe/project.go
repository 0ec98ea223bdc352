package probe

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"tether/axis"
	"tether/conversation"
	"tether/model"
	"tether/tokenizer"
)

// ReadConversation reads a conversation file (package conversation: a JSON
// list of {"role", "content"} messages, or an object with "messages" or the
// reference's "conversation") for projection: roles system, user and
// assistant, a system message only first, and at least one assistant turn.
func ReadConversation(path string) ([]tokenizer.Message, error) {
	c, err := conversation.ReadChecked(path, conversation.Rules{Need: conversation.RoleAssistant, Purpose: "to project", SystemFirst: true})
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	return c.Messages, nil
}

// TurnSpan is the range [Start, End) of a conversation's tokens that holds the content of the
// assistant message msgs[Turn].
type TurnSpan struct {
	Turn       int
	Start, End int
}

// ConversationSpans tokenises a whole conversation with the model's chat renderer
// (model.Model.RenderChat) and locates every assistant turn's content, as the reference Assistant
// Axis code does for a forward pass over the full conversation. A turn starts after the rendering
// of the conversation before it with add_generation_prompt (so the assistant header is not part
// of it), at its content: the message text with white space at either end ignored (templates
// often strip it), searched in the rendered text after the header; when a template drops or
// moves a reasoning block, the answer after "</think>" is searched instead. It ends where the
// content ends, so the end-of-turn tokens the template adds (<|im_end|>, <end_of_turn>, ...) are
// excluded: they are the same for every rollout and would pull every mean towards one shared
// vector. Token boundaries come from encoding the text up to each end: a token straddling a
// boundary counts as the turn's.
func ConversationSpans(m *model.Model, msgs []tokenizer.Message) ([]int, []TurnSpan, error) {
	if m.Tokenizer == nil {
		return nil, nil, fmt.Errorf("probe: model %s has no tokenizer", m.Name)
	}
	full, err := m.RenderChat(msgs, false)
	if err != nil {
		return nil, nil, fmt.Errorf("probe: render conversation: %w", err)
	}
	enc := func(s string) ([]int, error) {
		ids, err := m.EncodeChat(s)
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		return ids, nil
	}
	ids, err := enc(full)
	if err != nil {
		return nil, nil, err
	}
	var spans []TurnSpan
	searchFrom := 0
	for i, msg := range msgs {
		if msg.Role != "assistant" {
			continue
		}
		head, err := m.RenderChat(msgs[:i], true)
		if err != nil {
			return nil, nil, fmt.Errorf("probe: render turns before %d: %w", i, err)
		}
		headLen := max(commonPrefixLen(head, full), searchFrom)
		content := strings.TrimSpace(msg.Content)
		if content == "" {
			content = msg.Content // a response of white space only is its own content
		}
		start, end := headLen, headLen
		if content != "" {
			k := strings.Index(full[headLen:], content)
			if j := strings.LastIndex(content, "</think>"); k < 0 && j >= 0 {
				// Templates drop or move a reasoning block: keep the answer after it.
				content = strings.TrimSpace(content[j+len("</think>"):])
				k = strings.Index(full[headLen:], content)
			}
			if k < 0 {
				return nil, nil, fmt.Errorf("probe: model %s: turn %d: the chat template does not reproduce the assistant text after its header (rendered %q)",
					m.Name, i, truncate(full[headLen:], 200))
			}
			start, end = headLen+k, headLen+k+len(content)
		}
		searchFrom = end
		startIDs, err := enc(full[:start])
		if err != nil {
			return nil, nil, err
		}
		endIDs, err := enc(full[:end])
		if err != nil {
			return nil, nil, err
		}
		s := TurnSpan{Turn: i, Start: commonPrefixIDs(ids, startIDs)}
		s.End = max(boundaryEnd(ids, endIDs), s.Start)
		if start == end {
			s.End = s.Start
		}
		spans = append(spans, s)
	}
	return ids, spans, nil
}

// TurnProjection is one assistant turn's mean activation projected on the unit axis.
type TurnProjection struct {
	// Turn is the message index in the conversation; Assistant counts assistant turns from 1.
	Turn      int `json:"turn"`
	Assistant int `json:"assistant_turn"`
	Tokens    int `json:"tokens"`
	// Projection is the mean of <h, u> over the turn's tokens (0 for a turn with no tokens).
	Projection float64 `json:"projection"`
	// Preview is the start of the turn's text.
	Preview string `json:"preview"`
}

// ConversationProjection is the result of ProjectConversation.
type ConversationProjection struct {
	Model  string           `json:"model"`
	Layer  int              `json:"layer"`
	Turns  []TurnProjection `json:"turns"`
	Tokens int              `json:"tokens"`
	// Tau holds the axis file's thresholds at the layer, by percentile, for reference.
	Tau map[string]float32 `json:"tau"`
}

// AxisRenderingMismatch compares how the persona run behind an axis rendered its chats (the axis
// file's axis.RenderingKey metadata, see RunRendering) with how m renders chats now. It returns
// a warning naming both when they differ (the axis was then calibrated on another prompt format
// than the one it is applied to), and "" when they agree or the axis file does not record it
// (built before tether recorded it). A malformed record is an error.
func AxisRenderingMismatch(a *axis.Axis, m *model.Model) (string, error) {
	text, ok := a.Extra[axis.RenderingKey]
	if !ok {
		return "", nil
	}
	built, err := model.ParseRendering(text, fmt.Sprintf("probe: axis of %s: metadata %q", a.Model, axis.RenderingKey))
	if err != nil {
		return "", err
	}
	here, err := m.ChatRendering()
	if err != nil {
		return "", fmt.Errorf("probe: %w", err)
	}
	if built.Equal(here) {
		return "", nil
	}
	return fmt.Sprintf("the axis was built from rollouts rendered as [%s], but model %s renders chats here as [%s]: the cap and projections apply to another prompt format than the one they were calibrated on (use the same model files and --enable-thinking setting as the persona run)",
		built, m.Name, here), nil
}

// ProjectConversation runs one forward pass over a whole conversation and returns, for every
// assistant turn, the mean of the residual stream after block layer over the turn's tokens,
// projected on the axis's unit vector at that layer (higher = more Assistant-like).
func ProjectConversation(ctx context.Context, m *model.Model, a *axis.Axis, msgs []tokenizer.Message, layer int) (*ConversationProjection, error) {
	if m.Engine == nil {
		return nil, fmt.Errorf("probe: model %s was opened without weights", m.Name)
	}
	if layer < 0 || layer >= a.Layers {
		return nil, fmt.Errorf("probe: project: layer %d out of range: the axis has %d layers (0..%d)", layer, a.Layers, a.Layers-1)
	}
	u, err := a.Unit(layer)
	if err != nil {
		return nil, fmt.Errorf("probe: project: %w", err)
	}
	ids, spans, err := ConversationSpans(m, msgs)
	if err != nil {
		return nil, err
	}
	acts, err := Capture(ctx, m.Engine, []Span{{Tokens: ids, Start: 0, End: len(ids)}}, CaptureOptions{Layers: []int{layer}, PerToken: true})
	if err != nil {
		return nil, err
	}
	states := acts.Tokens[0][0]
	out := &ConversationProjection{Model: m.Name, Layer: layer, Tokens: len(ids), Tau: map[string]float32{}}
	for i, p := range a.Percentiles {
		out.Tau[strconv.FormatFloat(p, 'g', -1, 64)] = a.Tau[i][layer]
	}
	for k, s := range spans {
		tp := TurnProjection{Turn: s.Turn, Assistant: k + 1, Tokens: s.End - s.Start, Preview: truncate(strings.TrimSpace(msgs[s.Turn].Content), 60)}
		if tp.Tokens == 0 {
			tp.Projection = 0
		} else {
			var sum float64
			for pos := s.Start; pos < s.End; pos++ {
				sum += dot32(states[pos], u)
			}
			tp.Projection = sum / float64(tp.Tokens)
		}
		out.Turns = append(out.Turns, tp)
	}
	return out, nil
}
