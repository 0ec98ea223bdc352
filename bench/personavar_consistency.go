package bench

import (
	"context"
	"fmt"
	"slices"

	"tether/consistency"
	"tether/personas"
)

// VarianceJudgementsFile holds the consistency judgements of a persona variance run, one line
// per (persona, anchor form).
const VarianceJudgementsFile = "judgements.jsonl"

// VarianceJudged is one (persona, anchor form)'s judgements (a line of judgements.jsonl).
type VarianceJudged struct {
	Persona    string                  `json:"persona"`
	Anchor     string                  `json:"anchor"`
	Judgements []consistency.Judgement `json:"judgements"`
}

// VarianceConsistencyMethod says how the three consistency metrics (package consistency) are
// applied to the questionnaire answers.
const VarianceConsistencyMethod = "per (persona, anchor form): each seed's answers in item order are one conversation, " +
	"judged prompt-to-line (each answer against the persona anchor) and line-to-line (each answer against that seed's earlier answers); " +
	"Q&A judges each answer against the anchor and against the answers other seeds gave to the same item (seeds in order); " +
	"aggregated per anchor form (the arm), persona and seed (the turn), with intervals resampling (persona, anchor form) clusters"

// judgeGroup scores one (persona, form)'s answers with the judge.
func judgeGroup(ctx context.Context, j consistency.Judge, q *personas.Questionnaire, anchor string, answers []VarianceAnswer, seeds []uint64) ([]consistency.Judgement, error) {
	question := map[string]string{}
	for _, it := range q.Items {
		question[it.ID] = q.Question(it)
	}
	var all []consistency.Judgement
	var qa consistency.Conversation
	for si, s := range seeds {
		var conv consistency.Conversation
		for _, a := range answers {
			if a.Seed != s {
				continue
			}
			conv.Lines = append(conv.Lines, consistency.Line{Turn: si, User: question[a.Item], Text: a.Answer})
			qa.Answers = append(qa.Answers, consistency.Answer{Turn: si, Question: question[a.Item], Text: a.Answer})
		}
		js, err := consistency.Score(ctx, j, conv, anchor, consistency.Options{})
		if err != nil {
			return nil, err
		}
		for i := range js {
			if js[i].Metric != consistency.QA {
				all = append(all, js[i])
			}
		}
	}
	js, err := consistency.Score(ctx, j, qa, anchor, consistency.Options{})
	if err != nil {
		return nil, err
	}
	for _, x := range js {
		if x.Metric == consistency.QA {
			all = append(all, x)
		}
	}
	return all, nil
}

// judgeRun judges every (persona, form) not yet in judgements.jsonl and returns all judged
// groups as read back from the file.
func (r *varianceRunner) judgeRun(ctx context.Context, store *varianceStore) ([]VarianceJudged, error) {
	log, done, err := store.openJudgements()
	if err != nil {
		return nil, err
	}
	type group struct{ persona, form string }
	var groups []group
	byGroup := map[group][]VarianceAnswer{}
	for _, a := range store.answers() {
		g := group{a.Persona, a.Anchor}
		if _, ok := byGroup[g]; !ok {
			groups = append(groups, g)
		}
		byGroup[g] = append(byGroup[g], a)
	}
	out := done
	for _, g := range groups {
		if slices.ContainsFunc(done, func(d VarianceJudged) bool { return d.Persona == g.persona && d.Anchor == g.form }) {
			continue
		}
		var anchor string
		for _, p := range r.o.Personas {
			if p.ID == g.persona {
				anchor, _ = p.Anchor(g.form)
			}
		}
		js, err := judgeGroup(ctx, r.o.Judge, r.o.Questionnaire, anchor, byGroup[g], r.o.Seeds)
		if err != nil {
			return nil, fmt.Errorf("bench: variance: judge persona %s, anchor %s: %w", g.persona, g.form, err)
		}
		rec, err := appendJudged(log, VarianceJudged{Persona: g.persona, Anchor: g.form, Judgements: js})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// varianceConsistency aggregates the judged groups (nil without any).
func varianceConsistency(judged []VarianceJudged, bootstrap int) (*consistency.Summary, error) {
	if len(judged) == 0 {
		return nil, nil
	}
	var obs []consistency.Observation
	for _, g := range judged {
		obs = append(obs, consistency.Observe(g.Anchor, g.Persona, g.Persona+"/"+g.Anchor, g.Judgements)...)
	}
	s, err := consistency.Aggregate(obs, consistency.AggregateOptions{Bootstrap: bootstrap})
	if err != nil {
		return nil, fmt.Errorf("bench: variance: consistency: %w", err)
	}
	s.Method = VarianceConsistencyMethod + "; " + s.Method
	return s, nil
}
