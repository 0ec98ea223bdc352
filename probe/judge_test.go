package probe

import (
	"context"
	"strings"
	"testing"

	"tether/internal/testmodels"
)

func TestParseScore(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"3", 3, true},
		{"0", 0, true},
		{" Score: 2.", 2, true},
		{"I'd rate it 1/3", 1, true},
		{"3\n\nThe answer fully plays the role.", 3, true},
		{"10", 0, false},
		{"5", 0, false},
		{"no digits at all", 0, false},
		{"", 0, false},
		{"score 4 of 3", 0, false},
	} {
		got, ok := ParseScore(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ParseScore(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRolloutKept(t *testing.T) {
	score := func(s int) *int { return &s }
	for _, tc := range []struct {
		name   string
		r      Rollout
		judged bool
		want   bool
	}{
		{"no judge keeps a role", Rollout{Role: "pirate", ResponseTokens: 1}, false, true},
		{"default keeps all", Rollout{Role: DefaultRoleName, Score: score(0), ResponseTokens: 1}, true, true},
		{"default unscored", Rollout{Role: DefaultRoleName, ResponseTokens: 1}, true, true},
		{"role scored 3", Rollout{Role: "pirate", Score: score(3), ResponseTokens: 1}, true, true},
		{"role scored 2", Rollout{Role: "pirate", Score: score(2), ResponseTokens: 1}, true, false},
		{"role unparseable", Rollout{Role: "pirate", ResponseTokens: 1}, true, false},
		{"empty response, no judge", Rollout{Role: "pirate"}, false, false},
		{"empty default response", Rollout{Role: DefaultRoleName}, true, false},
	} {
		if got := tc.r.Kept(tc.judged); got != tc.want {
			t.Errorf("%s: Kept = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestJudgePrompt(t *testing.T) {
	p := JudgePrompt(JudgeItem{Role: "noir_detective", Question: "Who did it?", Answer: "The butler."})
	for _, want := range []string{"noir detective", "Who did it?", "The butler.", "0", "3"} {
		if !strings.Contains(p, want) {
			t.Errorf("generic rubric lacks %q:\n%s", want, p)
		}
	}
	p = JudgePrompt(JudgeItem{Role: "poet", EvalPrompt: "Q={question} A={answer} R={role}", Question: "q", Answer: "a"})
	if p != "Q=q A=a R=poet" {
		t.Errorf("eval_prompt rubric = %q", p)
	}
}

// fakeJudge scores by a rule on the answer and records what it saw.
type fakeJudge struct {
	calls int
	seen  []JudgeItem
}

// Score gives 3 to even-length answers, nil to answers of length divisible by 3 (not even), 1
// otherwise.
func (f *fakeJudge) Score(_ context.Context, items []JudgeItem) ([]*int, error) {
	f.calls++
	f.seen = append(f.seen, items...)
	out := make([]*int, len(items))
	for i, it := range items {
		s := fakeScore(it.Answer)
		out[i] = s
	}
	return out, nil
}

func fakeScore(answer string) *int {
	switch {
	case len(answer)%2 == 0:
		s := 3
		return &s
	case len(answer)%3 == 0:
		return nil
	}
	s := 1
	return &s
}

// TestRunWithFakeJudge: every rollout is judged once, with the role's eval_prompt; lines carry
// the scores, and the summary's distribution and kept count follow the keep rule.
func TestRunWithFakeJudge(t *testing.T) {
	m := openTiny(t, 5, "")
	f := &fakeJudge{}
	dir := t.TempDir()
	sum, err := ExecuteRun(t.Context(), m, RunOptions{Dir: dir, Dataset: tinyDataset(), Samples: 1, MaxTokens: 8,
		Batch: 4, Seed: 3, JudgeName: "fake", Judge: f})
	if err != nil {
		t.Fatal(err)
	}
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.seen) != 12 || len(run.Rollouts()) != 12 {
		t.Fatalf("judge saw %d items, run has %d rollouts; want 12", len(f.seen), len(run.Rollouts()))
	}
	var scores [4]int
	unscored, kept := 0, 0
	for i, r := range run.Rollouts() {
		it := f.seen[i]
		if it.Answer != r.Response || it.Role != r.Role || it.Question != r.Question {
			t.Fatalf("judge item %d = %+v for rollout %+v", i, it, r)
		}
		if r.Role == "poet" && it.EvalPrompt == "" {
			t.Fatalf("poet's eval_prompt not passed to the judge")
		}
		want := fakeScore(r.Response)
		if (want == nil) != (r.Score == nil) || (want != nil && *want != *r.Score) {
			t.Fatalf("rollout %s: score %v, judge gave %v", r.ID, r.Score, want)
		}
		if r.Score == nil {
			unscored++
		} else {
			scores[*r.Score]++
		}
		if r.ResponseTokens > 0 && (r.Role == DefaultRoleName || (r.Score != nil && *r.Score == 3)) {
			kept++
		}
	}
	if sum.Scores != scores || sum.Unscored != unscored || sum.Kept != kept || !sum.Judged {
		t.Fatalf("summary scores %v unscored %d kept %d; counted %v %d %d", sum.Scores, sum.Unscored, sum.Kept, scores, unscored, kept)
	}
	if !run.Manifest().Settings.Judged() || run.Manifest().Settings.Judge != "fake" {
		t.Fatalf("manifest judge %q", run.Manifest().Settings.Judge)
	}
	// Resuming a complete run judges nothing and reports the same distribution.
	f2 := &fakeJudge{}
	sum2, err := ExecuteRun(t.Context(), m, RunOptions{Dir: dir, Dataset: tinyDataset(), Samples: 1, MaxTokens: 8,
		Batch: 4, Seed: 3, JudgeName: "fake", Judge: f2})
	if err != nil {
		t.Fatal(err)
	}
	if f2.calls != 0 || sum2.Skipped != 12 || sum2.New != 0 || sum2.Scores != scores || sum2.Unscored != unscored {
		t.Fatalf("resume of a complete run: %d judge calls, summary %+v", f2.calls, sum2)
	}
}

// TestRunWithModelJudge: a real end-to-end run with a random model as its own judge. Its scores
// are random; the test checks the mechanics: every rollout judged, and a score is present
// exactly when ParseScore reads one from the judge's greedy answer.
func TestRunWithModelJudge(t *testing.T) {
	m := openTiny(t, 6, "")
	j, closeJudge, err := OpenJudge(JudgeSelf, m, testmodels.Backend())
	if err != nil {
		t.Fatal(err)
	}
	defer closeJudge()
	dir := t.TempDir()
	d := tinyDataset().Subset(1, 1, 2)
	sum, err := ExecuteRun(t.Context(), m, RunOptions{Dir: dir, Dataset: d, Samples: 1, MaxTokens: 6, Batch: 4,
		Seed: 1, JudgeName: JudgeSelf, Judge: j})
	if err != nil {
		t.Fatal(err)
	}
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	total := sum.Unscored
	for _, c := range sum.Scores {
		total += c
	}
	if total != len(run.Rollouts()) || total != 4 {
		t.Fatalf("score distribution %v + %d unscored for %d rollouts", sum.Scores, sum.Unscored, len(run.Rollouts()))
	}
	// The judge's scores are ParseScore of its own answers, batch by batch as the run asked.
	mj := j.(*ModelJudge)
	items := make([]JudgeItem, len(run.Rollouts()))
	for i, r := range run.Rollouts() {
		items[i] = JudgeItem{Role: r.Role, Question: r.Question, Answer: r.Response}
	}
	answers, err := mj.Answers(t.Context(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range run.Rollouts() {
		s, ok := ParseScore(answers[i])
		if ok != (r.Score != nil) || (ok && s != *r.Score) {
			t.Fatalf("rollout %s: stored score %v, judge answered %q", r.ID, r.Score, answers[i])
		}
	}
}

// TestOpenJudgeErrors: an unknown judge model is an error naming it.
func TestOpenJudgeErrors(t *testing.T) {
	t.Setenv("HF_HUB_CACHE", t.TempDir())
	_, _, err := OpenJudge("no-such-org/no-such-judge", nil, testmodels.Backend())
	if err == nil || !strings.Contains(err.Error(), "no-such-judge") {
		t.Fatalf("error %v, want one naming the judge model", err)
	}
	if _, _, err := OpenJudge(JudgeSelf, nil, testmodels.Backend()); err == nil {
		t.Fatal("self judge without a model: no error")
	}
	j, c, err := OpenJudge(JudgeNone, nil, testmodels.Backend())
	if err != nil || j != nil {
		t.Fatalf("none judge = %v, %v", j, err)
	}
	c()
}
