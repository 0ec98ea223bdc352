package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"tether/axis"
	"tether/bench"
	"tether/model"
)

func init() {
	register("bench commitment", "twenty questions with regenerations: does the model commit to one secret object or character? (resumable)", runBenchCommitment)
}

func runBenchCommitment(args []string) error {
	fs := newFlags("bench commitment", "--model M --out DIR [--subject object|character] [--questions FILE] [--questions-limit N] [--openings N] [--branch-at 3,6,9] [--seeds K] [--temperature T] [--max-tokens N] [--layer L | --axis A] [--seed S] [--enable-thinking] [--backend B]",
		"tether bench commitment --model Qwen/Qwen3-0.6B --subject character --seeds 8 --out /tmp/commit\n"+
			"  tether bench commitment --model .tether/stories260K --questions-limit 4 --branch-at 1,2 --openings 2 --seeds 3 --max-tokens 8 --out /tmp/commit-demo")
	mf := addModelFlags(fs)
	out := fs.String("out", "", "run directory (created; an existing run with the same settings is resumed)")
	subject := fs.String("subject", bench.SubjectObject, "what the model thinks of: object or character")
	questions := fs.String("questions", "", "questions file: one yes/no question per line, '#' comments (default: the built-in list of the subject)")
	questionsLimit := fs.Int("questions-limit", 0, "only the first N questions (0: all)")
	openings := fs.Int("openings", 3, "different built-in game openings (the spread across starting prompts needs at least 2)")
	branchAt := fs.IntSlice("branch-at", nil, "branch after these many questions (default: a quarter, half and three quarters of the game)")
	seeds := fs.Int("seeds", 8, "branches (regenerations) per branch point")
	temperature := fs.Float64("temperature", 1, "sampling temperature (0: greedy, every branch identical)")
	topP := fs.Float64("top-p", 1, "nucleus sampling top-p")
	maxTokens := fs.Int("max-tokens", 24, "max new tokens per reply")
	layer := fs.Int("layer", -1, "layer whose residual stream is measured (default: --axis's default layer, else the middle layer)")
	axisPath := fs.String("axis", "", "axis file, only to choose the default --layer (axis.DefaultLayer)")
	seed := fs.Uint64("seed", 1, "run seed; every reply's seed derives from it and the reply's place in the game")
	thinking := addThinkingFlag(fs)
	limit(fs, "seeds", atLeast(2))
	limit(fs, "openings", atLeast(1))
	limit(fs, "questions-limit", countLimitRange)
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "temperature", temperatureRange)
	limit(fs, "top-p", topPRange)
	limit(fs, "layer", layerRange)
	limit(fs, "branch-at", atLeast(0))
	if err := parseFlags(fs, args, "model", "out"); err != nil {
		return err
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("bench commitment: %w", err)
	}
	set, err := commitmentSettings(*subject, *questions, *questionsLimit, *openings, *branchAt)
	if err != nil {
		return err
	}
	set.Branches, set.Temperature, set.TopP, set.MaxTokens, set.Seed, set.EnableThinking = *seeds, *temperature, *topP, *maxTokens, *seed, *thinking
	if err := bench.CheckCommitmentSettings(set); err != nil {
		return usageErrorf("%v", err)
	}
	m, err := openModel(*mf.ref, model.Options{Backend: *mf.backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	set.Layer, set.LayerReason, err = commitmentLayer(*layer, *axisPath, m.Config.NumLayers)
	if err != nil {
		return err
	}
	cfgSum, err := axis.ConfigSHA256(m.Dir)
	if err != nil {
		return fmt.Errorf("bench commitment: %w", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	jp := newJobProgress("bench commitment", "openings", "commitment openings")
	ans := &bench.ModelAnswerer{M: m, Layer: set.Layer, MaxTokens: set.MaxTokens, Temperature: set.Temperature, TopP: set.TopP}
	rep, err := bench.RunCommitment(ctx, ans, bench.CommitmentOptions{
		Out:      *out,
		Model:    bench.CommitmentModel{Name: m.Name, Dir: m.Dir, ConfigSHA256: cfgSum, Backend: *mf.backend},
		Settings: set,
		Progress: func(done, total int) {
			if jp.bar == nil {
				printJobPlan("bench commitment", "openings", total, done, (total-done)*bench.CommitmentMaxNewTokens(set))
			}
			jp.update(done, total)
		},
	})
	if err := jp.finish(err, *out); err != nil {
		return err
	}
	fmt.Printf("commitment benchmark of %s: %s, %d questions, %d openings, branch points %v, %d branches each, layer %d (%s)\n",
		m.Name, set.Subject, len(set.Questions), len(set.Openings), set.BranchAt, set.Branches, set.Layer, set.LayerReason)
	for _, f := range rep.Findings {
		fmt.Println("- " + f)
	}
	fmt.Printf("report: %s (report.md, %s beside it)\n", filepath.Join(*out, bench.ReportJSON), bench.CommitmentPlot)
	return nil
}

// commitmentSettings reads the questions and openings and the branch points.
func commitmentSettings(subject, questionsFile string, questionsLimit, openings int, branchAt []int) (bench.CommitmentSettings, error) {
	set := bench.CommitmentSettings{Subject: subject}
	if subject != bench.SubjectObject && subject != bench.SubjectCharacter {
		return set, usageErrorf("bench commitment: --subject %q: expected %s or %s", subject, bench.SubjectObject, bench.SubjectCharacter)
	}
	var err error
	if questionsFile != "" {
		set.Questions, err = bench.LoadCommitmentQuestions(questionsFile)
	} else {
		set.Questions, err = bench.BuiltinCommitmentQuestions(subject)
	}
	if err != nil {
		return set, err
	}
	if questionsLimit > 0 && questionsLimit < len(set.Questions) {
		set.Questions = set.Questions[:questionsLimit]
	}
	all, err := bench.BuiltinCommitmentOpenings(subject)
	if err != nil {
		return set, err
	}
	if openings > len(all) {
		return set, usageErrorf("bench commitment: --openings %d is out of range: expected 1 <= x <= %d (the built-in openings)", openings, len(all))
	}
	set.Openings = all[:openings]
	set.BranchAt = branchAt
	if len(branchAt) == 0 {
		set.BranchAt = bench.DefaultBranchAt(len(set.Questions))
	}
	return set, nil
}

// commitmentLayer is --layer, or the axis's default layer, or the middle layer, with the reason.
func commitmentLayer(layer int, axisPath string, layers int) (int, string, error) {
	if layer >= 0 {
		if layer >= layers {
			return 0, "", usageErrorf("bench commitment: --layer %d is out of range: the model has %d layers (0..%d)", layer, layers, layers-1)
		}
		return layer, "--layer", nil
	}
	if axisPath == "" {
		return layers / 2, "the middle layer (no --axis)", nil
	}
	ax, err := axis.Read(axisPath)
	if err != nil {
		return 0, "", fmt.Errorf("bench commitment: --axis: %w", err)
	}
	l, why := axis.DefaultLayer(ax)
	if l < 0 || l >= layers {
		return 0, "", fmt.Errorf("bench commitment: --axis %s: its default layer %d (%s) is not a layer of the model (0..%d)", axisPath, l, why, layers-1)
	}
	return l, why, nil
}

// demoCommitment is the demo's commitment step (bench.DemoCommitment) with its progress and
// findings.
func demoCommitment(ctx context.Context, m *model.Model, backend, axisPath, out string) error {
	fmt.Println("10. commitment (twenty questions): 3 openings, branches after question 1, 3 branches, 3 questions")
	fmt.Println("   The story model shows the mechanics, not the science: it cannot play the game, so its answers are mostly unparseable.")
	bar := newBar(3, "   openings")
	rep, err := bench.DemoCommitment(ctx, m, backend, axisPath, out, func(done, total int) {
		bar.ChangeMax(total)
		bar.Set(done)
	})
	bar.Finish()
	if err != nil {
		return err
	}
	for _, f := range rep.Findings {
		fmt.Printf("   - %s\n", f)
	}
	fmt.Printf("   report: %s (report.md and %s beside it)\n", filepath.Join(out, bench.ReportJSON), bench.CommitmentPlot)
	return nil
}
