// Package consistency measures how well a persona-prompted model stays in its persona over a
// conversation, with the three metrics of Abdulhai et al. 2025 (arXiv 2511.00222, "Consistently
// Simulating Human Personas with Multi-Turn Reinforcement Learning"):
//
//   - prompt-to-line: every line (assistant utterance) is judged against the persona prompt;
//   - line-to-line: every line after the first is judged against the persona's earlier lines of
//     the same conversation;
//   - Q&A: diagnostic questions about the persona are asked at several points of the
//     conversation; every answer is judged against the persona prompt, and every answer after a
//     question's first against that question's earlier answers.
//
// A Judge (a local model, see ModelJudge, or a planted one in tests) reads one filled-in judge
// prompt per judgement and answers YES or NO on its first line (ParseVerdict: anything else is
// unparseable and never scored). YES scores 1 and NO 0, so a metric is the fraction of
// judgements found consistent. Aggregate summarises scores per arm, turn and persona with
// cluster-bootstrap intervals (conversations resampled) and counts unparseable answers.
package consistency

import (
	"context"
	"fmt"
	"strings"
)

// Metric names, as they appear in reports.
const (
	PromptToLine = "prompt_to_line"
	LineToLine   = "line_to_line"
	QA           = "qa"
)

// Metrics lists the metric names in report order.
var Metrics = []string{PromptToLine, LineToLine, QA}

// What a judgement compares a line or answer against (Judgement.Against).
const (
	AgainstPrompt         = "prompt"
	AgainstEarlierLines   = "earlier_lines"
	AgainstEarlierAnswers = "earlier_answers"
)

// Line is one utterance of the persona (an assistant turn).
type Line struct {
	// Turn is the 0-based turn index in the conversation.
	Turn int `json:"turn"`
	// User is the message the line answers ("" when none).
	User string `json:"user"`
	// Text is the persona's utterance.
	Text string `json:"text"`
}

// Answer is the persona's answer to a diagnostic question asked after its line of turn Turn
// (as a side branch: the question and answer are not part of the conversation that goes on).
type Answer struct {
	Turn     int    `json:"turn"`
	Question string `json:"question"`
	Text     string `json:"answer"`
}

// Conversation is what is judged: the persona's lines in order and its answers to the
// diagnostic questions.
type Conversation struct {
	Lines   []Line   `json:"lines"`
	Answers []Answer `json:"answers,omitempty"`
}

// Judge answers judge prompts. It returns one raw answer per prompt, in order; parsing is
// ParseVerdict's.
type Judge interface {
	Answer(ctx context.Context, prompts []string) ([]string, error)
}

// Judgement is one judge verdict.
type Judgement struct {
	Metric string `json:"metric"`
	// Turn is the turn of the line (or of the answer's branch point) judged.
	Turn int `json:"turn"`
	// Against is AgainstPrompt, AgainstEarlierLines or AgainstEarlierAnswers.
	Against string `json:"against"`
	// Question is the diagnostic question (Q&A only).
	Question string `json:"question,omitempty"`
	// Reply is the judge's raw answer.
	Reply string `json:"reply"`
	// Score is 1 (consistent) or 0 (inconsistent); nil when Reply is unparseable.
	Score *float64 `json:"score"`
}

// Options configure Score.
type Options struct {
	// Prompts are the judge prompt templates (default DefaultPrompts()).
	Prompts *Prompts
	// MaxEarlier bounds how many earlier lines (or earlier answers) a judge prompt quotes,
	// the newest ones kept (0: all).
	MaxEarlier int
}

// Score judges a conversation of persona: prompt-to-line for every line, line-to-line for every
// line after the first, and Q&A for every answer (against the prompt, and against the same
// question's earlier answers). All judge prompts go to j in one call.
func Score(ctx context.Context, j Judge, conv Conversation, persona string, opts Options) ([]Judgement, error) {
	if j == nil {
		return nil, fmt.Errorf("consistency: no judge")
	}
	p := opts.Prompts
	if p == nil {
		var err error
		if p, err = DefaultPrompts(); err != nil {
			return nil, err
		}
	}
	var js []Judgement
	var prompts []string
	add := func(jd Judgement, tmpl string, vals map[string]string) {
		vals["persona"] = persona
		js = append(js, jd)
		prompts = append(prompts, fill(tmpl, vals))
	}
	for i, l := range conv.Lines {
		add(Judgement{Metric: PromptToLine, Turn: l.Turn, Against: AgainstPrompt}, p.PromptToLine,
			map[string]string{"user": l.User, "line": l.Text})
		if i == 0 {
			continue
		}
		var earlier []string
		for _, e := range conv.Lines[:i] {
			earlier = append(earlier, e.Text)
		}
		add(Judgement{Metric: LineToLine, Turn: l.Turn, Against: AgainstEarlierLines}, p.LineToLine,
			map[string]string{"user": l.User, "line": l.Text, "earlier_lines": quote(earlier, opts.MaxEarlier)})
	}
	earlier := map[string][]string{}
	for _, a := range conv.Answers {
		add(Judgement{Metric: QA, Turn: a.Turn, Against: AgainstPrompt, Question: a.Question}, p.QAPrompt,
			map[string]string{"question": a.Question, "answer": a.Text})
		if prev := earlier[a.Question]; len(prev) > 0 {
			add(Judgement{Metric: QA, Turn: a.Turn, Against: AgainstEarlierAnswers, Question: a.Question}, p.QAAnswers,
				map[string]string{"question": a.Question, "answer": a.Text, "earlier_answers": quote(prev, opts.MaxEarlier)})
		}
		earlier[a.Question] = append(earlier[a.Question], a.Text)
	}
	if len(prompts) == 0 {
		return nil, nil
	}
	replies, err := j.Answer(ctx, prompts)
	if err != nil {
		return nil, fmt.Errorf("consistency: judge: %w", err)
	}
	if len(replies) != len(prompts) {
		return nil, fmt.Errorf("consistency: judge gave %d answers to %d prompts", len(replies), len(prompts))
	}
	for i, r := range replies {
		js[i].Reply = r
		if v, ok := ParseVerdict(r); ok {
			js[i].Score = &v
		}
	}
	return js, nil
}

// quote lists texts oldest first, one numbered paragraph each, keeping the newest max (0: all).
func quote(texts []string, max int) string {
	start := 0
	if max > 0 && len(texts) > max {
		start = len(texts) - max
	}
	var b strings.Builder
	for i, t := range texts[start:] {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "%d. %s", start+i+1, strings.TrimSpace(t))
	}
	return b.String()
}

// ParseVerdict reads a judge's answer strictly: its first line, with surrounding white space,
// quotes, asterisks and one final period removed, must be YES or NO (any letter case). YES
// scores 1, NO 0; anything else ("Yes, because", "1", an empty answer) is unparseable.
func ParseVerdict(reply string) (float64, bool) {
	first, _, _ := strings.Cut(strings.TrimLeft(reply, " \t\r\n"), "\n")
	w := strings.Trim(strings.TrimSpace(first), "\"'*`")
	w = strings.TrimSuffix(w, ".")
	switch strings.ToUpper(w) {
	case "YES":
		return 1, true
	case "NO":
		return 0, true
	}
	return 0, false
}
