package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"tether/axis"
	"tether/bench"
	"tether/consistency"
	"tether/model"
	"tether/personas"
)

func init() {
	register("bench variance", "run-to-run vs between-persona variance of persona-prompted answers (activation, text, questionnaire), by anchor form (resumable)", runBenchVariance)
}

func runBenchVariance(args []string) error {
	fs := newFlags("bench variance", "--model M --out DIR [--personas FILE] [--personas-limit N] [--items-limit N] [--forms sparse,journal,document] [--seeds K] [--temperature T] [--top-p P] [--max-tokens N] [--layer L] [--axis A] [--bootstrap N] [--judge self|MODEL] [--backend B] [--shard i/N|auto [--shards N]]",
		"tether bench variance --model Qwen/Qwen3-0.6B --out /tmp/variance --seeds 5\n"+
			"  tether bench variance --model .tether/stories260K --out /tmp/v --personas-limit 4 --items-limit 3 --seeds 3 --max-tokens 8   # quick run\n"+
			"  tether bench variance ... --out /shared/variance --shard auto   # one shard per array task; the same command without --shard then writes the report (docs/cluster.md)")
	ref := fs.String("model", "", "model directory or Hugging Face id")
	out := fs.String("out", "", "run directory (created; an existing run with the same settings is resumed); without --shard on a directory of shards: check them all and write their report")
	setPath := fs.String("personas", "", "persona set file (JSON, format tether-personas/1; see personas/builtin/personas.json) (default: the 22 built-in personas)")
	personasLimit := fs.Int("personas-limit", 0, "the first N personas (0: all)")
	itemsLimit := fs.Int("items-limit", 0, "the first N questionnaire items (0: all)")
	forms := fs.StringSlice("forms", personas.Forms, "anchor forms to give the persona in (sparse, journal, document)")
	seeds := fs.Int("seeds", bench.DefaultVarianceSeeds, "answers per persona, anchor form and item (seeds 1..K)")
	temperature := fs.Float64("temperature", bench.DefaultVarianceTemperature, "sampling temperature (0: greedy; run-to-run variance is then exactly 0)")
	topP := fs.Float64("top-p", bench.DefaultVarianceTopP, "nucleus sampling top-p")
	maxTokens := fs.Int("max-tokens", bench.DefaultVarianceMaxTokens, "max new tokens per answer")
	layer := fs.Int("layer", -1, "layer of the activation and text representations (default: the axis layer with --axis, else the middle layer)")
	axisPath := fs.String("axis", "", "axis file: also report the activation's projection on the axis at --layer")
	judge := fs.String("judge", "", "a local model (or self) judges the answers' consistency: prompt-to-line, line-to-line and Q&A across seeds (consistency/prompts)")
	bootstrap := fs.Int("bootstrap", bench.DefaultVarianceBootstrap, "bootstrap resamples per interval")
	backend := addBackendFlag(fs)
	thinking := addThinkingFlag(fs)
	shardFlag, shards := addShardFlags(fs)
	limit(fs, "seeds", atLeast(1))
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "temperature", temperatureRange)
	limit(fs, "top-p", topPRange)
	limit(fs, "layer", layerRange)
	limit(fs, "personas-limit", countLimitRange)
	limit(fs, "items-limit", countLimitRange)
	limit(fs, "bootstrap", atLeast(1))
	if err := parseFlags(fs, args, "model", "out"); err != nil {
		return err
	}
	if err := checkOutputDir("out", *out); err != nil {
		return fmt.Errorf("bench variance: %w", err)
	}
	shard, err := parseShardFlags(*shardFlag, *shards)
	if err != nil {
		return err
	}
	if shard != nil && *judge != "" {
		return usageErrorf("bench variance: --judge cannot be used with --shard: run the judged benchmark unsharded")
	}
	o, err := varianceInputs(*setPath, *personasLimit, *itemsLimit, *forms)
	if err != nil {
		return err
	}
	if *axisPath != "" {
		if o.Axis, err = axis.Read(*axisPath); err != nil {
			return fmt.Errorf("bench variance: --axis: %w", err)
		}
		o.AxisPath = *axisPath
	}
	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	o.Out, o.Shard, o.Backend, o.Temperature, o.TopP, o.MaxTokens, o.Layer, o.Bootstrap = *out, shard, *backend, *temperature, *topP, *maxTokens, *layer, *bootstrap
	for s := 1; s <= *seeds; s++ {
		o.Seeds = append(o.Seeds, uint64(s))
	}
	if *judge != "" {
		j, closeJudge, err := consistency.OpenJudge(*judge, m, *backend)
		if err != nil {
			return fmt.Errorf("bench variance: --judge: %w", err)
		}
		defer closeJudge()
		o.Judge, o.JudgeName = j, *judge
	}
	o.Warn = func(msg string) { fmt.Fprintln(warnOut, "warning: bench variance: "+msg) }
	jp := newJobProgress("bench variance", "units", "variance units (persona x form x item, all seeds)")
	o.Progress = jp.update
	rep, err := bench.RunPersonaVariance(ctx, m, o)
	if err := jp.finish(err, *out); err != nil {
		return err
	}
	if rep == nil { // a shard: sealed, no report
		fmt.Printf("shard %s of the variance benchmark is done (%d units) in %s; when every shard is, run the same command without --shard to write the report\n",
			shard, jp.done, filepath.Join(*out, shard.DirName()))
		return nil
	}
	fmt.Printf("persona variance of %s: %d personas x %d forms x %d items x %d seeds = %d answers (%d persona anchors skipped: too long for the context)\n",
		m.Name, len(rep.Settings.Personas), len(rep.Settings.Forms), len(rep.Settings.Items), len(rep.Settings.Seeds), rep.Answers, rep.SkippedCount)
	for _, f := range rep.Findings {
		fmt.Println("- " + f)
	}
	fmt.Printf("report: %s (report.md, %s beside it)\n", filepath.Join(*out, bench.ReportJSON), bench.PlotVarianceICC)
	return nil
}

// varianceInputs loads the persona set (built-in without a file) and the questionnaire and cuts
// them to the limits.
func varianceInputs(path string, personasLimit, itemsLimit int, forms []string) (bench.PersonaVarianceOptions, error) {
	var o bench.PersonaVarianceOptions
	var set *personas.Set
	var err error
	if path == "" {
		set, err = personas.Builtin()
		o.PersonasSource = personas.BuiltinFile
	} else {
		set, err = personas.Load(path)
		o.PersonasSource = path
	}
	if err != nil {
		return o, err
	}
	for _, f := range forms {
		if !slices.Contains(personas.Forms, f) {
			return o, usageErrorf("bench variance: --forms: unknown form %q: expected sparse, journal or document", f)
		}
	}
	o.Forms = forms
	o.Personas = set.Personas
	if personasLimit > 0 && personasLimit < len(o.Personas) {
		o.Personas = o.Personas[:personasLimit]
	}
	if o.Questionnaire, err = personas.BuiltinQuestionnaire(); err != nil {
		return o, err
	}
	if itemsLimit > 0 && itemsLimit < len(o.Questionnaire.Items) {
		o.Questionnaire.Items = o.Questionnaire.Items[:itemsLimit]
	}
	return o, nil
}
