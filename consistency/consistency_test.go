package consistency

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// constJudge answers every prompt with the same reply and counts the prompts it saw.
type constJudge struct {
	reply   string
	prompts []string
}

func (j *constJudge) Answer(_ context.Context, ps []string) ([]string, error) {
	j.prompts = append(j.prompts, ps...)
	out := make([]string, len(ps))
	for i := range out {
		out[i] = j.reply
	}
	return out, nil
}

// testConversation has 4 lines and the 2 diagnostic questions asked after turns 0 and 3.
func testConversation() Conversation {
	c := Conversation{}
	for t := range 4 {
		c.Lines = append(c.Lines, Line{Turn: t, User: fmt.Sprintf("user %d", t), Text: fmt.Sprintf("line %d", t)})
	}
	for _, t := range []int{0, 3} {
		for _, q := range []string{"Who are you?", "What do you like?"} {
			c.Answers = append(c.Answers, Answer{Turn: t, Question: q, Text: fmt.Sprintf("answer %s at %d", q, t)})
		}
	}
	return c
}

func TestParseVerdict(t *testing.T) {
	cases := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"YES", 1, true}, {"no", 0, true}, {" Yes.\nbecause it is", 1, true}, {"**NO**", 0, true},
		{"\n\nyes", 1, true}, {"Yes, because", 0, false}, {"1", 0, false}, {"", 0, false},
		{"maybe\nYES", 0, false}, {"YESNO", 0, false}, {"no no", 0, false},
	}
	for _, c := range cases {
		got, ok := ParseVerdict(c.in)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("ParseVerdict(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// A judge that always answers the same thing gives the extreme scores (YES: every metric 1,
// NO: every metric 0); garbage gives only unparseable counts. The number of judgements follows
// from the conversation's shape: 4 prompt-to-line, 3 line-to-line, 4 Q&A against the prompt and
// 2 against earlier answers.
func TestScoreConstantJudges(t *testing.T) {
	conv := testConversation()
	want := map[string]int{PromptToLine: 4, LineToLine: 3, QA: 6}
	for _, c := range []struct {
		reply string
		score *float64
	}{{"YES", ptr(1.0)}, {"NO", ptr(0.0)}, {"The persona is a pirate.", nil}} {
		j := &constJudge{reply: c.reply}
		js, err := Score(context.Background(), j, conv, "You are a pirate.", Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, jd := range js {
			got[jd.Metric]++
			if (jd.Score == nil) != (c.score == nil) || (jd.Score != nil && *jd.Score != *c.score) {
				t.Errorf("reply %q: judgement %+v: score %v, want %v", c.reply, jd, jd.Score, c.score)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("reply %q: judgements per metric %v, want %v", c.reply, got, want)
		}
		sum, err := Aggregate(Observe("a", "pirate", "c1", js), AggregateOptions{Bootstrap: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range sum.Overall {
			switch {
			case c.score == nil:
				if cl.Mean != nil || cl.N != 0 || cl.Unparseable != want[cl.Metric] {
					t.Errorf("garbage judge: cell %+v: want no mean, n 0, unparseable %d", cl, want[cl.Metric])
				}
			case cl.Mean == nil || *cl.Mean != *c.score || *cl.Low != *c.score || *cl.High != *c.score || cl.Unparseable != 0:
				t.Errorf("judge %q: cell %+v: want mean and interval %v", c.reply, cl, *c.score)
			}
		}
	}
}

// The judge prompts hold what the metric compares: the persona always, the earlier lines in
// line-to-line, the earlier answers to the same question (and not the other question's) in Q&A.
func TestScorePromptsContent(t *testing.T) {
	j := &constJudge{reply: "YES"}
	js, err := Score(context.Background(), j, testConversation(), "PERSONA-X", Options{MaxEarlier: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i, jd := range js {
		p := j.prompts[i]
		if !strings.Contains(p, "PERSONA-X") {
			t.Errorf("judgement %d (%s) prompt lacks the persona", i, jd.Metric)
		}
		if strings.Contains(p, "{") {
			t.Errorf("judgement %d prompt has an unfilled placeholder:\n%s", i, p)
		}
		switch {
		case jd.Metric == LineToLine && jd.Turn == 3:
			if !strings.Contains(p, "line 1") || !strings.Contains(p, "line 2") || strings.Contains(p, "line 0") {
				t.Errorf("line-to-line at turn 3 with MaxEarlier 2 should quote lines 1 and 2 only:\n%s", p)
			}
		case jd.Against == AgainstEarlierAnswers:
			if jd.Question != "Who are you?" && jd.Question != "What do you like?" || jd.Turn != 3 {
				t.Errorf("Q&A against earlier answers: %+v", jd)
			}
			other := "What do you like? at 0"
			if jd.Question == "What do you like?" {
				other = "Who are you? at 0"
			}
			if !strings.Contains(p, jd.Question+" at 0") || strings.Contains(p, other) {
				t.Errorf("Q&A prompt should quote its own question's earlier answer only:\n%s", p)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Planted consistency rates: every judgement of a persona's conversation is consistent with
// probability p; each conversation judges 8 lines. Over many simulated draws the 90% interval of the mean must
// cover the true mean at about the nominal rate, per persona and overall.
func TestAggregateCoverage(t *testing.T) {
	const (
		draws, convs, lines = 200, 30, 8
		level               = 0.9
	)
	personas := map[string]float64{"calm": 0.8, "erratic": 0.4}
	rng := rand.New(rand.NewPCG(7, 11))
	covered := map[string]int{}
	for d := range draws {
		var obs []Observation
		for c := range 2 * convs {
			// Each conversation's persona is drawn at random, as the overall cell's
			// resampling of conversations assumes.
			name := "calm"
			if rng.IntN(2) == 1 {
				name = "erratic"
			}
			p := personas[name]
			{
				for l := range lines {
					s := 0.0
					if rng.Float64() < p {
						s = 1
					}
					obs = append(obs, Observation{Arm: "a", Persona: name, Conversation: fmt.Sprintf("%s-%d", name, c), Turn: l, Metric: PromptToLine, Score: &s})
				}
			}
		}
		sum, err := Aggregate(obs, AggregateOptions{Bootstrap: 400, Level: level, Seed: uint64(d + 1)})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range sum.ByPersona {
			if p := personas[c.Persona]; *c.Low <= p && p <= *c.High {
				covered[c.Persona]++
			}
		}
		if m := (personas["calm"] + personas["erratic"]) / 2; *sum.Overall[0].Low <= m && m <= *sum.Overall[0].High {
			covered["overall"]++
		}
		if d == 0 {
			if len(sum.ByTurn) != lines || sum.ByTurn[3].N != 2*convs || sum.ByTurn[3].Conversations != 2*convs || *sum.ByTurn[3].Turn != 3 {
				t.Fatalf("per-turn cells: %d cells, turn 3 cell %+v", len(sum.ByTurn), sum.ByTurn[3])
			}
		}
	}
	// Binomial(200, 0.9): sd 2.1%; accept 0.84..0.96.
	for k, n := range covered {
		if r := float64(n) / draws; r < 0.84 || r > 0.96 {
			t.Errorf("%s: interval covered the truth in %.2f of draws, want about %.2f", k, r, level)
		}
	}
	if len(covered) != 3 {
		t.Errorf("coverage counted for %v, want calm, erratic and overall", covered)
	}
}

// Aggregation counts unparseable judgements per cell, leaves them out of the mean, and gives a
// cell with only unparseable judgements no mean.
func TestAggregateUnparseable(t *testing.T) {
	one, zero := 1.0, 0.0
	obs := []Observation{
		{Arm: "x", Persona: "p", Conversation: "c1", Turn: 0, Metric: QA, Score: &one},
		{Arm: "x", Persona: "p", Conversation: "c1", Turn: 0, Metric: QA, Score: nil},
		{Arm: "x", Persona: "p", Conversation: "c2", Turn: 1, Metric: QA, Score: &zero},
		{Arm: "x", Persona: "p", Conversation: "c2", Turn: 2, Metric: QA, Score: nil},
	}
	sum, err := Aggregate(obs, AggregateOptions{Bootstrap: 100})
	if err != nil {
		t.Fatal(err)
	}
	o := sum.Overall[0]
	if o.N != 2 || o.Unparseable != 2 || *o.Mean != 0.5 || o.Conversations != 2 {
		t.Errorf("overall %+v", o)
	}
	last := sum.ByTurn[2]
	if *last.Turn != 2 || last.Mean != nil || last.Unparseable != 1 || last.N != 0 {
		t.Errorf("turn 2 cell %+v: want no mean, 1 unparseable", last)
	}
	if _, err := Aggregate([]Observation{{Metric: "vibes"}}, AggregateOptions{}); err == nil || !strings.Contains(err.Error(), "vibes") {
		t.Errorf("unknown metric: error %v", err)
	}
	bad := 0.5
	if _, err := Aggregate([]Observation{{Metric: QA, Score: &bad}}, AggregateOptions{}); err == nil {
		t.Error("score 0.5 accepted")
	}
	if math.IsNaN(*o.Low) || *o.Low > *o.High {
		t.Errorf("interval [%v, %v]", *o.Low, *o.High)
	}
}

func TestLoadPrompts(t *testing.T) {
	def, err := DefaultPrompts()
	if err != nil {
		t.Fatal(err)
	}
	if len(def.Questions) < 2 {
		t.Errorf("built-in questions %v", def.Questions)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(QuestionsFile, "# mine\nWhere were you born?\n")
	write(PromptToLineFile, "P={persona} L={line}\nYES or NO")
	p, err := LoadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Questions) != 1 || p.Questions[0] != "Where were you born?" || p.LineToLine != def.LineToLine || !strings.HasPrefix(p.PromptToLine, "P=") {
		t.Errorf("override: %+v", p)
	}
	j := &constJudge{reply: "yes"}
	if _, err := Score(context.Background(), j, Conversation{Lines: []Line{{Text: "ahoy"}}}, "pirate", Options{Prompts: p}); err != nil || j.prompts[0] != "P=pirate L=ahoy\nYES or NO" {
		t.Errorf("filled prompt %q, error %v", j.prompts, err)
	}
	for _, c := range []struct{ name, text, want string }{
		{LineToLineFile, "{persona} {line}", "missing placeholder {earlier_lines}"},
		{QAPromptFile, "{persona} {question} {answer} {mood}", "unknown placeholder {mood}"},
		{QuestionsFile, "# nothing\n\n", "no question"},
		{"prompt-to-line.txt", "x", "unknown file"},
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, c.name), []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadPrompts(d)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), filepath.Join(d, c.name)) {
			t.Errorf("%s: error %v, want one naming the file and %q", c.name, err, c.want)
		}
	}
}
