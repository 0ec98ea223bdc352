package probe

import (
	"context"
	"fmt"
	"strings"

	"tether/engine"
	"tether/model"
)

// KeepScore is the judge score a role's rollout needs to count for its role vector (fully in
// role).
const KeepScore = 3

// JudgeNone is the judge setting of a run without a judge; JudgeSelf asks the model that
// generated the rollouts.
const (
	JudgeNone = "none"
	JudgeSelf = "self"
)

// DefaultJudgeMaxTokens is how many tokens the judge may write before its score is parsed.
const DefaultJudgeMaxTokens = 16

// JudgeItem is one rollout to score.
type JudgeItem struct {
	// Role is the role's name; EvalPrompt its rubric from the data set (may be empty).
	Role, EvalPrompt string
	Question, Answer string
}

// Judge scores role adherence.
type Judge interface {
	// Score returns, for each item, the score 0..3 or nil when the judge's answer holds none.
	Score(ctx context.Context, items []JudgeItem) ([]*int, error)
}

// genericRubric is the rubric used when a role has no eval_prompt; %[1]s is the role's name.
const genericRubric = `You are grading how well an AI's answer plays a role.

Role: %[1]s

Question: {question}

Answer: {answer}

Score the answer:
0 - the answer refuses to play the role.
1 - the answer stays an AI assistant and does not take on the role.
2 - the answer partly plays the role but also speaks as an AI assistant.
3 - the answer fully plays the role.

Reply with one digit (0, 1, 2 or 3) and nothing else.`

// JudgePrompt is the text the judge model reads for an item: the role's eval_prompt when it has
// one, else a generic 0-3 rubric naming the role, with {question} and {answer} replaced (and
// {role} by the role's name).
func JudgePrompt(it JudgeItem) string {
	rubric := it.EvalPrompt
	if strings.TrimSpace(rubric) == "" {
		rubric = fmt.Sprintf(genericRubric, strings.ReplaceAll(it.Role, "_", " "))
	}
	return strings.NewReplacer("{question}", it.Question, "{answer}", it.Answer, "{role}", it.Role).Replace(rubric)
}

// ParseScore reads a judge's answer: the first run of digits in the text must be a single digit
// 0..3 ("3", "Score: 2", "I'd rate it 3/3" parse; "10", "5", "no digits" do not).
func ParseScore(text string) (int, bool) {
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c < '0' || c > '9' {
			continue
		}
		if i+1 < len(text) && text[i+1] >= '0' && text[i+1] <= '9' {
			return 0, false
		}
		if c > '3' {
			return 0, false
		}
		return int(c - '0'), true
	}
	return 0, false
}

// ModelJudge scores with a local model: the rubric as a user message (rendered by the judge
// model's chat renderer, see model.Model.RenderChat), greedy decoding, the score parsed by
// ParseScore.
type ModelJudge struct {
	m         *model.Model
	prompter  *Prompter
	maxTokens int
}

// NewModelJudge returns a judge that asks m; maxTokens <= 0 means DefaultJudgeMaxTokens.
func NewModelJudge(m *model.Model, maxTokens int) *ModelJudge {
	if maxTokens <= 0 {
		maxTokens = DefaultJudgeMaxTokens
	}
	return &ModelJudge{m: m, prompter: NewPrompter(m), maxTokens: maxTokens}
}

// Score implements Judge: ParseScore of each of Answers.
func (j *ModelJudge) Score(ctx context.Context, items []JudgeItem) ([]*int, error) {
	answers, err := j.Answers(ctx, items)
	if err != nil {
		return nil, err
	}
	out := make([]*int, len(items))
	for i, a := range answers {
		if s, ok := ParseScore(a); ok {
			out[i] = &s
		}
	}
	return out, nil
}

// Answers asks the judge model about every item in one batched greedy Generate call and returns
// its raw answers.
func (j *ModelJudge) Answers(ctx context.Context, items []JudgeItem) ([]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	reqs := make([]engine.Request, len(items))
	stops := j.m.StopTokens()
	for i, it := range items {
		ids, err := j.prompter.Prompt("", JudgePrompt(it))
		if err != nil {
			return nil, fmt.Errorf("probe: judge %s: %w", j.m.Name, err)
		}
		reqs[i] = engine.Request{Prompt: ids, MaxNewTokens: j.maxTokens, StopTokens: stops, StopStrings: j.m.ChatStopStrings()}
	}
	res, err := j.m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Detokenizer: j.m.Tokenizer})
	if err != nil {
		return nil, fmt.Errorf("probe: judge %s: %w", j.m.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i, r := range res {
		text, err := j.m.AssistantText(reqs[i].Prompt, r.Tokens)
		if err != nil {
			return nil, fmt.Errorf("probe: judge %s: decode: %w", j.m.Name, err)
		}
		out[i] = text
	}
	return out, nil
}

// OpenJudge resolves a --judge setting: JudgeNone (or "") gives no judge; JudgeSelf judges with
// self; anything else is a model reference opened on backend. The returned close function
// releases a model opened here (it is a no-op otherwise).
func OpenJudge(name string, self *model.Model, backend string) (Judge, func(), error) {
	switch name {
	case "", JudgeNone:
		return nil, func() {}, nil
	case JudgeSelf:
		if self == nil {
			return nil, nil, fmt.Errorf("probe: judge %q: no model to judge with", name)
		}
		return NewModelJudge(self, 0), func() {}, nil
	}
	jm, err := model.Open(name, model.Options{Backend: backend})
	if err != nil {
		return nil, nil, fmt.Errorf("probe: judge model %q (expected %q, %q or a model directory or Hugging Face id): %w", name, JudgeNone, JudgeSelf, err)
	}
	return NewModelJudge(jm, 0), jm.Close, nil
}
