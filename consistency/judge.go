package consistency

import (
	"context"
	"fmt"

	"tether/engine"
	"tether/model"
	"tether/tokenizer"
)

// DefaultJudgeMaxTokens bounds a judge model's answer (the verdict is on its first line).
const DefaultJudgeMaxTokens = 8

// JudgeSelf is the --judge value that judges with the model under test.
const JudgeSelf = "self"

// ModelJudge is a Judge over a local model: each prompt is one user message rendered by the
// model's chat renderer (model.Model.ChatPrompt), answered greedily, all prompts in one batched
// Generate call. A prompt longer than the model's context keeps its end (the templates put the
// persona, the line and the instruction last) after the first token.
type ModelJudge struct {
	m         *model.Model
	maxTokens int
}

// NewModelJudge returns a judge that asks m; maxTokens <= 0 means DefaultJudgeMaxTokens.
func NewModelJudge(m *model.Model, maxTokens int) *ModelJudge {
	if maxTokens <= 0 {
		maxTokens = DefaultJudgeMaxTokens
	}
	return &ModelJudge{m: m, maxTokens: maxTokens}
}

// Answer implements Judge.
func (j *ModelJudge) Answer(ctx context.Context, prompts []string) ([]string, error) {
	if len(prompts) == 0 {
		return nil, nil
	}
	reqs := make([]engine.Request, len(prompts))
	for i, p := range prompts {
		ids, err := j.m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: p}}, true)
		if err != nil {
			return nil, fmt.Errorf("judge %s: %w", j.m.Name, err)
		}
		if mp := j.m.Config.MaxPositions; mp > 0 && len(ids)+j.maxTokens > mp {
			if mp <= j.maxTokens+1 {
				return nil, fmt.Errorf("judge %s: its context of %d tokens leaves no room for a prompt and %d answer tokens", j.m.Name, mp, j.maxTokens)
			}
			cut := len(ids) + j.maxTokens - mp
			ids = append(ids[:1:1], ids[1+cut:]...)
		}
		reqs[i] = engine.Request{Prompt: ids, MaxNewTokens: j.maxTokens, StopTokens: j.m.StopTokens(), StopStrings: j.m.ChatStopStrings()}
	}
	res, err := j.m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Detokenizer: j.m.Tokenizer})
	if err != nil {
		return nil, fmt.Errorf("judge %s: %w", j.m.Name, err)
	}
	out := make([]string, len(res))
	for i, r := range res {
		if out[i], err = j.m.AssistantText(reqs[i].Prompt, r.Tokens); err != nil {
			return nil, fmt.Errorf("judge %s: decode: %w", j.m.Name, err)
		}
	}
	return out, nil
}

// OpenJudge resolves a --judge setting: JudgeSelf judges with self; anything else is a model
// reference opened on backend. The close function releases a model opened here (a no-op for
// self).
func OpenJudge(name string, self *model.Model, backend string) (*ModelJudge, func(), error) {
	if name == JudgeSelf {
		if self == nil {
			return nil, nil, fmt.Errorf("consistency: judge %q: no model to judge with", name)
		}
		return NewModelJudge(self, 0), func() {}, nil
	}
	jm, err := model.Open(name, model.Options{Backend: backend})
	if err != nil {
		return nil, nil, fmt.Errorf("consistency: judge model %q (expected %q or a model directory or Hugging Face id): %w", name, JudgeSelf, err)
	}
	return NewModelJudge(jm, 0), jm.Close, nil
}
