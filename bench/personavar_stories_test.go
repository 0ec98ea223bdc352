package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tether/internal/testmodels"
	"tether/model"
	"tether/personas"
	"tether/tokenizer"
)

// storiesVarianceOptions is a tiny run on the bundled stories260K: 2 personas, 2 items, 3 seeds.
func storiesVarianceOptions(t *testing.T, out string, temperature float64) PersonaVarianceOptions {
	t.Helper()
	set, err := personas.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	q, err := personas.BuiltinQuestionnaire()
	if err != nil {
		t.Fatal(err)
	}
	q.Items = q.Items[:2]
	return PersonaVarianceOptions{
		Out: out, Personas: set.Personas[:2], PersonasSource: personas.BuiltinFile, Questionnaire: q,
		Seeds: []uint64{1, 2, 3}, Temperature: temperature, MaxTokens: 4, Layer: -1, Bootstrap: 50,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	}
}

// fits says independently of the runner whether a persona's anchor fits the context with every
// item and max new tokens.
func fits(t *testing.T, m *model.Model, o PersonaVarianceOptions, p personas.Persona, form string) bool {
	anchor, _ := p.Anchor(form)
	for _, it := range o.Questionnaire.Items {
		ids, err := m.ChatPrompt([]tokenizer.Message{{Role: "system", Content: anchor}, {Role: "user", Content: o.Questionnaire.Question(it)}}, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids)+o.MaxTokens > m.Config.MaxPositions {
			return false
		}
	}
	return true
}

func TestPersonaVarianceStories(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	out := filepath.Join(t.TempDir(), "run")
	o := storiesVarianceOptions(t, out, 1.0)
	var warnings int
	o.Warn = func(string) { warnings++ }
	rep, err := RunPersonaVariance(t.Context(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	wantSkipped, units := 0, 0
	for _, p := range o.Personas {
		for _, f := range personas.Forms {
			if fits(t, m, o, p, f) {
				units += len(o.Questionnaire.Items)
			} else {
				wantSkipped++
			}
		}
	}
	if rep.SkippedCount != wantSkipped || warnings != wantSkipped || len(rep.Skipped) != wantSkipped {
		t.Errorf("skipped %d (warned %d), want %d", rep.SkippedCount, warnings, wantSkipped)
	}
	if wantSkipped == 0 || units == 0 {
		t.Fatalf("the test needs both skipped and run anchors on a 512-token model (skipped %d, units %d)", wantSkipped, units)
	}
	if rep.Answers != units*3 || rep.ParseFailures.Answers != rep.Answers {
		t.Fatalf("%d answers, want %d", rep.Answers, units*3)
	}
	parsed := rep.ParseFailures.Answers - rep.ParseFailures.Failures
	if q, ok := rep.Representations[RepQuestionnaire]; ok != (parsed > 0) || ok && q.Observations != parsed {
		t.Errorf("questionnaire observations %d, parsed answers %d", q.Observations, parsed)
	}
	for _, name := range []string{RepActivation, RepText} {
		r := rep.Representations[name]
		if r.Dimensions != m.Config.HiddenSize || r.Observations != rep.Answers {
			t.Errorf("%s: %d dimensions %d observations", name, r.Dimensions, r.Observations)
		}
		if r.RunToRun.Variance <= 0 {
			t.Errorf("%s: run-to-run variance %v at temperature 1", name, r.RunToRun.Variance)
		}
	}
	data, err := os.ReadFile(filepath.Join(out, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateVarianceReportJSON(data); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ReportMarkdown, PlotVarianceICC} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// replyJudge answers every judge prompt with the same reply.
type replyJudge string

func (j replyJudge) Answer(_ context.Context, prompts []string) ([]string, error) {
	out := make([]string, len(prompts))
	for i := range out {
		out[i] = string(j)
	}
	return out, nil
}

// TestPersonaVarianceGreedy: at temperature 0 every seed gives the same answer, so run-to-run
// variance is exactly 0 and the finding is trivially "not supported"; two runs with the same
// seeds write the same answers. The runs are judged: a judge that always says YES gives every
// consistency metric 1, one that answers garbage gives only unparseable counts.
func TestPersonaVarianceGreedy(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	dir := t.TempDir()
	oa := storiesVarianceOptions(t, filepath.Join(dir, "a"), 0)
	oa.Judge, oa.JudgeName = replyJudge("YES"), "always-yes"
	rep, err := RunPersonaVariance(t.Context(), m, oa)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Consistency == nil || len(rep.Consistency.Overall) != 3 {
		t.Fatalf("consistency %+v: want the three metrics for the one anchor form that fits", rep.Consistency)
	}
	for _, c := range rep.Consistency.Overall {
		if c.Mean == nil || *c.Mean != 1 || *c.Low != 1 || c.Unparseable != 0 || c.N == 0 {
			t.Errorf("always-YES judge: %+v", c)
		}
	}
	for _, name := range []string{RepActivation, RepText} {
		r := rep.Representations[name]
		if r.RunToRun.Variance != 0 || r.RunToRun.High != 0 || r.Finding != FindingNotSupported || r.Note == "" {
			t.Errorf("%s: run-to-run %+v finding %q note %q", name, r.RunToRun, r.Finding, r.Note)
		}
	}
	ob := storiesVarianceOptions(t, filepath.Join(dir, "b"), 0)
	ob.Judge, ob.JudgeName = replyJudge("#%!banana"), "garbage"
	repB, err := RunPersonaVariance(t.Context(), m, ob)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range repB.Consistency.Overall {
		if c.Mean != nil || c.N != 0 || c.Unparseable != rep.Consistency.Overall[i].N {
			t.Errorf("garbage judge: %+v, want no score and %d unparseable", c, rep.Consistency.Overall[i].N)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a", VarianceAnswersFile))
	b, _ := os.ReadFile(filepath.Join(dir, "b", VarianceAnswersFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("two greedy runs wrote different answers")
	}
}

// TestPersonaVarianceResume: a run killed after its first unit and resumed writes the same
// report.json as an uninterrupted run with the same seeds.
func TestPersonaVarianceResume(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	dir := t.TempDir()
	full := storiesVarianceOptions(t, filepath.Join(dir, "full"), 1)
	if _, err := RunPersonaVariance(t.Context(), m, full); err != nil {
		t.Fatal(err)
	}
	cut := storiesVarianceOptions(t, filepath.Join(dir, "cut"), 1)
	ctx, cancel := context.WithCancel(t.Context())
	cut.Progress = func(done, total int) {
		if done == 1 {
			cancel()
		}
	}
	if _, err := RunPersonaVariance(ctx, m, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	cut.Progress = nil
	if _, err := RunPersonaVariance(t.Context(), m, cut); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "full", ReportJSON))
	b, _ := os.ReadFile(filepath.Join(dir, "cut", ReportJSON))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run's report differs from the uninterrupted run's")
	}
	other := storiesVarianceOptions(t, filepath.Join(dir, "cut"), 0.5)
	if _, err := RunPersonaVariance(t.Context(), m, other); err == nil {
		t.Error("resuming with another temperature: no error")
	}
}
