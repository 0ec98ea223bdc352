package serve

import (
	"bytes"
	"encoding/json"
	"fmt"

	"tether/steer"
)

// commonParams are the request fields shared by chat and text completions. Unknown fields
// are ignored, as OpenAI-compatible servers do.
type commonParams struct {
	Model               string         `json:"model"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	Seed                *int64         `json:"seed"`
	Stop                stopField      `json:"stop"`
	N                   *int           `json:"n"`
	Stream              bool           `json:"stream"`
	StreamOptions       *streamOptions `json:"stream_options"`
	// Steering is tether's extra body field (see Steering).
	Steering *Steering `json:"steering"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// chatRequest is the body of POST /v1/chat/completions.
type chatRequest struct {
	commonParams
	Messages    []chatMessage `json:"messages"`
	Logprobs    *bool         `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
}

// completionRequest is the body of POST /v1/completions.
type completionRequest struct {
	commonParams
	Prompt   promptField `json:"prompt"`
	Logprobs *int        `json:"logprobs"`
}

// chatMessage is one message; content is a string or a list of text parts.
type chatMessage struct {
	Role    string       `json:"role"`
	Content contentField `json:"content"`
}

// contentField is a message's content: a string, or parts of which only "text" ones are
// understood.
type contentField string

func (c *contentField) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = contentField(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("expected a string or a list of text parts")
	}
	var all string
	for i, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("part %d has type %q: only text parts are supported", i, p.Type)
		}
		all += p.Text
	}
	*c = contentField(all)
	return nil
}

// stopField is "stop": a string or a list of strings.
type stopField []string

func (s *stopField) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stopField{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("expected a string or a list of strings")
	}
	*s = list
	return nil
}

// promptField is a completion's prompt: a string, a list holding one string, or token ids (a
// list of integers, or a list holding one such list), which are used as given (no BOS added).
type promptField struct {
	Text string
	IDs  []int // token ids, when the prompt was given as ids
	Set  bool
}

func (p *promptField) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = promptField{Text: one, Set: true}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err == nil && len(list) == 1 {
		*p = promptField{Text: list[0], Set: true}
		return nil
	}
	var ids []int
	if err := json.Unmarshal(b, &ids); err == nil && len(ids) > 0 {
		*p = promptField{IDs: ids, Set: true}
		return nil
	}
	var nested [][]int
	if err := json.Unmarshal(b, &nested); err == nil && len(nested) == 1 && len(nested[0]) > 0 {
		*p = promptField{IDs: nested[0], Set: true}
		return nil
	}
	return fmt.Errorf("expected a string, a list of one string, or token ids (a non-empty list of integers, or a list of one such list)")
}

// usage counts the tokens of a response.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ProjectionSummary is the per-response digest of the projections: the mean projection at the
// measure layer (steer.DefaultMeasureLayer) after and before the interventions, and how often
// a cap acted.
type ProjectionSummary struct {
	Layer          int     `json:"layer"`
	MeanProjection float64 `json:"mean_projection"`
	MeanBefore     float64 `json:"mean_projection_before"`
	CappedTokens   int     `json:"capped_tokens"`
	Tokens         int     `json:"tokens"`
	CappedFraction float64 `json:"capped_fraction"`
}

// chatMessageOut is the assistant message of a chat choice (and the delta of a chunk).
type chatMessageOut struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// choice is one choice of a response or a streamed chunk; chat uses Message or Delta,
// completions Text.
type choice struct {
	Index        int                     `json:"index"`
	Message      *chatMessageOut         `json:"message,omitempty"`
	Delta        *chatMessageOut         `json:"delta,omitempty"`
	Text         *string                 `json:"text,omitempty"`
	Logprobs     any                     `json:"logprobs"`
	FinishReason *string                 `json:"finish_reason"`
	Projections  []steer.TelemetryRecord `json:"projections,omitempty"`
	Summary      *ProjectionSummary      `json:"projection_summary,omitempty"`
}

// response is a whole response or one streamed chunk.
type response struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}
