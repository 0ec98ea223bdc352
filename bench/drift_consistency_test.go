package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"tether/consistency"
	"tether/internal/testmodels"
)

// plantedJudge answers every prompt with answer(prompt) and counts the prompts.
type plantedJudge struct {
	mu     sync.Mutex
	calls  int
	answer func(prompt string) string
}

func (j *plantedJudge) Answer(_ context.Context, ps []string) ([]string, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls += len(ps)
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = j.answer(p)
	}
	return out, nil
}

func constant(s string) func(string) string { return func(string) string { return s } }

// TestDriftConsistencyConstantJudges runs drift end to end on the tiny model with planted
// judges: one that always answers YES gives every metric 1 with the interval [1, 1], one
// that always answers NO gives 0, and one that answers garbage gives only unparseable counts
// (no mean). The number of judgements follows from the run's shape; the report validates
// against the schema and report.md has the consistency tables. A resume judges nothing again.
func TestDriftConsistencyConstantJudges(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	prompts, err := consistency.DefaultPrompts()
	if err != nil {
		t.Fatal(err)
	}
	nq := len(prompts.Questions)
	// Per arm: 2 scenarios x 2 seeds = 4 conversations of 3 turns; Q&A after turns 0, 1, 2
	// (first, middle, last): 3 answers per question against the prompt, 2 against earlier ones.
	want := map[string]int{consistency.PromptToLine: 4 * 3, consistency.LineToLine: 4 * 2, consistency.QA: 4 * nq * 5}
	for _, c := range []struct {
		name, reply string
		score       float64
		parseable   bool
	}{{"yes", "YES", 1, true}, {"no", "no.", 0, true}, {"garbage", "I think the persona is fine", 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			opts := driftTestOptions(t, filepath.Join(dir, c.name), apath, u)
			j := &plantedJudge{answer: constant(c.reply)}
			opts.Judge, opts.JudgeName = j, "planted-"+c.name
			opts.Capability = false
			rep, err := RunDrift(t.Context(), m, opts)
			if err != nil {
				t.Fatal(err)
			}
			s := rep.Consistency
			if s == nil || len(s.Overall) != 6 {
				t.Fatalf("consistency summary %+v", s)
			}
			total := 0
			for _, cl := range s.Overall {
				w := want[cl.Metric]
				total += w
				if c.parseable {
					if cl.N != w || cl.Unparseable != 0 || cl.Mean == nil || *cl.Mean != c.score || *cl.Low != c.score || *cl.High != c.score {
						t.Errorf("%s %s: %+v, want %d judgements, all %g", cl.Arm, cl.Metric, cl, w, c.score)
					}
				} else if cl.N != 0 || cl.Unparseable != w || cl.Mean != nil || cl.Low != nil {
					t.Errorf("%s %s: %+v, want %d unparseable and no mean", cl.Arm, cl.Metric, cl, w)
				}
			}
			if j.calls != total {
				t.Errorf("judge asked %d times, want %d", j.calls, total)
			}
			data, err := os.ReadFile(filepath.Join(opts.Out, "report.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateDriftReportJSON(data); err != nil {
				t.Fatal(err)
			}
			md, err := os.ReadFile(filepath.Join(opts.Out, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{"## Consistency", "### Consistency per turn", "### Consistency per persona", "a lonely student"} {
				if !strings.Contains(string(md), w) {
					t.Errorf("report.md lacks %q", w)
				}
			}
			if !c.parseable && !strings.Contains(string(md), "no parseable verdict") {
				t.Error("report.md does not say the garbage judge gave no parseable verdict")
			}
			j.calls = 0
			again, err := RunDrift(t.Context(), m, opts)
			if err != nil {
				t.Fatal(err)
			}
			if j.calls != 0 {
				t.Errorf("resume of a finished run asked the judge %d times", j.calls)
			}
			a, _ := json.Marshal(again.Consistency)
			b, _ := json.Marshal(rep.Consistency)
			if string(a) != string(b) {
				t.Error("resumed report's consistency differs")
			}
		})
	}
}

// TestDriftConsistencyPlanted: with the user's own judge prompts (a template that quotes the
// user message) and a judge that finds a line consistent only when it answers a scenario's
// first user message, prompt-to-line is 1 at turn 0 and 0 at turns 1 and 2 in both arms. The
// diagnostic questions, asked only after turn 1 (--qa-turns 1), sit on turn 1's records, and
// the side branches leave the main conversation exactly as a run without a judge generates it.
func TestDriftConsistencyPlanted(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	pdir := filepath.Join(dir, "prompts")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, consistency.PromptToLineFile), []byte("USER<{user}> LINE<{line}> PERSONA<{persona}>\nYES or NO?"), 0o644); err != nil {
		t.Fatal(err)
	}
	prompts, err := consistency.LoadPrompts(pdir)
	if err != nil {
		t.Fatal(err)
	}
	firsts := []string{}
	for _, s := range driftTestScenarios() {
		firsts = append(firsts, "USER<"+s.UserTurns[0]+">")
	}
	judge := &plantedJudge{answer: func(p string) string {
		for _, f := range firsts {
			if strings.HasPrefix(p, f) {
				return "YES"
			}
		}
		return "NO"
	}}
	plain := driftTestOptions(t, filepath.Join(dir, "plain"), apath, u)
	plain.Capability = false
	base, err := RunDrift(t.Context(), m, plain)
	if err != nil {
		t.Fatal(err)
	}
	opts := driftTestOptions(t, filepath.Join(dir, "judged"), apath, u)
	opts.Capability = false
	opts.Judge, opts.JudgeName, opts.JudgePrompts, opts.JudgePromptsDir = judge, "planted", prompts, pdir
	opts.QATurns = []int{1, 7}
	rep, err := RunDrift(t.Context(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, rec := range rep.Turns {
		b := base.Turns[i]
		if rec.Response != b.Response || rec.Projection != b.Projection {
			t.Fatalf("%s %s seed %d turn %d: with diagnostics %q (%g), without %q (%g)", rec.Scenario, rec.Arm, rec.Seed, rec.Turn, rec.Response, rec.Projection, b.Response, b.Projection)
		}
		if n := len(rec.Diagnostics); (rec.Turn == 1) != (n == len(prompts.Questions)) || (rec.Turn != 1 && n != 0) {
			t.Errorf("turn %d holds %d diagnostic answers", rec.Turn, n)
		}
	}
	if rep.Settings.JudgePrompts != pdir || rep.Settings.JudgePromptsSHA256 != prompts.SHA256() || rep.Settings.ConsistencyPersona != DriftPersona {
		t.Errorf("settings %+v", rep.Settings)
	}
	seen := 0
	for _, c := range rep.Consistency.ByTurn {
		if c.Metric != consistency.PromptToLine {
			continue
		}
		seen++
		want := 0.0
		if *c.Turn == 0 {
			want = 1
		}
		if c.N != 4 || *c.Mean != want || *c.Low != want || *c.High != want {
			t.Errorf("%s prompt-to-line at turn %d: %+v, want 4 judgements, all %g", c.Arm, *c.Turn, c, want)
		}
	}
	if seen != 6 {
		t.Errorf("%d per-turn prompt-to-line cells, want 2 arms x 3 turns", seen)
	}
	for _, c := range rep.Consistency.ByPersona {
		// Each persona's conversations: 1 of 3 lines consistent.
		if c.Metric == consistency.PromptToLine && (c.N != 6 || *c.Mean != 1.0/3) {
			t.Errorf("%s %s: %+v, want 6 judgements, mean 1/3", c.Arm, c.Persona, c)
		}
	}
}
