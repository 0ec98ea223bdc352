package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"tether/bench"
	"tether/consistency"
	"tether/model"
)

func init() {
	register("bench drift", "persona drift over multi-turn conversations, capped vs uncapped, seeds, variance, capability (resumable)", runBenchDrift)
}

// driftUnusedSteerFlags are the steering flags of `tether chat` that the
// drift benchmark does not take (its arms are uncapped and capped only).
var driftUnusedSteerFlags = []string{"cap-experiment", "capping-config", "steer", "steer-layers", "steer-coef", "steer-units", "steer-norm-units", "ablate", "ablate-value", "newest-only", "telemetry", "measure-layer"}

func runBenchDrift(args []string) error {
	fs := newFlags("bench drift", "--model M --axis A --cap-layers L (--cap-percentile P | --cap-tau T) --out DIR [--scenarios DIR] [--seeds K] [--turns N] [--max-tokens N] [--projection-layer L] [--simulated-user M|self] [--judge M|self [--judge-prompts DIR] [--qa-turns t,t]] [--domains a,b] [--scenarios-limit N] [--enable-thinking] [--backend B] [--shard i/N|auto [--shards N]]",
		"tether bench drift --model Qwen/Qwen3-0.6B --axis axis.safetensors --cap-layers 18:22 --cap-percentile 25 --out /tmp/drift\n"+
			"  tether bench drift ... --out /shared/drift --shard auto   # one shard per array task; the same command without --shard then writes the report (docs/cluster.md)")
	ref := fs.String("model", "", "model directory or Hugging Face id")
	out := fs.String("out", "", "run directory (created; an existing run with the same settings is resumed); without --shard on a directory of shards: check them all and write their report")
	scenarios := fs.String("scenarios", "", "directory of conversation files (JSON: messages, persona, topic, domain; see docs/conversations.md) (default: the built-in scenarios)")
	seeds := fs.Int("seeds", bench.DefaultDriftSeeds, "seeds per scenario and arm (seeds 1..K, the same in both arms)")
	turns := fs.Int("turns", 0, "user turns per conversation (0: every scripted turn; needed with --simulated-user)")
	maxTokens := fs.Int("max-tokens", bench.DefaultDriftMaxTokens, "max new tokens per assistant turn")
	temperature := fs.Float64("temperature", bench.DefaultDriftTemperature, "sampling temperature (0: greedy)")
	topP := fs.Float64("top-p", bench.DefaultDriftTopP, "nucleus sampling top-p")
	projLayer := fs.Int("projection-layer", -1, "layer whose axis projection is measured (default: the axis file's axis_layer, else the reference's layer for the model, else the middle layer)")
	simUser := fs.String("simulated-user", "", "a local model (or self) writes the user turns after the first, from the scenario's persona")
	judge := fs.String("judge", "", "a local model (or self) judges the consistency metrics: prompt-to-line, line-to-line and Q&A (docs/method.md)")
	judgePrompts := fs.String("judge-prompts", "", "directory of judge prompt files overriding the built-in ones (prompt_to_line.txt, line_to_line.txt, qa_prompt.txt, qa_answers.txt, questions.txt; see docs/method.md)")
	qaTurns := fs.IntSlice("qa-turns", nil, "0-based turns after which the diagnostic questions are asked, each in a side branch (default: the first, middle and last turn)")
	domains := fs.String("domains", "", "only these domains (comma-separated)")
	scenariosLimit := fs.Int("scenarios-limit", 0, "the first N scenarios of each domain (0: all)")
	noCap := fs.Bool("no-capability", false, "skip the capability comparison (perplexity, exact match)")
	backend := addBackendFlag(fs)
	thinking := addThinkingFlag(fs)
	shardFlag, shards := addShardFlags(fs)
	var stf steerFlags
	addSteerFlags(fs, &stf)
	for _, n := range driftUnusedSteerFlags {
		_ = fs.MarkHidden(n)
	}
	limit(fs, "seeds", atLeast(1))
	limit(fs, "turns", atLeast(0).with("0 = every scripted turn"))
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "temperature", temperatureRange)
	limit(fs, "top-p", topPRange)
	limit(fs, "projection-layer", layerRange)
	limit(fs, "scenarios-limit", countLimitRange)
	limit(fs, "qa-turns", atLeast(0).with("0-based turn indices"))
	if err := parseFlags(fs, args, "model", "axis", "cap-layers", "out"); err != nil {
		return err
	}
	for _, n := range driftUnusedSteerFlags {
		if fs.Changed(n) {
			return usageErrorf("bench drift: --%s is not a drift benchmark option (its arms are uncapped and capped)", n)
		}
	}
	if *judge == "" && (fs.Changed("judge-prompts") || fs.Changed("qa-turns")) {
		return usageErrorf("bench drift: --judge-prompts and --qa-turns need --judge")
	}
	scs, err := selectScenarios(*scenarios, *domains, *scenariosLimit)
	if err != nil {
		return err
	}
	if err := checkDriftTurns(scs, *turns, *simUser != ""); err != nil {
		return err
	}
	shard, err := parseShardFlags(*shardFlag, *shards)
	if err != nil {
		return fmt.Errorf("bench drift: %w", err)
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("bench drift: %w", err)
	}

	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	opts, err := driftOptionsFromFlags(fs, &stf, m, *projLayer)
	if err != nil {
		return err
	}
	opts.Out, opts.Scenarios, opts.Backend, opts.Shard = *out, scs, *backend, shard
	for s := 1; s <= *seeds; s++ {
		opts.Seeds = append(opts.Seeds, uint64(s))
	}
	opts.Turns, opts.MaxTokens, opts.Capability = *turns, *maxTokens, !*noCap
	opts.Temperature, opts.TopP, opts.Greedy = *temperature, *topP, *temperature == 0
	if *simUser != "" {
		um, closeUser, err := openHelperModel(*simUser, m, *backend)
		if err != nil {
			return fmt.Errorf("bench drift: --simulated-user: %w", err)
		}
		defer closeUser()
		opts.SimulatedUser, opts.SimulatedUserName = um, *simUser
	}
	if *judge != "" {
		j, closeJudge, err := consistency.OpenJudge(*judge, m, *backend)
		if err != nil {
			return fmt.Errorf("bench drift: --judge: %w", err)
		}
		defer closeJudge()
		opts.Judge, opts.JudgeName = j, *judge
		if opts.JudgePrompts, err = consistency.LoadPrompts(*judgePrompts); err != nil {
			return fmt.Errorf("bench drift: --judge-prompts: %w", err)
		}
		opts.JudgePromptsDir, opts.QATurns = *judgePrompts, *qaTurns
	}

	// Conversations per hour: the conversations generated by this call over
	// the time between the first and the last stored group (loading, the
	// capability comparison and the report are not counted).
	jp := newJobProgress("bench drift", "conversations", "drift conversations")
	opts.Plan = func(p bench.DriftPlan) {
		printJobPlan("bench drift", "conversations", p.Conversations, p.Done, p.MaxNewTokens)
	}
	opts.Progress = jp.update
	rep, err := bench.RunDrift(ctx, m, opts)
	if err := jp.finish(err, *out); err != nil {
		return flagError(err, driftFlagNames(&stf))
	}
	if rep == nil { // a shard: sealed, no report
		fmt.Printf("shard %s of the drift benchmark is done (%d conversations) in %s; when every shard is, run the same command without --shard to write the report\n",
			shard, jp.done, filepath.Join(*out, shard.DirName()))
		return nil
	}
	elapsed := jp.last.Sub(jp.first)
	fmt.Printf("drift benchmark of %s: %d scenario(s) x 2 arms x %d seeds, projection at layer %d, caps at layers %v (tau %v)\n",
		m.Name, len(rep.Scenarios), len(rep.Settings.Seeds), rep.Settings.ProjectionLayer, rep.Settings.CapLayers, rep.Settings.CapTaus)
	if ran := jp.done - jp.firstDone; ran > 0 {
		fmt.Printf("ran %d conversations in %v: %.0f conversations/hour\n", ran, elapsed.Round(time.Second), float64(ran)/elapsed.Hours())
	}
	for _, f := range rep.Findings {
		fmt.Println("- " + f)
	}
	fmt.Printf("report: %s (report.md, SVG plots beside it)\n", filepath.Join(*out, "report.json"))
	return nil
}

// selectScenarios loads the scenarios (built-in without a directory), keeps
// the given domains and the first limit scenarios of each domain.
func selectScenarios(dir, domains string, limit int) ([]bench.Scenario, error) {
	var scs []bench.Scenario
	var err error
	if dir == "" {
		scs, err = bench.BuiltinScenarios()
	} else {
		scs, err = bench.LoadScenariosDir(dir)
	}
	if err != nil {
		return nil, err
	}
	var want []string
	if domains != "" {
		for _, d := range strings.Split(domains, ",") {
			want = append(want, strings.TrimSpace(d))
		}
	}
	var out []bench.Scenario
	perDomain := map[string]int{}
	for _, s := range scs {
		if want != nil && !slices.Contains(want, s.Domain) {
			continue
		}
		if limit > 0 && perDomain[s.Domain] >= limit {
			continue
		}
		perDomain[s.Domain]++
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench drift: no scenario left with --domains %q (domains present: %v)", domains, scenarioDomains(scs))
	}
	return out, nil
}

// checkDriftTurns refuses --turns beyond a scenario's scripted user turns
// (without a simulated user nothing could write them, and the report would
// record more turns than ran), and --simulated-user without --turns.
func checkDriftTurns(scs []bench.Scenario, turns int, simulated bool) error {
	if simulated && turns == 0 {
		return usageErrorf("bench drift: --simulated-user needs --turns N (the number of user turns to write)")
	}
	if simulated || turns == 0 {
		return nil
	}
	shortest := scs[0]
	for _, s := range scs[1:] {
		if len(s.UserTurns) < len(shortest.UserTurns) {
			shortest = s
		}
	}
	if n := len(shortest.UserTurns); turns > n {
		return usageErrorf("bench drift: --turns %d is out of range: expected an integer with 0 <= x <= %d (0 = every scripted turn; scenario %s scripts %d user turns; --simulated-user writes more)", turns, n, shortest.ID, n)
	}
	return nil
}

func scenarioDomains(scs []bench.Scenario) []string {
	var ds []string
	for _, s := range scs {
		if !slices.Contains(ds, s.Domain) {
			ds = append(ds, s.Domain)
		}
	}
	return ds
}

// driftOptionsFromFlags turns the capping flags (those of `tether chat`) and
// --projection-layer into the drift benchmark's axis and steering Spec.
func driftOptionsFromFlags(fs *pflag.FlagSet, stf *steerFlags, m *model.Model, projLayer int) (bench.DriftOptions, error) {
	var o bench.DriftOptions
	spec, err := stf.spec(fs)
	if err != nil {
		return o, fmt.Errorf("bench drift: %w", err)
	}
	if projLayer >= 0 {
		spec.MeasureLayer = &projLayer
	}
	if err := validSpec(spec, driftFlagNames(stf)); err != nil {
		return o, fmt.Errorf("bench drift: %w", err)
	}
	ax, err := stf.readAxis()
	if err != nil {
		return o, err
	}
	if err := warnAxisRendering(warnOut, stf.axisPath, ax, m); err != nil {
		return o, fmt.Errorf("bench drift: %w", err)
	}
	o.Axis, o.AxisPath, o.Steering = ax, stf.axisPath, spec
	return o, nil
}

// driftFlagNames maps the fields of the steering Spec to the drift
// benchmark's flags.
func driftFlagNames(stf *steerFlags) map[string]string {
	names := stf.flagNames()
	names["measure_layer"] = "--projection-layer"
	return names
}

// openHelperModel opens a simulated user or judge: "self" is the model under
// test; anything else is a model reference opened on backend.
func openHelperModel(ref string, self *model.Model, backend string) (*model.Model, func(), error) {
	if ref == "self" {
		return self, func() {}, nil
	}
	m, err := model.Open(ref, model.Options{Backend: backend, CopyWeights: copyWeights})
	if err != nil {
		return nil, nil, err
	}
	return m, m.Close, nil
}
