package bench

import (
	"context"
	"fmt"

	"tether/engine"
	"tether/model"
)

// ModelAnswerer answers the game with a model: each request is rendered by the model's one chat
// renderer (model.Model.ChatPrompt), all requests are generated in one batch, and the residual
// stream after block Layer is averaged over each reply's generated tokens.
type ModelAnswerer struct {
	M           *model.Model
	Layer       int
	MaxTokens   int
	Temperature float64
	TopP        float64
}

// Answer generates one reply per request (see Answerer).
func (a *ModelAnswerer) Answer(ctx context.Context, reqs []AnswerRequest) ([]AnswerReply, error) {
	ereqs := make([]engine.Request, len(reqs))
	maxPos := a.M.Config.MaxPositions
	for i, r := range reqs {
		ids, err := a.M.ChatPrompt(r.Messages, true)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.Key, err)
		}
		if maxPos > 0 && len(ids)+a.MaxTokens > maxPos {
			return nil, fmt.Errorf("%s: the game so far takes %d tokens and a reply up to %d (--max-tokens), the model's context holds %d: use fewer questions (--questions-limit) or a smaller --max-tokens", r.Key, len(ids), a.MaxTokens, maxPos)
		}
		ereqs[i] = engine.Request{
			Prompt:       ids,
			MaxNewTokens: a.MaxTokens,
			Sampling:     engine.SamplingParams{Temperature: a.Temperature, TopP: a.TopP, Seed: r.Seed},
			StopTokens:   a.M.StopTokens(),
			StopStrings:  a.M.ChatStopStrings(),
		}
	}
	res, err := a.M.Engine.Generate(ctx, ereqs, engine.GenerateOptions{CaptureLayers: []int{a.Layer}, Detokenizer: a.M.Tokenizer})
	if err != nil {
		return nil, err
	}
	out := make([]AnswerReply, len(res))
	for i, r := range res {
		text, err := a.M.AssistantText(ereqs[i].Prompt, r.Tokens)
		if err != nil {
			return nil, fmt.Errorf("%s: decode: %w", reqs[i].Key, err)
		}
		rows := r.Captured[a.Layer]
		first, last := r.PromptTokens, r.PromptTokens+len(r.Tokens)
		if len(r.Tokens) == 0 { // stopped at once: the position that produced the stop
			first, last = r.PromptTokens-1, r.PromptTokens
		}
		if first < 0 || last > len(rows) {
			return nil, fmt.Errorf("%s: captured %d positions at layer %d, expected %d", reqs[i].Key, len(rows), a.Layer, last)
		}
		out[i] = AnswerReply{Text: text, Activation: meanVector(rows[first:last])}
	}
	return out, nil
}
