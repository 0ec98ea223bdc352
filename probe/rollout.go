package probe

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"tether/engine"
	"tether/model"
)

// The paper's sampling for rollouts.
const (
	RolloutTemperature = 0.7
	RolloutTopP        = 0.9
)

// Rollout is one completed rollout: one line of a run's rollouts.jsonl.
type Rollout struct {
	// ID is "<role>/p<prompt index>/q<question id>/s<sample>".
	ID string `json:"id"`
	// Role is the role's name, DefaultRoleName for the default prompts.
	Role        string `json:"role"`
	PromptIndex int    `json:"prompt_index"`
	QuestionID  int    `json:"question_id"`
	Sample      int    `json:"sample"`
	// Seed is the sampling seed, a pure function of the run seed and ID (RolloutSeed).
	Seed uint64 `json:"seed"`
	// System is the system prompt with {model_name} expanded; Question the user's question.
	System   string `json:"system"`
	Question string `json:"question"`
	// Response is the generated text; ResponseIDs its token ids (stop token excluded).
	Response       string `json:"response"`
	ResponseIDs    []int  `json:"response_ids"`
	ResponseTokens int    `json:"response_tokens"`
	// StopReason is why generation ended: engine.StopEOS, engine.StopLength (max tokens) or
	// engine.StopContext (the prompt and response filled the model's context). Lines written
	// before it was recorded have "".
	StopReason string `json:"stop_reason,omitempty"`
	// Score is the judge's role-adherence score 0..3; nil without a judge or when the judge's
	// answer had no score.
	Score *int `json:"score"`
	// Shard is the activation shard (relative to the run directory) and Row the rollout's row in
	// its "mean" tensor.
	Shard string `json:"shard"`
	Row   int    `json:"row"`
}

// Kept reports whether the rollout counts for role vectors: an empty response never does (its
// activation row is zeros, with count 0); otherwise the default role keeps every rollout, and
// other roles keep rollouts the judge scored 3, or every rollout when the run had no judge
// (judged false).
func (r Rollout) Kept(judged bool) bool {
	if r.ResponseTokens == 0 {
		return false
	}
	if r.Role == DefaultRoleName || !judged {
		return true
	}
	return r.Score != nil && *r.Score == KeepScore
}

// RolloutSpec is a rollout to run: everything but the response.
type RolloutSpec struct {
	ID          string
	Role        string
	PromptIndex int
	QuestionID  int
	Sample      int
	Seed        uint64
	System      string
	Question    string
	// EvalPrompt is the role's judge rubric (may be empty).
	EvalPrompt string
}

// RolloutID is the identifier of a rollout: "<role>/p<prompt>/q<question id>/s<sample>".
func RolloutID(role string, prompt, questionID, sample int) string {
	return fmt.Sprintf("%s/p%d/q%d/s%d", role, prompt, questionID, sample)
}

// RolloutSeed derives a rollout's sampling seed from the run seed and the rollout's id, so that
// it does not depend on the order or batch in which rollouts run: the first 8 bytes
// (little-endian) of sha256("<run seed>:<id>").
func RolloutSeed(runSeed uint64, id string) uint64 {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%d:%s", runSeed, id)))
	return binary.LittleEndian.Uint64(sum[:8])
}

// validUTF8 replaces every byte that is not part of valid UTF-8 by U+FFFD, as encoding/json does
// when it writes a string, so that the response text a run stores is the text it captured.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// ShortModelName is the name that replaces {model_name} in prompts by default, by the rule of
// the reference pipeline (assistant_axis/models.py get_config: its known models map to the same
// names): "Gemma", "Qwen", "Llama" or "Mistral" when the model name contains that family's name
// (case-insensitively, checked in that order), else the part of the name after its last "/" up
// to its first "-" ("org/Phi-3-mini" gives "Phi").
func ShortModelName(name string) string {
	lower := strings.ToLower(name)
	for _, family := range []string{"Gemma", "Qwen", "Llama", "Mistral"} {
		if strings.Contains(lower, strings.ToLower(family)) {
			return family
		}
	}
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	short, _, _ := strings.Cut(name, "-")
	return short
}

// PlanRollouts lists every rollout of a data set in run order: the default prompts first, then
// the roles in data set order; within a role, prompt by prompt, question by question, sample by
// sample. Prompts have {model_name} replaced by modelName. Role-specific questions of the
// reference format are not used: every prompt answers the shared extraction questions.
func PlanRollouts(d *Dataset, modelName string, samples int, runSeed uint64) []RolloutSpec {
	var out []RolloutSpec
	add := func(r Role, name string) {
		for pi, p := range r.Prompts {
			system := ExpandModelName(p, modelName)
			for _, q := range d.Questions {
				for s := 0; s < samples; s++ {
					id := RolloutID(name, pi, q.ID, s)
					out = append(out, RolloutSpec{ID: id, Role: name, PromptIndex: pi, QuestionID: q.ID, Sample: s,
						Seed: RolloutSeed(runSeed, id), System: system, Question: q.Text, EvalPrompt: r.EvalPrompt})
				}
			}
		}
	}
	add(d.Default, DefaultRoleName)
	for _, r := range d.Roles {
		add(r, r.Name)
	}
	return out
}

// Generated is the outcome of generating one rollout.
type Generated struct {
	// Prompt is the token ids generation continued, Tokens the generated ids (stop token, and
	// the plain chat format's stop string, excluded) and Text their decoded continuation.
	Prompt []int
	Tokens []int
	Text   string
	// StopReason is the engine's stop reason (engine.StopEOS, StopLength, StopContext, ...).
	StopReason string
}

// ResponseSpan is the sequence a rollout's activations are read from: the prompt ids followed by
// the response ids exactly as generated, with the response as the span. Re-encoding the decoded
// text instead is not faithful: decode then encode does not give the same ids back (a
// SentencePiece tokenizer reads a generated "<s>" back as BOS plus an extra "▁" token), so the
// re-encoded conversation can differ from what the model saw, and be longer than the context
// that generation filled. The stop token is not part of the span, as it is not part of the
// response.
func ResponseSpan(prompt, response []int) Span {
	tokens := append(append(make([]int, 0, len(prompt)+len(response)), prompt...), response...)
	return Span{Tokens: tokens, Start: len(prompt), End: len(tokens)}
}

// GenerateRollouts answers a batch of rollouts in one Generate call with the paper's sampling
// (temperature 0.7, top-p 0.9), each with its own seed, stopping at the model's stop tokens or
// after maxTokens new tokens (and, in the plain chat format, at its stop string, whose tokens are
// then left out of the response). The response text is the continuation as it appears in the
// decoded whole (see model.Model.AssistantTurn).
// With ignoreEOS the model's stop tokens and stop strings are
// ignored (benchmarks of random models).
func GenerateRollouts(ctx context.Context, m *model.Model, p *Prompter, specs []RolloutSpec, maxTokens int, ignoreEOS bool) ([]Generated, error) {
	if maxTokens <= 0 {
		return nil, fmt.Errorf("probe: generate: max tokens %d (expected > 0)", maxTokens)
	}
	reqs := make([]engine.Request, len(specs))
	out := make([]Generated, len(specs))
	var stops []int
	var stopStrings []string
	if !ignoreEOS {
		stops, stopStrings = m.StopTokens(), m.ChatStopStrings()
	}
	for i, s := range specs {
		ids, err := p.Prompt(s.System, s.Question)
		if err != nil {
			return nil, fmt.Errorf("probe: rollout %s: %w", s.ID, err)
		}
		out[i].Prompt = ids
		reqs[i] = engine.Request{Prompt: ids, MaxNewTokens: maxTokens, StopTokens: stops, IgnoreEOS: ignoreEOS,
			StopStrings: stopStrings,
			Sampling:    engine.SamplingParams{Temperature: RolloutTemperature, TopP: RolloutTopP, Seed: s.Seed}}
	}
	res, err := m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Detokenizer: m.Tokenizer})
	if err != nil {
		return nil, fmt.Errorf("probe: generate: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i, r := range res {
		out[i].StopReason = r.StopReason
		tokens, text, err := m.AssistantTurn(out[i].Prompt, r.Tokens)
		if err != nil {
			return nil, fmt.Errorf("probe: rollout %s: decode response: %w", specs[i].ID, err)
		}
		out[i].Tokens, out[i].Text = tokens, validUTF8(text)
	}
	return out, nil
}
