package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"tether/runstore"
	"tether/tokenizer"
)

// Files of a commitment run directory.
const (
	CommitmentManifestFile = "run.json"
	CommitmentUnitsFile    = "openings.jsonl"
	CommitmentReportFormat = "tether-commitment-report/1"
)

// AnswerRequest is one assistant turn of the game to produce: the conversation so far (ending
// with a user turn), the turn's sampling seed, and Key, which names the conversation:
// "o<i>/trunk" for opening i's shared start, "o<i>/b<at>/k<k>" for branch k at branch point at.
type AnswerRequest struct {
	Key      string
	Messages []tokenizer.Message
	Seed     uint64
}

// AnswerReply is the assistant's reply to an AnswerRequest, and the mean residual activation
// over its generated tokens at the measured layer (nil when the answerer measures none).
type AnswerReply struct {
	Text       string
	Activation []float32
}

// Answerer plays the assistant's side of the game. The model answers through ModelAnswerer; tests
// plant answers with a simulated one. Answer gets several requests at once (one batch) and must
// answer each from its own request only, so that batching never changes a reply.
type Answerer interface {
	Answer(ctx context.Context, reqs []AnswerRequest) ([]AnswerReply, error)
}

// CommitmentSettings are the settings a commitment run was started with (run.json); a resume
// with other settings is refused.
type CommitmentSettings struct {
	Subject        string   `json:"subject"`
	Questions      []string `json:"questions"`
	Openings       []string `json:"openings"`
	BranchAt       []int    `json:"branch_at"`
	Branches       int      `json:"branches"` // --seeds: branches per branch point
	Temperature    float64  `json:"temperature"`
	TopP           float64  `json:"top_p"`
	MaxTokens      int      `json:"max_tokens"`
	Layer          int      `json:"layer"`
	LayerReason    string   `json:"layer_reason"`
	Seed           uint64   `json:"seed"`
	EnableThinking bool     `json:"enable_thinking"`
}

// CommitmentModel names what answered: the model (empty for a simulated answerer).
type CommitmentModel struct {
	Name         string `json:"name"`
	Dir          string `json:"dir"`
	ConfigSHA256 string `json:"config_sha256"`
	Backend      string `json:"backend"`
}

// CommitmentManifest is OUT/run.json.
type CommitmentManifest struct {
	Format   string             `json:"format"`
	Model    CommitmentModel    `json:"model"`
	Settings CommitmentSettings `json:"settings"`
}

// CommitmentOptions configure RunCommitment.
type CommitmentOptions struct {
	Out      string
	Model    CommitmentModel
	Settings CommitmentSettings
	// Progress, when set, is called with the finished and total openings.
	Progress func(done, total int)
}

// CommitBranch is one regeneration after a branch point: its replies to the remaining
// questions, their parsed yes/no answers, its final reveal and the mean of its answers'
// activations.
type CommitBranch struct {
	Branch     int       `json:"branch"`
	Replies    []string  `json:"replies"`
	Parsed     []string  `json:"parsed"`
	Reveal     string    `json:"reveal"`
	RevealNorm string    `json:"reveal_normalized"`
	Activation []float32 `json:"activation,omitempty"`
}

// CommitPoint is one branch point: the game branches after question At (1-based count of the
// questions answered in the shared trunk) into its branches.
type CommitPoint struct {
	At       int            `json:"at"`
	Branches []CommitBranch `json:"branches"`
}

// CommitUnit is one opening's game, the unit a run stores (one JSONL line): the shared trunk
// (the reply to the opening, then the answers to questions 1 .. the last branch point) and every
// branch point's branches.
type CommitUnit struct {
	Opening int           `json:"opening"`
	Trunk   []string      `json:"trunk"`
	Points  []CommitPoint `json:"points"`
}

// CommitTurnSeed is the sampling seed of one assistant turn: a pure function of the run seed,
// the conversation key (AnswerRequest.Key) and the turn's index in the conversation, so that
// batching and resuming never change a reply.
func CommitTurnSeed(seed uint64, key string, turn int) uint64 {
	return hashSeed(fmt.Sprintf("commit:%d:%s:%d", seed, key, turn))
}

// CheckCommitmentSettings reports settings the game cannot run with, naming the flag.
func CheckCommitmentSettings(s CommitmentSettings) error {
	if s.Subject != SubjectObject && s.Subject != SubjectCharacter {
		return fmt.Errorf("bench: commitment: --subject %q: expected %q or %q", s.Subject, SubjectObject, SubjectCharacter)
	}
	if len(s.Questions) < 2 {
		return fmt.Errorf("bench: commitment: %d questions: expected at least 2", len(s.Questions))
	}
	if len(s.Openings) < 1 {
		return errors.New("bench: commitment: --openings: expected at least 1 opening")
	}
	if s.Branches < 2 {
		return fmt.Errorf("bench: commitment: --seeds %d: expected at least 2 branches per branch point", s.Branches)
	}
	if len(s.BranchAt) == 0 {
		return errors.New("bench: commitment: --branch-at: expected at least one branch point")
	}
	prev := -1
	for _, at := range s.BranchAt {
		if at < 0 || at >= len(s.Questions) || at <= prev {
			return fmt.Errorf("bench: commitment: --branch-at %v: expected increasing question counts with 0 <= x < %d (the number of questions), so that every branch has a question left", s.BranchAt, len(s.Questions))
		}
		prev = at
	}
	return nil
}

// DefaultBranchAt spreads three branch points over a game of n questions (at a quarter, a half
// and three quarters), dropping duplicates and points with no question left.
func DefaultBranchAt(n int) []int {
	var out []int
	for i := 1; i <= 3; i++ {
		at := n * i / 4
		if at < n && (len(out) == 0 || at > out[len(out)-1]) {
			out = append(out, at)
		}
	}
	return out
}

// CommitmentMaxNewTokens is the most new tokens one opening's game can generate: the trunk's
// replies (the opening and the questions up to the last branch point), then per branch the
// remaining questions and the reveal.
func CommitmentMaxNewTokens(s CommitmentSettings) int {
	if len(s.BranchAt) == 0 {
		return 0
	}
	replies := s.BranchAt[len(s.BranchAt)-1] + 1
	for _, at := range s.BranchAt {
		replies += s.Branches * (len(s.Questions) - at + 1)
	}
	return replies * s.MaxTokens
}

// RunCommitment plays the game of every opening (resuming a run in opts.Out), then writes and
// returns the report.
func RunCommitment(ctx context.Context, ans Answerer, opts CommitmentOptions) (*CommitmentReport, error) {
	s := opts.Settings
	if err := CheckCommitmentSettings(s); err != nil {
		return nil, err
	}
	want := CommitmentManifest{Format: CommitmentReportFormat, Model: opts.Model, Settings: s}
	st, err := runstore.Open(opts.Out, CommitmentManifestFile, want, runstore.Options[CommitmentManifest]{
		Check: func(have, want CommitmentManifest) error {
			if err := runstore.Diff(have, want); err != nil {
				return fmt.Errorf("bench: commitment: cannot resume %s: %s %w (use a new --out directory)", opts.Out, CommitmentManifestFile, err)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	path := filepath.Join(opts.Out, CommitmentUnitsFile)
	done := map[int]CommitUnit{}
	end, err := runstore.ScanRecords(path, func(u CommitUnit, line int, _ runstore.Ref) error {
		if u.Opening < 0 || u.Opening >= len(s.Openings) {
			return fmt.Errorf("%s: line %d: opening %d is not part of this run", path, line, u.Opening)
		}
		done[u.Opening] = u
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bench: commitment: %w", err)
	}
	log, err := st.OpenLog(CommitmentUnitsFile, end)
	if err != nil {
		return nil, fmt.Errorf("bench: commitment: %w", err)
	}
	defer log.Close()
	total := len(s.Openings)
	if opts.Progress != nil {
		opts.Progress(len(done), total)
	}
	for o := range s.Openings {
		if _, ok := done[o]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		u, err := playOpening(ctx, ans, s, o)
		if err != nil {
			return nil, err
		}
		if _, err := log.Append(u); err != nil {
			return nil, fmt.Errorf("bench: commitment: %w", err)
		}
		done[o] = u
		if opts.Progress != nil {
			opts.Progress(len(done), total)
		}
	}
	units := make([]CommitUnit, total)
	for o := range units {
		units[o] = done[o]
	}
	rep := SummarizeCommitment(want, units)
	if err := WriteCommitmentReport(opts.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// branchState is one branch in flight.
type branchState struct {
	point, k int
	key      string
	msgs     []tokenizer.Message
	next     int // the index of the next question; len(questions) is the reveal
	branch   CommitBranch
	acts     [][]float32
}

// playOpening plays opening o: the trunk up to the last branch point, one turn at a time, then
// every branch of every branch point, all branches' turn j in one batch.
func playOpening(ctx context.Context, ans Answerer, s CommitmentSettings, o int) (CommitUnit, error) {
	u := CommitUnit{Opening: o}
	trunkKey := fmt.Sprintf("o%d/trunk", o)
	msgs := []tokenizer.Message{{Role: "user", Content: s.Openings[o]}}
	snapshots := map[int][]tokenizer.Message{}
	last := s.BranchAt[len(s.BranchAt)-1]
	for q := 0; ; q++ {
		rep, err := answerOne(ctx, ans, AnswerRequest{Key: trunkKey, Messages: msgs, Seed: CommitTurnSeed(s.Seed, trunkKey, len(msgs))})
		if err != nil {
			return u, fmt.Errorf("bench: commitment: opening %d, trunk turn %d: %w", o, q, err)
		}
		msgs = append(msgs, tokenizer.Message{Role: "assistant", Content: rep.Text})
		u.Trunk = append(u.Trunk, rep.Text)
		snapshots[q] = msgs
		if q == last {
			break
		}
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: s.Questions[q]})
	}
	var live []*branchState
	for p, at := range s.BranchAt {
		u.Points = append(u.Points, CommitPoint{At: at})
		for k := range s.Branches {
			base := snapshots[at]
			b := &branchState{point: p, k: k, key: fmt.Sprintf("o%d/b%d/k%d", o, at, k), next: at, branch: CommitBranch{Branch: k}}
			b.msgs = append(append([]tokenizer.Message(nil), base...), tokenizer.Message{Role: "user", Content: s.Questions[at]})
			live = append(live, b)
		}
	}
	reveal := CommitmentReveal(s.Subject)
	for len(live) > 0 {
		reqs := make([]AnswerRequest, len(live))
		for i, b := range live {
			reqs[i] = AnswerRequest{Key: b.key, Messages: b.msgs, Seed: CommitTurnSeed(s.Seed, b.key, len(b.msgs))}
		}
		reps, err := ans.Answer(ctx, reqs)
		if err != nil {
			return u, fmt.Errorf("bench: commitment: opening %d, branches: %w", o, err)
		}
		if len(reps) != len(reqs) {
			return u, fmt.Errorf("bench: commitment: opening %d: the answerer gave %d replies to %d requests", o, len(reps), len(reqs))
		}
		var still []*branchState
		for i, b := range live {
			text := strings.TrimSpace(reps[i].Text)
			b.msgs = append(b.msgs, tokenizer.Message{Role: "assistant", Content: text})
			if b.next == len(s.Questions) {
				b.branch.Reveal, b.branch.RevealNorm = text, NormalizeReveal(text)
				b.branch.Activation = meanVector(b.acts)
				u.Points[b.point].Branches = append(u.Points[b.point].Branches, b.branch)
				continue
			}
			b.branch.Replies = append(b.branch.Replies, text)
			b.branch.Parsed = append(b.branch.Parsed, ParseYesNo(text))
			if reps[i].Activation != nil {
				b.acts = append(b.acts, reps[i].Activation)
			}
			b.next++
			q := reveal
			if b.next < len(s.Questions) {
				q = s.Questions[b.next]
			}
			b.msgs = append(b.msgs, tokenizer.Message{Role: "user", Content: q})
			still = append(still, b)
		}
		live = still
	}
	return u, nil
}

// answerOne asks the answerer for one reply.
func answerOne(ctx context.Context, ans Answerer, req AnswerRequest) (AnswerReply, error) {
	reps, err := ans.Answer(ctx, []AnswerRequest{req})
	if err != nil {
		return AnswerReply{}, err
	}
	if len(reps) != 1 {
		return AnswerReply{}, fmt.Errorf("the answerer gave %d replies to 1 request", len(reps))
	}
	reps[0].Text = strings.TrimSpace(reps[0].Text)
	return reps[0], nil
}

// meanVector is the element-wise mean of equal-length vectors (nil for none).
func meanVector(vs [][]float32) []float32 {
	if len(vs) == 0 {
		return nil
	}
	out := make([]float32, len(vs[0]))
	for _, v := range vs {
		for i, x := range v {
			out[i] += x / float32(len(vs))
		}
	}
	return out
}
