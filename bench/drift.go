package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"tether/axis"
	"tether/consistency"
	"tether/model"
	"tether/runstore"
	"tether/steer"
)

// Drift benchmark defaults (the paper's sampling settings).
const (
	DefaultDriftSeeds       = 5
	DefaultDriftTemperature = 0.7
	DefaultDriftTopP        = 0.9
	DefaultDriftMaxTokens   = 128
)

// DriftOptions configure RunDrift.
type DriftOptions struct {
	// Out is the run directory: turns.jsonl, run.json and the report files.
	// An existing run with the same settings is resumed.
	Out string
	// Axis and AxisPath: the axis file (its path is recorded, its sha256
	// checked on resume).
	Axis     *axis.Axis
	AxisPath string
	// Scenarios are the conversations to replay.
	Scenarios []Scenario
	// Seeds are the sampling seeds (default 1..DefaultDriftSeeds); each
	// scenario runs once per seed in each arm.
	Seeds []uint64
	// Turns bounds the user turns per conversation (0: every scripted turn;
	// with a simulated user, required).
	Turns int
	// MaxTokens bounds each assistant turn (default DefaultDriftMaxTokens).
	MaxTokens int
	// Temperature and TopP of generation (defaults 0.7 and 0.9; set
	// Greedy for temperature 0).
	Temperature, TopP float64
	Greedy            bool
	// Steering is the capped arm: a cap on the axis (layers and a percentile
	// of the axis file or taus) and nothing else, resolved by steer.Resolve
	// against Axis. Its measure layer (steer.DefaultMeasureLayer when not
	// given) is the layer whose axis projection is measured in both arms.
	Steering steer.Spec
	// SimulatedUser, when set, writes every user turn after the first from
	// the scenario's persona; SimulatedUserName is recorded.
	SimulatedUser     *model.Model
	SimulatedUserName string
	// Judge, when set, judges the consistency metrics (package consistency:
	// prompt-to-line, line-to-line, Q&A) of every conversation against
	// DriftPersona; JudgeName is recorded. JudgePrompts are its prompt
	// templates and diagnostic questions (default consistency.DefaultPrompts),
	// JudgePromptsDir where they came from ("" for the built-in ones).
	Judge           consistency.Judge
	JudgeName       string
	JudgePrompts    *consistency.Prompts
	JudgePromptsDir string
	// QATurns are the turns after whose assistant line every diagnostic
	// question is asked in a side branch (with a judge; default: the first,
	// middle and last turn of each conversation; turns a conversation does
	// not reach are skipped).
	QATurns []int
	// Capability runs the capped-vs-uncapped capability comparison at the end.
	Capability bool
	// Backend is recorded in the settings.
	Backend string
	// Perturb, when set, adds interventions to every arm at a turn (tests and
	// experiments: e.g. planted drift along -u growing with the turn);
	// PerturbName describes it in the manifest so a resume with a different
	// perturbation is refused.
	Perturb     func(turn int) []steer.Intervention
	PerturbName string
	// Plan, when set, is called once before the first group with the work
	// the run holds.
	Plan func(p DriftPlan)
	// Progress, when set, is called after each finished (scenario, arm) group
	// with the conversations done and the total.
	Progress func(done, total int)
	// Now stamps the report (default time.Now).
	Now func() time.Time
	// Shard, when set, runs only the shard's share of the conversations (the units
	// (scenario, arm, seed) whose index in run order is Shard.Index modulo Shard.Count) in the
	// sub-directory Shard.DirName of Out, and seals the shard when it is complete instead of
	// writing a report. RunDrift without Shard on an Out holding shards writes the report of
	// them all (see mergeDriftShards).
	Shard *runstore.Shard
}

// DriftPlan is the work of a drift run, as it starts or resumes.
type DriftPlan struct {
	// Conversations in the whole run; Done of them were stored before.
	Conversations, Done int
	// MaxNewTokens bounds the assistant tokens still to generate: MaxTokens
	// for every assistant turn and every diagnostic answer (with a judge) of
	// the conversations left (a simulated user's and a judge's tokens are not
	// counted).
	MaxNewTokens int
}

// driftRunner holds a run in progress.
type driftRunner struct {
	m       *model.Model
	opts    DriftOptions
	scripts []driftScript
	// setup is the capped arm resolved; layer and unit are its measure
	// layer and the unit axis there.
	setup *steer.Setup
	layer int
	unit  []float32
	// seeds are the seeds of each group (scenario\x00arm) this process runs: all of them, or
	// a shard's share; units are the keys of those conversations in run order, of total.
	seeds map[string][]uint64
	units []string
	total int
}

// RunDrift runs (or resumes) the drift benchmark of m: every scenario under
// both arms and every seed, appending each finished group of conversations
// to OUT/turns.jsonl, then builds the report (summary, variance, capability,
// cap check, findings) and writes it with WriteReport. Cancelling ctx loses
// at most the group in flight (one scenario and arm, all seeds, generated as
// one batch); a later call resumes and produces the same report. A shard
// (DriftOptions.Shard) returns no report: the report is written by RunDrift
// without Shard once every shard is done.
func RunDrift(ctx context.Context, m *model.Model, opts DriftOptions) (*DriftReport, error) {
	r, err := newDriftRunner(ctx, m, opts)
	if err != nil {
		return nil, err
	}
	man, err := r.manifest()
	if err != nil {
		return nil, err
	}
	if r.opts.Shard == nil && runstore.IsSharded(r.opts.Out) {
		if _, err := os.Stat(filepath.Join(r.opts.Out, DriftManifestFile)); err != nil {
			return r.mergeDriftShards(ctx, man)
		}
	}
	dir, settingsHash, err := r.shardDir(man)
	if err != nil {
		return nil, err
	}
	store, err := openDriftStore(dir, man, func(scenario, arm string) int { return len(r.seeds[scenario+"\x00"+arm]) })
	if err != nil {
		return nil, err
	}
	defer store.close()
	if r.opts.Shard != nil {
		if err := runstore.WritePlan(dir, *r.opts.Shard, r.total, r.units); err != nil {
			return nil, fmt.Errorf("bench: drift: %w", err)
		}
	}
	arms := r.arms()
	total := len(r.units)
	done := store.doneConversations()
	if r.opts.Plan != nil {
		p := DriftPlan{Conversations: total, Done: done}
		for _, s := range r.scripts {
			for _, a := range arms {
				if n := len(r.seeds[s.info.ID+"\x00"+a.arm]); !store.hasGroup(s.info.ID, a.arm, n) {
					p.MaxNewTokens += n * r.answersOf(s) * r.opts.MaxTokens
				}
			}
		}
		r.opts.Plan(p)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(done, total)
	}
	for _, s := range r.scripts {
		for _, a := range arms {
			seeds := r.seeds[s.info.ID+"\x00"+a.arm]
			if store.hasGroup(s.info.ID, a.arm, len(seeds)) {
				continue
			}
			convs, err := r.runGroup(ctx, s, a, seeds)
			if err != nil {
				return nil, err
			}
			if err := store.appendGroup(convs); err != nil {
				return nil, err
			}
			done += len(convs)
			if r.opts.Progress != nil {
				r.opts.Progress(done, total)
			}
		}
	}
	if r.opts.Shard != nil {
		if err := runstore.SealShard(dir, *r.opts.Shard, settingsHash, r.total, r.units); err != nil {
			return nil, fmt.Errorf("bench: drift: %w", err)
		}
		return nil, nil
	}
	rep, err := r.report(ctx, store.records())
	if err != nil {
		return nil, err
	}
	if err := writeDriftReport(r.opts.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// newDriftRunner validates the options, resolves the capped arm and fills
// in defaults.
func newDriftRunner(ctx context.Context, m *model.Model, o DriftOptions) (*driftRunner, error) {
	if m == nil || m.Engine == nil || m.Tokenizer == nil {
		return nil, fmt.Errorf("bench: drift: the model must be opened with weights and a tokenizer")
	}
	if o.Out == "" {
		return nil, fmt.Errorf("bench: drift: no output directory")
	}
	if o.Axis == nil {
		return nil, fmt.Errorf("bench: drift: no axis")
	}
	sp := o.Steering
	if len(sp.Cap) != 1 || sp.Experiment != nil || len(sp.Add) > 0 || len(sp.Ablate) > 0 || sp.Projections != nil || sp.NewestOnly {
		return nil, fmt.Errorf("bench: drift: the capped arm is one cap on the axis and nothing else (no experiment, add, ablation, projection axis or newest-only)")
	}
	setup, err := steer.Resolve(ctx, sp, o.Axis, steer.ForModel(m))
	if err != nil {
		return nil, fmt.Errorf("bench: drift: axis %s: %w", o.AxisPath, err)
	}
	if len(o.Seeds) == 0 {
		for s := uint64(1); s <= DefaultDriftSeeds; s++ {
			o.Seeds = append(o.Seeds, s)
		}
	}
	seen := map[uint64]bool{}
	for _, s := range o.Seeds {
		if seen[s] {
			return nil, fmt.Errorf("bench: drift: seed %d given twice", s)
		}
		seen[s] = true
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultDriftMaxTokens
	}
	if o.MaxTokens < 0 || o.Turns < 0 {
		return nil, fmt.Errorf("bench: drift: max tokens %d and turns %d must not be negative", o.MaxTokens, o.Turns)
	}
	if o.Greedy {
		o.Temperature, o.TopP = 0, 0
	} else {
		if o.Temperature == 0 {
			o.Temperature = DefaultDriftTemperature
		}
		if o.TopP == 0 {
			o.TopP = DefaultDriftTopP
		}
	}
	if o.SimulatedUser != nil && o.Turns == 0 {
		return nil, fmt.Errorf("bench: drift: a simulated user needs a turn count")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Judge != nil && o.JudgePrompts == nil {
		if o.JudgePrompts, err = consistency.DefaultPrompts(); err != nil {
			return nil, fmt.Errorf("bench: drift: %w", err)
		}
	}
	for _, t := range o.QATurns {
		if t < 0 {
			return nil, fmt.Errorf("bench: drift: Q&A turn %d: expected a 0-based turn index", t)
		}
	}
	r := &driftRunner{m: m, opts: o, setup: setup, layer: setup.MeasureLayer}
	if r.unit, err = o.Axis.Unit(r.layer); err != nil {
		return nil, fmt.Errorf("bench: drift: axis %s: %w", o.AxisPath, err)
	}
	if r.scripts, err = driftScripts(o.Scenarios, o.Turns, o.SimulatedUser != nil); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: drift: %w", err)
	}
	r.planUnits()
	if len(r.units) == 0 {
		return nil, fmt.Errorf("bench: drift: shard %s has no conversations: the run has only %d (use fewer shards)", o.Shard, r.total)
	}
	return r, nil
}

// arms lists the arms in run order.
func (r *driftRunner) arms() []armSetup {
	taus := map[int]float32{}
	for _, c := range r.setup.Caps {
		taus[c.Layer] = c.Tau
	}
	return []armSetup{{arm: ArmUncapped}, {arm: ArmCapped, caps: r.setup.Plan.Interventions, capTaus: taus}}
}

// turnsOf is the number of assistant turns of a scenario's conversations.
func (r *driftRunner) turnsOf(s driftScript) int {
	if r.opts.SimulatedUser != nil {
		return r.opts.Turns
	}
	return len(s.users)
}

// answersOf is the number of answers the model under test writes in one of a
// scenario's conversations: its assistant turns and, with a judge, the
// diagnostic answers of the side branches.
func (r *driftRunner) answersOf(s driftScript) int {
	n := r.turnsOf(s)
	if r.opts.Judge != nil {
		n += len(r.qaTurns(r.turnsOf(s))) * len(r.opts.JudgePrompts.Questions)
	}
	return n
}

// settings are the run's knobs as the report records them.
func (r *driftRunner) settings() DriftSettings {
	o := r.opts
	s := DriftSettings{
		Seeds: o.Seeds, Turns: o.Turns, MaxTokens: o.MaxTokens,
		Temperature: o.Temperature, TopP: o.TopP,
		CapLayers: r.setup.CapLayers(), CapPercentile: r.setup.CapPercentile, CapTaus: r.setup.CapTaus(),
		ProjectionLayer: r.layer,
		SimulatedUser:   o.SimulatedUserName, Judge: o.JudgeName,
		Backend: o.Backend,
	}
	if o.Judge != nil {
		s.JudgePrompts = orBuiltIn(o.JudgePromptsDir)
		s.JudgePromptsSHA256 = o.JudgePrompts.SHA256()
		s.ConsistencyPersona = DriftPersona
		s.QATurns = o.QATurns
		s.DiagnosticQuestions = o.JudgePrompts.Questions
	}
	return s
}

// orBuiltIn names a prompt directory, "built-in" for none.
func orBuiltIn(dir string) string {
	if dir == "" {
		return "built-in"
	}
	return dir
}
