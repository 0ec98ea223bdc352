package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"tether/internal/testmodels"
	"tether/runstore"
)

// plantedAnswerer plays the game with planted secrets: each conversation (its Key) holds the
// secret pick(key) and answers question q with truth[secret][q]; the reveal names the secret.
type plantedAnswerer struct {
	secrets   []string
	truth     [][]bool // secret index -> answer per question
	questions map[string]int
	reveal    string
	pick      func(key string) int
	garble    map[int]bool // questions answered with something that is not yes or no
}

func (p *plantedAnswerer) Answer(_ context.Context, reqs []AnswerRequest) ([]AnswerReply, error) {
	out := make([]AnswerReply, len(reqs))
	for i, r := range reqs {
		sec := p.pick(r.Key)
		last := r.Messages[len(r.Messages)-1].Content
		act := []float32{float32(sec), 1}
		switch q, ok := p.questions[last]; {
		case ok && p.garble[q]:
			out[i] = AnswerReply{Text: "Maybe, yes.", Activation: act}
		case ok && p.truth[sec][q]:
			out[i] = AnswerReply{Text: "Yes.", Activation: act}
		case ok:
			out[i] = AnswerReply{Text: "No, it is not.", Activation: act}
		case last == p.reveal:
			out[i] = AnswerReply{Text: "The " + p.secrets[sec] + "!", Activation: act}
		default:
			out[i] = AnswerReply{Text: "All right, I have one.", Activation: act}
		}
	}
	return out, nil
}

// plantedGame builds nq questions and s secrets whose answers are the bits of the secret's index
// (question q asks bit q mod bits), so that distinct secrets differ on some question.
func plantedGame(nq, s int) (CommitmentSettings, *plantedAnswerer) {
	set := CommitmentSettings{Subject: SubjectObject, BranchAt: []int{2, 5}, Branches: 8, Temperature: 1, MaxTokens: 8, Seed: 7}
	p := &plantedAnswerer{questions: map[string]int{}, reveal: CommitmentReveal(SubjectObject)}
	for q := range nq {
		set.Questions = append(set.Questions, fmt.Sprintf("Question %d?", q))
		p.questions[set.Questions[q]] = q
	}
	set.Openings = []string{"Opening A", "Opening B", "Opening C"}
	bits := max(1, int(math.Ceil(math.Log2(float64(s)))))
	for i := range s {
		p.secrets = append(p.secrets, fmt.Sprintf("thing%d", i))
		row := make([]bool, nq)
		for q := range nq {
			row[q] = (i>>(q%bits))&1 == 1
		}
		p.truth = append(p.truth, row)
	}
	return set, p
}

func runPlanted(t *testing.T, set CommitmentSettings, p Answerer) *CommitmentReport {
	t.Helper()
	rep, err := RunCommitment(context.Background(), p, CommitmentOptions{Out: filepath.Join(t.TempDir(), "run"), Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestCommitmentSharedSecret(t *testing.T) {
	set, p := plantedGame(10, 4)
	// Every conversation of an opening holds one secret: the opening's index.
	p.pick = func(key string) int {
		var o int
		fmt.Sscanf(key, "o%d", &o)
		return o
	}
	rep := runPlanted(t, set, p)
	if rep.Agreement.Estimate != 1 || rep.JointConsistency.Estimate != 1 || rep.RevealEntropy.Estimate != 0 || rep.RevealEntropy.High != 0 {
		t.Fatalf("shared secret: agreement %+v joint %+v entropy %+v, want 1, 1, 0", rep.Agreement, rep.JointConsistency, rep.RevealEntropy)
	}
	if rep.Spread == nil || rep.Spread.WithinOpening.Estimate != 0 || rep.Spread.BetweenOpenings.Estimate <= 0 {
		t.Fatalf("spread %+v: want 0 within an opening and > 0 between openings", rep.Spread)
	}
	if got := rep.ByPoint[0].Reveals["thing0"]; got != set.Branches {
		t.Fatalf("reveals at the first point %v: want thing0 x%d (normalised: article and punctuation dropped)", rep.ByPoint[0].Reveals, set.Branches)
	}
}

// expectedAgreement is E[max(X, K-X)]/K for X ~ Binomial(K, p): the expected fraction of K
// independent answers, each yes with probability p, that agree with their majority.
func expectedAgreement(k int, p float64) float64 {
	e := 0.0
	for x := 0; x <= k; x++ {
		lc, _ := math.Lgamma(float64(k + 1))
		l1, _ := math.Lgamma(float64(x + 1))
		l2, _ := math.Lgamma(float64(k - x + 1))
		pr := math.Exp(lc - l1 - l2 + float64(x)*math.Log(p) + float64(k-x)*math.Log(1-p))
		e += pr * float64(max(x, k-x)) / float64(k)
	}
	return e
}

func TestCommitmentRandomSecrets(t *testing.T) {
	for _, tc := range []struct{ s, k int }{{4, 400}, {3, 300}, {2, 6}} {
		t.Run(fmt.Sprintf("S=%d,K=%d", tc.s, tc.k), func(t *testing.T) {
			set, p := plantedGame(8, tc.s)
			set.Branches = tc.k
			set.Openings = set.Openings[:2]
			p.pick = func(key string) int { return int(hashSeed("secret:"+key) % uint64(tc.s)) }
			rep := runPlanted(t, set, p)
			// The expected agreement, from the planted truth table: per question the fraction
			// p of secrets answering yes.
			want, n := 0.0, 0
			for range set.Openings {
				for _, at := range set.BranchAt {
					sum := 0.0
					for q := at; q < len(set.Questions); q++ {
						yes := 0
						for s := range tc.s {
							if p.truth[s][q] {
								yes++
							}
						}
						sum += expectedAgreement(tc.k, float64(yes)/float64(tc.s))
					}
					want += sum / float64(len(set.Questions)-at)
					n++
				}
			}
			want /= float64(n)
			tol := 3 * 0.5 / math.Sqrt(float64(tc.k*n))
			if math.Abs(rep.Agreement.Estimate-want) > tol+0.02 {
				t.Errorf("agreement %.4f, expected %.4f (binomial)", rep.Agreement.Estimate, want)
			}
			if tc.k >= 300 {
				if h := rep.RevealEntropy.Estimate; math.Abs(h-math.Log2(float64(tc.s))) > 0.05 {
					t.Errorf("reveal entropy %.4f bits, want near log2(%d) = %.4f", h, tc.s, math.Log2(float64(tc.s)))
				}
				if rep.JointConsistency.Estimate != 0 {
					t.Errorf("joint consistency %.3f with %d branches over %d secrets: want 0", rep.JointConsistency.Estimate, tc.k, tc.s)
				}
			}
		})
	}
}

func TestCommitmentUnparseableCounted(t *testing.T) {
	set, p := plantedGame(10, 4)
	p.pick = func(string) int { return 1 }
	p.garble = map[int]bool{6: true, 8: true}
	rep := runPlanted(t, set, p)
	// Questions after each branch point, per opening; the garbled ones are asked in both.
	perOpening := (10 - 2) + (10 - 5)
	garbled := 2 * 2 // two questions, both after both branch points
	nop := len(set.Openings)
	c := rep.Counts
	if c.Unparseable != nop*garbled*set.Branches || c.UnscoredQuestion != nop*garbled || c.ScoredQuestions != nop*(perOpening-garbled) {
		t.Fatalf("counts %+v: want %d unparseable answers, %d unscored and %d scored questions", c, nop*garbled*set.Branches, nop*garbled, nop*(perOpening-garbled))
	}
	if rep.Agreement.Estimate != 1 {
		t.Fatalf("agreement %v: unparseable answers must not be scored", rep.Agreement.Estimate)
	}
}

func TestParseYesNo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Yes.", AnswerYes}, {"  **no**, it is not", AnswerNo}, {"YES", AnswerYes}, {"\"No\"", AnswerNo},
		{"Yesterday", AnswerUnparseable}, {"Not really", AnswerUnparseable}, {"I think yes", AnswerUnparseable}, {"", AnswerUnparseable},
		{"Nope", AnswerUnparseable},
	} {
		if got := ParseYesNo(tc.in); got != tc.want {
			t.Errorf("ParseYesNo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeReveal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"The Apple!", "apple"}, {"\n  an old  Chair.\nmore", "old chair"}, {"Sherlock Holmes", "sherlock holmes"}, {"...", ""},
	} {
		if got := NormalizeReveal(tc.in); got != tc.want {
			t.Errorf("NormalizeReveal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCommitmentResume(t *testing.T) {
	set, p := plantedGame(10, 4)
	p.pick = func(key string) int { return int(hashSeed("secret:"+key) % 4) }
	full := runPlanted(t, set, p)
	dir := filepath.Join(t.TempDir(), "run")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := RunCommitment(ctx, p, CommitmentOptions{Out: dir, Settings: set, Progress: func(done, _ int) {
		if done == 1 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	// A torn last line, as a kill in the middle of a write leaves it.
	f, err := os.OpenFile(filepath.Join(dir, CommitmentUnitsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"opening":1,"trunk":["tor`)
	f.Close()
	resumed, err := RunCommitment(context.Background(), p, CommitmentOptions{Out: dir, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	a, errA := json.Marshal(full)
	b, errB := json.Marshal(resumed)
	if errA != nil || errB != nil || string(a) != string(b) {
		t.Fatalf("resumed report differs (%v, %v):\n%s\n%s", errA, errB, a, b)
	}
	set.Branches++
	if _, err := RunCommitment(context.Background(), p, CommitmentOptions{Out: dir, Settings: set}); err == nil {
		t.Fatal("a resume with other settings was accepted")
	}
}

func TestCommitmentSettingsErrors(t *testing.T) {
	set, _ := plantedGame(10, 2)
	for name, mut := range map[string]func(*CommitmentSettings){
		"subject":     func(s *CommitmentSettings) { s.Subject = "animal" },
		"branch past": func(s *CommitmentSettings) { s.BranchAt = []int{10} },
		"unordered":   func(s *CommitmentSettings) { s.BranchAt = []int{5, 2} },
		"one branch":  func(s *CommitmentSettings) { s.Branches = 1 },
	} {
		s := set
		mut(&s)
		if err := CheckCommitmentSettings(s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCommitmentStories260K(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	qs, err := BuiltinCommitmentQuestions(SubjectObject)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := BuiltinCommitmentOpenings(SubjectObject)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 20 {
		t.Fatalf("%d built-in questions, want at least 20", len(qs))
	}
	for _, temp := range []float64{0, 1} {
		t.Run(fmt.Sprint("temperature ", temp), func(t *testing.T) {
			set := CommitmentSettings{Subject: SubjectObject, Questions: qs[:3], Openings: ops[:2], BranchAt: []int{1}, Branches: 3,
				Temperature: temp, TopP: 1, MaxTokens: 6, Layer: m.Config.NumLayers / 2, Seed: 1}
			ans := &ModelAnswerer{M: m, Layer: set.Layer, MaxTokens: set.MaxTokens, Temperature: temp, TopP: 1}
			dir := filepath.Join(t.TempDir(), "run")
			rep, err := RunCommitment(context.Background(), ans, CommitmentOptions{Out: dir, Settings: set})
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(filepath.Join(dir, ReportJSON))
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateCommitmentReportJSON(data); err != nil {
				t.Fatal(err)
			}
			if rep.Spread == nil {
				t.Fatal("no residual spread measured")
			}
			if temp != 0 {
				return
			}
			// Greedy: every branch of a branch point replies the same, word for word.
			if _, err := runstore.ScanRecords(filepath.Join(dir, CommitmentUnitsFile), func(u CommitUnit, _ int, _ runstore.Ref) error {
				for _, p := range u.Points {
					for _, b := range p.Branches[1:] {
						if fmt.Sprint(b.Replies, b.Reveal) != fmt.Sprint(p.Branches[0].Replies, p.Branches[0].Reveal) {
							t.Errorf("greedy: opening %d, branch point %d: branch %d replied %q %q, branch 0 %q %q", u.Opening, p.At, b.Branch, b.Replies, b.Reveal, p.Branches[0].Replies, p.Branches[0].Reveal)
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if rep.RevealEntropy.Estimate != 0 || rep.Spread.WithinOpening.Estimate != 0 {
				t.Errorf("greedy: reveal entropy %v, within-opening spread %v: want 0", rep.RevealEntropy.Estimate, rep.Spread.WithinOpening.Estimate)
			}
			if rep.Counts.ScoredQuestions > 0 && rep.Agreement.Estimate != 1 {
				t.Errorf("greedy: agreement %v, want 1", rep.Agreement.Estimate)
			}
		})
	}
}
