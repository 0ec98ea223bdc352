package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"unicode"

	"tether/engine"
	"tether/model"
	"tether/tokenizer"
)

// PerplexityMaxWindow bounds the window Perplexity uses (tokens per forward
// pass), so that the [window, vocab] logits of a large vocabulary stay small.
const PerplexityMaxWindow = 512

// perplexityLogitBytes bounds the logits one forward pass of Perplexity
// returns.
const perplexityLogitBytes = 512 << 20

//go:embed capdata/heldout.txt
var heldOutText string

//go:embed capdata/questions.json
var questionsJSON []byte

// CapabilityQuestion is one short-answer question with its accepted answers.
type CapabilityQuestion struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Answers  []string `json:"answers"`
}

// HeldOutText returns the built-in held-out English text (plain paragraphs
// written for tether, about 1,200 tokens) used for perplexity.
func HeldOutText() string { return heldOutText }

// BuiltinCapabilityQuestions returns the built-in short-answer questions
// (arithmetic, facts, instruction following), each with accepted answers.
func BuiltinCapabilityQuestions() ([]CapabilityQuestion, error) {
	var qs []CapabilityQuestion
	if err := json.Unmarshal(questionsJSON, &qs); err != nil {
		return nil, fmt.Errorf("bench: capdata/questions.json: %w", err)
	}
	for i, q := range qs {
		if q.ID == "" || strings.TrimSpace(q.Question) == "" || len(q.Answers) == 0 {
			return nil, fmt.Errorf("bench: capdata/questions.json: entry %d (%q): expected id, question and at least one answer", i, q.ID)
		}
	}
	return qs, nil
}

// Perplexity is exp of the mean negative log-likelihood of each next token
// of ids under the model with hooks, from Forward with AllLogits over
// windows of at most min(context length, PerplexityMaxWindow) tokens that
// overlap by one token, so that every token after the first is predicted
// exactly once (from the context inside its window). ids should start
// with BOS where the model expects one.
func Perplexity(ctx context.Context, m *engine.Model, ids []int, hooks engine.Hooks) (float64, error) {
	window := PerplexityMaxWindow
	if mp := m.Config().MaxPositions; mp > 0 && mp < window {
		window = mp
	}
	ppl, _, err := PerplexityWindowed(ctx, m, ids, hooks, window)
	return ppl, err
}

// PerplexityWindowed is Perplexity with an explicit window (>= 2 tokens);
// it also returns the number of predicted tokens (len(ids)-1).
func PerplexityWindowed(ctx context.Context, m *engine.Model, ids []int, hooks engine.Hooks, window int) (float64, int, error) {
	if len(ids) < 2 {
		return 0, 0, fmt.Errorf("bench: perplexity: %d tokens: expected at least 2", len(ids))
	}
	if window < 2 {
		return 0, 0, fmt.Errorf("bench: perplexity: window %d: expected at least 2 tokens", window)
	}
	if mp := m.Config().MaxPositions; mp > 0 && window > mp {
		return 0, 0, fmt.Errorf("bench: perplexity: window %d: expected at most the context length %d", window, mp)
	}
	var windows [][]int
	for start := 0; start < len(ids)-1; start += window - 1 {
		windows = append(windows, ids[start:min(start+window, len(ids))])
	}
	// Windows per forward pass: as many as keep the returned logits
	// ([windows, window, vocab] float32) under perplexityLogitBytes.
	batch := max(1, min(4, perplexityLogitBytes/(window*max(1, m.Config().VocabSize)*4)))
	var nll float64
	var count int
	for b := 0; b < len(windows); b += batch {
		part := windows[b:min(b+batch, len(windows))]
		res, err := m.Forward(ctx, part, engine.ForwardOptions{Hooks: hooks, AllLogits: true})
		if err != nil {
			return 0, 0, fmt.Errorf("bench: perplexity: forward of windows %d..%d: %w", b, b+len(part)-1, err)
		}
		for w, seq := range part {
			for pos := 0; pos+1 < len(seq); pos++ {
				lp, err := logProb(res.AllLogits[w][pos], seq[pos+1])
				if err != nil {
					return 0, 0, fmt.Errorf("bench: perplexity: window %d position %d: %w", b+w, pos, err)
				}
				nll -= lp
				count++
			}
		}
	}
	return math.Exp(nll / float64(count)), count, nil
}

// logProb is log softmax(logits)[id], computed in float64.
func logProb(logits []float32, id int) (float64, error) {
	if id < 0 || id >= len(logits) {
		return 0, fmt.Errorf("token %d outside the vocabulary of %d", id, len(logits))
	}
	maxL := math.Inf(-1)
	for _, l := range logits {
		maxL = math.Max(maxL, float64(l))
	}
	var sum float64
	for _, l := range logits {
		sum += math.Exp(float64(l) - maxL)
	}
	lp := float64(logits[id]) - maxL - math.Log(sum)
	if math.IsNaN(lp) {
		return 0, fmt.Errorf("logits are not finite")
	}
	return lp, nil
}

// NormalizeAnswer is what ExactMatch compares: the first non-empty line,
// lower-cased, with punctuation and symbols removed and runs of white space
// collapsed to one space.
func NormalizeAnswer(s string) string {
	line := ""
	for l := range strings.SplitSeq(s, "\n") {
		if strings.TrimSpace(l) != "" {
			line = l
			break
		}
	}
	var b strings.Builder
	for _, r := range strings.ToLower(line) {
		switch {
		case unicode.IsPunct(r) || unicode.IsSymbol(r):
			// dropped
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// ExactMatch reports whether the first non-empty line of answer equals one
// of the accepted answers after NormalizeAnswer (case, white space and
// punctuation do not count). An empty answer matches nothing.
func ExactMatch(answer string, accepted []string) bool {
	got := NormalizeAnswer(answer)
	if got == "" {
		return false
	}
	for _, a := range accepted {
		if NormalizeAnswer(a) == got {
			return true
		}
	}
	return false
}

// CapabilityOptions configures MeasureCapability.
type CapabilityOptions struct {
	// Questions default to BuiltinCapabilityQuestions; HeldOut to HeldOutText.
	Questions []CapabilityQuestion
	HeldOut   string
	// MaxTokens bounds each answer (default 16). Batch is the number of
	// questions generated together (default 8).
	MaxTokens int
	Batch     int
	// MaxHeldOutTokens truncates the held-out text's tokens (0 = all).
	MaxHeldOutTokens int
}

// MeasureCapability runs perplexity on the held-out text and exact-match
// accuracy on the questions, without hooks (uncapped) and with hooks
// (capped), and compares them. Each question is a user turn rendered by the
// model's chat renderer (model.Model.ChatPrompt: the chat template, or the
// plain User/Assistant format without one); answers are greedy.
func MeasureCapability(ctx context.Context, m *model.Model, hooks engine.Hooks, o CapabilityOptions) (*CapabilityResult, error) {
	if m.Engine == nil || m.Tokenizer == nil {
		return nil, fmt.Errorf("bench: capability: model %s: expected weights and a tokenizer", m.Name)
	}
	if o.Questions == nil {
		qs, err := BuiltinCapabilityQuestions()
		if err != nil {
			return nil, err
		}
		o.Questions = qs
	}
	if o.HeldOut == "" {
		o.HeldOut = HeldOutText()
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 16
	}
	if o.Batch <= 0 {
		o.Batch = 8
	}
	ids, err := m.PlainPrompt(o.HeldOut)
	if err != nil {
		return nil, fmt.Errorf("bench: capability: held-out text: %w", err)
	}
	if o.MaxHeldOutTokens > 0 && len(ids) > o.MaxHeldOutTokens {
		ids = ids[:o.MaxHeldOutTokens]
	}
	res := &CapabilityResult{HeldOutTokens: len(ids), Questions: len(o.Questions)}
	if res.PerplexityUncapped, err = Perplexity(ctx, m.Engine, ids, nil); err != nil {
		return nil, fmt.Errorf("%w (uncapped)", err)
	}
	if res.PerplexityCapped, err = Perplexity(ctx, m.Engine, ids, hooks); err != nil {
		return nil, fmt.Errorf("%w (capped)", err)
	}
	res.PerplexityRelative = relativeChange(res.PerplexityCapped, res.PerplexityUncapped)

	prompts := make([][]int, len(o.Questions))
	for i, q := range o.Questions {
		if prompts[i], err = questionPrompt(m, q.Question); err != nil {
			return nil, fmt.Errorf("bench: capability: question %q: %w", q.ID, err)
		}
	}
	uncapped, err := answerAll(ctx, m, prompts, nil, o)
	if err != nil {
		return nil, fmt.Errorf("bench: capability: uncapped answers: %w", err)
	}
	capped, err := answerAll(ctx, m, prompts, hooks, o)
	if err != nil {
		return nil, fmt.Errorf("bench: capability: capped answers: %w", err)
	}
	var okU, okC int
	for i, q := range o.Questions {
		item := CapabilityItem{ID: q.ID, Uncapped: uncapped[i], Capped: capped[i],
			UncappedCorrect: ExactMatch(uncapped[i], q.Answers), CappedCorrect: ExactMatch(capped[i], q.Answers)}
		if item.UncappedCorrect {
			okU++
		}
		if item.CappedCorrect {
			okC++
		}
		res.Items = append(res.Items, item)
	}
	if n := len(o.Questions); n > 0 {
		res.ExactUncapped = float64(okU) / float64(n)
		res.ExactCapped = float64(okC) / float64(n)
	}
	res.ExactRelative = relativeChange(res.ExactCapped, res.ExactUncapped)
	res.ExactAbsolute = res.ExactCapped - res.ExactUncapped
	return res, nil
}

// relativeChange is capped/uncapped - 1, or 0 when uncapped is 0.
func relativeChange(capped, uncapped float64) float64 {
	if uncapped == 0 {
		return 0
	}
	return capped/uncapped - 1
}

// questionPrompt is the prompt of one question: a user turn rendered by the
// model's chat renderer.
func questionPrompt(m *model.Model, question string) ([]int, error) {
	return m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: question}}, true)
}

// answerAll generates greedy answers for prompts, o.Batch at a time.
func answerAll(ctx context.Context, m *model.Model, prompts [][]int, hooks engine.Hooks, o CapabilityOptions) ([]string, error) {
	out := make([]string, len(prompts))
	stops := m.StopTokens()
	for b := 0; b < len(prompts); b += o.Batch {
		var reqs []engine.Request
		for _, p := range prompts[b:min(b+o.Batch, len(prompts))] {
			reqs = append(reqs, engine.Request{Prompt: p, MaxNewTokens: o.MaxTokens, StopTokens: stops, StopStrings: m.ChatStopStrings()})
		}
		res, err := m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Hooks: hooks, Detokenizer: m.Tokenizer})
		if err != nil {
			return nil, err
		}
		for i, r := range res {
			text, err := m.AssistantText(reqs[i].Prompt, r.Tokens)
			if err != nil {
				return nil, fmt.Errorf("decode answer %d: %w", b+i, err)
			}
			out[b+i] = text
		}
	}
	return out, nil
}
