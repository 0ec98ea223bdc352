package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"tether/bench"
	"tether/model"
	"tether/probe"
)

func init() {
	register("persona run", "rollouts, judge scores and response activations of a persona data set (resumable)", runPersonaRun)
	register("bench persona", "rollout and activation extraction throughput at batch 1 and batched", runBenchPersona)
}

func runPersonaRun(args []string) error {
	fs := newFlags("persona run", "--model M --out RUN [--roles DIR] [--questions FILE] [--samples N] [--max-tokens N] [--judge none|self|MODEL] [--roles-limit N --prompts-limit N --questions-limit N] [--batch N] [--seed S] [--model-name NAME] [--enable-thinking] [--backend B] [--shard i/N|auto [--shards N]]",
		"tether persona run --model HuggingFaceTB/SmolLM2-135M-Instruct --out /tmp/run --roles-limit 4 --questions-limit 10\n"+
			"  sbatch --array=0-63%16 --wrap 'tether persona run --model M --out /shared/run --shard auto'   # one shard per array task (docs/cluster.md)")
	ref := fs.String("model", "", "model directory or Hugging Face id")
	out := fs.String("out", "", "run directory (created; an existing run is resumed)")
	roles := fs.String("roles", "", "directory of role files in the reference format (default: the built-in roles)")
	questions := fs.String("questions", "", "extraction questions JSONL file (default: the built-in questions)")
	samples := fs.Int("samples", 1, "rollouts per (system prompt, question)")
	maxTokens := fs.Int("max-tokens", 512, "max new tokens per response")
	judge := fs.String("judge", probe.JudgeNone, "role-adherence judge: none, self (the same model) or a model reference")
	rolesLimit := fs.Int("roles-limit", 0, "use this many roles, spread over the categories (0: all)")
	promptsLimit := fs.Int("prompts-limit", 0, "use the first N prompts of each role and of the default (0: all)")
	questionsLimit := fs.Int("questions-limit", 0, "use the first N questions (0: all)")
	batch := fs.Int("batch", probe.DefaultRunBatch, "rollouts per generation batch")
	seed := fs.Uint64("seed", 1, "run seed (each rollout's seed derives from it and the rollout's id)")
	modelName := fs.String("model-name", "", `the name that replaces {model_name} in role and default prompts (default: the reference pipeline's short name, e.g. "Qwen" for Qwen/Qwen3-32B); recorded in run.json`)
	thinking := addThinkingFlag(fs)
	backend := addBackendFlag(fs)
	shardFlag, shards := addShardFlags(fs)
	for _, n := range []string{"samples", "max-tokens", "batch"} {
		limit(fs, n, atLeast(1))
	}
	for _, n := range []string{"roles-limit", "prompts-limit", "questions-limit"} {
		limit(fs, n, countLimitRange)
	}
	if err := parseFlags(fs, args, "model", "out"); err != nil {
		return err
	}
	shard, err := parseShardFlags(*shardFlag, *shards)
	if err != nil {
		return fmt.Errorf("persona run: %w", err)
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("persona run: %w", err)
	}
	full, err := probe.LoadDataset(*roles, *questions)
	if err != nil {
		return err
	}
	ds := full.Subset(*rolesLimit, *promptsLimit, *questionsLimit)
	source := "builtin"
	if *roles != "" || *questions != "" {
		source = fmt.Sprintf("roles=%s questions=%s", orBuiltin(*roles), orBuiltin(*questions))
	}

	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	j, closeJudge, err := probe.OpenJudge(*judge, m, *backend)
	if err != nil {
		return err
	}
	defer closeJudge()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	total := len(probe.PlanRollouts(ds, "", *samples, 0))
	where := *out
	if shard != nil {
		where = fmt.Sprintf("%s (shard %s: %s)", filepath.Join(*out, shard.DirName()), shard, shardShare(total, *shard))
	}
	bar := newBar(total, "rollouts")
	eta := etaMeter{job: "persona run", unit: "rollouts"}
	opts := probe.RunOptions{Dir: *out, Dataset: ds, DatasetSource: source, Samples: *samples, MaxTokens: *maxTokens,
		Batch: *batch, Seed: *seed, JudgeName: *judge, Judge: j, ModelName: *modelName, Shard: shard,
		Progress: func(p probe.RunProgress) {
			if !eta.started {
				bar.ChangeMax(p.Total) // a shard's share
				printJobPlan("persona run", "rollouts", p.Total, p.Done, p.MaxTokensLeft)
			}
			eta.update(p.Done, p.Total)
			bar.Set(p.Done)
		}}
	fmt.Fprintf(os.Stderr, "persona run: %s, %d roles + default, %d questions, %d samples: %d rollouts into %s (Ctrl-C stops; the same command resumes)\n",
		m.Name, len(ds.Roles), len(ds.Questions), *samples, total, where)
	sum, err := probe.ExecuteRun(ctx, m, opts)
	bar.Finish()
	if sum != nil {
		printRunSummary(sum, where)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && sum != nil {
			return fmt.Errorf("persona run: interrupted; %d of %d rollouts are saved in %s; run the same command again to continue",
				sum.Done, sum.Total, where)
		}
		return err
	}
	return nil
}

func orBuiltin(s string) string {
	if s == "" {
		return "builtin"
	}
	return s
}

// printRunSummary prints what a persona run did.
func printRunSummary(s *probe.RunSummary, dir string) {
	fmt.Printf("run %s: %d of %d rollouts done (%d new, %d already there)\n", dir, s.Done, s.Total, s.New, s.Skipped)
	fmt.Printf("new response tokens %d; generation %.1f new tokens/s, extraction %.1f tokens/s; elapsed %s\n",
		s.NewTokens, s.GenerateTPS(), s.CaptureTPS(), s.Elapsed.Round(1e8))
	if s.Judged {
		var parts []string
		for i, c := range s.Scores {
			parts = append(parts, fmt.Sprintf("%d: %d", i, c))
		}
		fmt.Printf("judge scores  %s, unparseable: %d; kept for vectors: %d (non-empty responses: default ones, and roles' with score %d)\n",
			strings.Join(parts, ", "), s.Unscored, s.Kept, probe.KeepScore)
	} else {
		fmt.Printf("no judge: %d rollouts with a non-empty response kept for vectors\n", s.Kept)
	}
}

func runBenchPersona(args []string) error {
	fs := newFlags("bench persona", "--model M [--backend B] [--max-tokens N] [--batches 1,8] [--repeats N] [--json]",
		"tether bench persona --model /tmp/smol --json")
	mf := addModelFlags(fs)
	o := bench.DefaultRolloutBenchOptions
	fs.IntVar(&o.MaxNewTokens, "max-tokens", o.MaxNewTokens, "new tokens per rollout")
	fs.IntSliceVar(&o.Batches, "batches", o.Batches, "batch sizes to measure")
	fs.IntVar(&o.Repeats, "repeats", o.Repeats, "best of this many runs (after one warm-up)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	for _, n := range []string{"max-tokens", "batches", "repeats"} {
		limit(fs, n, atLeast(1))
	}
	m, err := mf.parseAndOpen(fs, args, model.Options{})
	if err != nil {
		return err
	}
	defer m.Close()
	stop := startSpinner("measuring")
	r, err := bench.RolloutThroughput(context.Background(), m, o)
	stop()
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSONLine(os.Stdout, r)
	}
	fmt.Printf("model %s on %s (%d threads), %d layers x %d hidden, %d new tokens per rollout\n",
		m.Name, *mf.backend, r.Threads, r.Layers, r.HiddenSize, r.MaxNewTokens)
	fmt.Printf("%6s %22s %26s\n", "batch", "rollouts (new tok/s)", "extraction (tokens/s)")
	for _, row := range r.Rows {
		fmt.Printf("%6d %22.1f %26.1f\n", row.Batch, row.RolloutTPS, row.ExtractTPS)
	}
	return nil
}
