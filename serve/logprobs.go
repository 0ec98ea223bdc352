package serve

import (
	"math"

	"tether/engine"
	"tether/tokenizer"
)

// Bounds of the log-probability fields, as OpenAI's.
const (
	maxTopLogprobs        = 20 // chat's top_logprobs
	maxCompletionLogprobs = 5  // completions' logprobs
)

// tokenLogprob is one token's log-probability with its text, as chat completions give it.
type tokenLogprob struct {
	Token       string         `json:"token"`
	Logprob     float64        `json:"logprob"`
	Bytes       []int          `json:"bytes"`
	TopLogprobs []tokenLogprob `json:"top_logprobs,omitempty"`
}

// logprobList collects the log-probabilities of a choice's kept tokens.
type logprobList []tokenLogprob

// add appends the log-probabilities of a token event.
func (l *logprobList) add(tok tokenizer.Tokenizer, ev engine.Event) {
	e := entry(tok, ev.Token, ev.Logprob)
	e.TopLogprobs = []tokenLogprob{}
	for _, t := range ev.TopLogprobs {
		e.TopLogprobs = append(e.TopLogprobs, entry(tok, t.Token, t.Logprob))
	}
	*l = append(*l, e)
}

// entry is one token's log-probability; -Inf (a token that cannot be drawn) becomes the
// lowest finite number, as JSON has no infinities.
func entry(tok tokenizer.Tokenizer, id int, lp float64) tokenLogprob {
	text, _ := tok.Decode([]int{id}, false)
	b := make([]int, len(text))
	for i := range len(text) {
		b[i] = int(text[i])
	}
	if math.IsInf(lp, -1) || math.IsNaN(lp) {
		lp = -math.MaxFloat64
	}
	return tokenLogprob{Token: text, Logprob: lp, Bytes: b}
}

// since renders the entries from index from on in the shape of kind: chat's
// {"content": [...]}, or completions' parallel lists.
func (l logprobList) since(from int, kind string) any {
	part := l[min(from, len(l)):]
	if kind == "chat" {
		return map[string]any{"content": []tokenLogprob(part)}
	}
	tokens, lps, tops := []string{}, []float64{}, []map[string]float64{}
	for _, e := range part {
		tokens = append(tokens, e.Token)
		lps = append(lps, e.Logprob)
		top := map[string]float64{}
		for _, t := range e.TopLogprobs {
			top[t.Token] = t.Logprob
		}
		tops = append(tops, top)
	}
	return map[string]any{"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops}
}
