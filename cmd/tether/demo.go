package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tether/axis"
	"tether/bench"
	"tether/bundled"
	"tether/consistency"
	"tether/engine"
	"tether/model"
	"tether/probe"
	"tether/steer"
	"tether/tokenizer"
)

func init() {
	register("demo", "the whole pipeline on the bundled stories260K model: convert, generate, residual stream, persona run, axis, capped generation, drift benchmark, commitment game, persona variance, consistency metrics, model comparison", runDemo)
}

// knownStoriesStart is how greedy decoding of stories260K from BOS begins,
// according to the llama2.c project.
const knownStoriesStart = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

func runDemo(args []string) error {
	fs := newFlags("demo", "[--dir DIR] [--backend B]", "tether demo --dir .tether")
	dir := fs.String("dir", ".tether", "working directory: the converted model, the persona run, the axis and the drift, commitment, variance, consistency and comparison reports go here (a rerun resumes)")
	backend := addBackendFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := checkOutputDir("dir", *dir); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Println("tether demo: the bundled stories260K model (a real 260K-parameter Llama trained on TinyStories).")
	fmt.Println()

	// 1. Convert the bundled llama2.c checkpoint into a Hugging Face style directory.
	ckpt, tok, err := bundled.ExtractStories260K(filepath.Join(*dir, "stories260K-llama2c"))
	if err != nil {
		return err
	}
	hfDir := filepath.Join(*dir, "stories260K")
	if err := convertLlama2c(ckpt, tok, hfDir); err != nil {
		return err
	}
	fmt.Printf("1. converted the llama2.c checkpoint to %s (config.json, model.safetensors, tokenizer.json)\n", hfDir)

	m, err := model.Open(hfDir, model.Options{Backend: *backend, WeightDType: weightsDType, CopyWeights: copyWeights})
	if err != nil {
		return err
	}
	defer m.Close()
	c := m.Config
	fmt.Printf("2. loaded it on backend %q in %v: %s, %d layers, hidden %d, %d heads / %d KV heads, vocab %d, %s parameters\n",
		*backend, m.LoadTime.Round(1e6), c.Architecture, c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.VocabSize, humanCount(c.ParamCount()))

	// 3. Greedy decoding from BOS must reproduce llama2.c's known output.
	ctx := context.Background()
	bos, err := m.PlainPrompt("")
	if err != nil {
		return err
	}
	res, err := m.Engine.Generate(ctx, []engine.Request{{Prompt: bos, MaxNewTokens: 60, StopTokens: m.StopTokens()}},
		engine.GenerateOptions{Detokenizer: m.Tokenizer})
	if err != nil {
		return err
	}
	greedy := res[0].Text
	verdict := "matches llama2.c's known output"
	if !strings.HasPrefix(greedy, knownStoriesStart) {
		verdict = "DOES NOT match llama2.c's known output: " + knownStoriesStart
	}
	fmt.Printf("3. greedy from BOS (%s):\n   %s\n", verdict, oneLine(greedy))

	// 4. A batch of prompts of different lengths, sampled (temperature 0.7, top-p 0.9, seeds 1..3).
	prompts := []string{"Tom had a red ball", "The cat", "One day, a little bird wanted to fly to the moon"}
	reqs := make([]engine.Request, len(prompts))
	for i, p := range prompts {
		ids, err := m.PlainPrompt(p)
		if err != nil {
			return err
		}
		reqs[i] = engine.Request{Prompt: ids, MaxNewTokens: 48, StopTokens: m.StopTokens(),
			Sampling: engine.SamplingParams{Temperature: 0.7, TopP: 0.9, Seed: uint64(i + 1)}}
	}
	res, err = m.Engine.Generate(ctx, reqs, engine.GenerateOptions{Detokenizer: m.Tokenizer})
	if err != nil {
		return err
	}
	fmt.Println("4. one batch of three prompts, sampled at temperature 0.7, top-p 0.9:")
	for i, r := range res {
		cont, err := m.Continuation(reqs[i].Prompt, r.Tokens)
		if err != nil {
			return err
		}
		fmt.Printf("   [%d] %s\n", i+1, oneLine(prompts[i]+cont))
	}
	fmt.Printf("   (decode %.0f tokens/s for the batch of 3 on this machine)\n",
		rate(totalTokens(res), res[0].DecodeDuration))

	// 5. The residual stream that the Assistant Axis method reads: captured after every block.
	layers := make([]int, c.NumLayers)
	for i := range layers {
		layers[i] = i
	}
	fwd, err := m.Engine.Forward(ctx, [][]int{reqs[2].Prompt}, engine.ForwardOptions{CaptureLayers: layers})
	if err != nil {
		return err
	}
	fmt.Printf("5. residual stream after each block for %q (%d tokens): mean L2 norm per layer\n   ", prompts[2], len(reqs[2].Prompt))
	for _, l := range layers {
		fmt.Printf(" L%d %.2f", l, meanNorm(fwd.Captured[l][0]))
	}
	fmt.Println()
	if err := demoPersonaPipeline(ctx, m, *dir, *backend); err != nil {
		return err
	}
	fmt.Println()
	fmt.Println("A tiny story model shows the mechanics, not the science: it has no Assistant persona to drift from.")
	fmt.Println("Run the same pipeline on an instruction-tuned model (Qwen 3, Llama 3, Gemma 2/3) for real findings:")
	fmt.Println("  tether persona run --model ORG/NAME --out RUN && tether axis build --run RUN --out axis.safetensors")
	fmt.Println("  tether bench drift --model ORG/NAME --axis axis.safetensors --cap-layers A:B --cap-percentile 25 --out DRIFT")
	fmt.Println("  tether bench commitment --model ORG/NAME --axis axis.safetensors --out COMMIT")
	fmt.Println("  tether bench variance --model ORG/NAME --axis axis.safetensors --judge self --out VARIANCE")
	fmt.Println("  tether bench compare DRIFT/report.json VARIANCE/report.json OTHER-MODEL/report.json... --out COMPARE")
	if !strings.HasPrefix(greedy, knownStoriesStart) {
		return fmt.Errorf("demo: greedy output differs from llama2.c's known output")
	}
	return nil
}

// demoPersonaPipeline runs DESIGN.md's steps 1 to 7 on a small subset: role
// rollouts with activations, the axis and its calibration, capped generation
// with telemetry, and a small drift benchmark. Everything lands under dir and
// resumes if interrupted.
func demoPersonaPipeline(ctx context.Context, m *model.Model, dir, backend string) error {
	full, err := probe.BuiltinDataset()
	if err != nil {
		return err
	}
	ds := full.Subset(12, 2, 4)
	runDir := filepath.Join(dir, "persona-run")
	fmt.Printf("6. persona run: %d roles + default, %d prompts each, %d questions, temperature 0.7, top-p 0.9 -> %s\n",
		len(ds.Roles), 2, len(ds.Questions), runDir)
	total := (len(ds.Roles)*2 + min(2, len(ds.Default.Prompts))) * len(ds.Questions)
	bar := newBar(total, "   rollouts")
	sum, err := probe.ExecuteRun(ctx, m, probe.RunOptions{Dir: runDir, Dataset: ds, DatasetSource: "builtin (demo subset)",
		Samples: 1, MaxTokens: 48, Batch: 16, Seed: 1,
		Progress: func(p probe.RunProgress) { bar.Set(p.Done) }})
	bar.Finish()
	if err != nil {
		return err
	}
	fmt.Printf("   %d rollouts (%d new), %d response tokens; generation %.0f tokens/s, activation extraction %.0f tokens/s\n",
		sum.Done, sum.New, sum.NewTokens, sum.GenerateTPS(), sum.CaptureTPS())

	axisPath := filepath.Join(dir, "axis.safetensors")
	b, _, err := probe.WriteRunAxis(runDir, axisPath, probe.RunAxisOptions{MinScore: 3, Model: m, Context: ctx})
	if err != nil {
		return err
	}
	layer := b.AxisLayer()
	fmt.Printf("7. axis: %s (+ axis_report.json, persona_space.svg, variance_explained.svg, pc1_cosine.svg)\n", axisPath)
	fmt.Printf("   layer %d: |axis| %.3f, PC1 explains %.0f%% of role variance, cos(PC1, axis) %.2f; tau p25 %.3f\n",
		layer, b.AxisNorms[layer], 100*b.PCA[layer].Explained[0], b.PCA[layer].PC1Cosine, b.Tau[1][layer])

	a, err := axis.Read(axisPath)
	if err != nil {
		return err
	}
	p25 := 25.0
	setup, err := steer.Resolve(ctx, steer.Spec{Cap: []steer.CapSpec{{Layers: strconv.Itoa(layer), Percentile: &p25}}}, a, steer.ForModel(m))
	if err != nil {
		return err
	}
	prompt, err := m.ChatPrompt([]tokenizer.Message{{Role: "system", Content: "You are a dragon who hoards gold and trusts no one."},
		{Role: "user", Content: "Who are you?"}}, true)
	if err != nil {
		return err
	}
	req := engine.Request{Prompt: prompt, MaxNewTokens: 32, StopTokens: m.StopTokens(), StopStrings: m.ChatStopStrings(),
		Sampling: engine.SamplingParams{Temperature: 0.7, TopP: 0.9, Seed: 7}}
	res, err := m.Engine.Generate(ctx, []engine.Request{req}, engine.GenerateOptions{Hooks: setup.Compiled.Hooks, Detokenizer: m.Tokenizer})
	if err != nil {
		return err
	}
	st := steer.Summarize(setup.Compiled.Telemetry(res[0]), layer)
	fmt.Printf("8. capped generation (floor at tau p25 on layer %d): the cap acted on %d of %d tokens; mean projection %.3f before, %.3f after\n   %s\n",
		layer, st.CappedTokens, st.Tokens, st.MeanBefore, st.MeanAfter, oneLine(res[0].Text))

	driftDir := filepath.Join(dir, "drift")
	fmt.Println("9. drift benchmark: one scenario per domain, 2 seeds, 3 turns, capped vs uncapped")
	dbar := newBar(8, "   conversations")
	rep, err := bench.DemoDrift(ctx, m, axisPath, driftDir, func(done, total int) {
		dbar.ChangeMax(total)
		dbar.Set(done)
	})
	dbar.Finish()
	if err != nil {
		return err
	}
	for _, f := range rep.Findings {
		fmt.Printf("   - %s\n", f)
	}
	fmt.Printf("   report: %s (report.md and SVG plots beside it)\n", filepath.Join(driftDir, bench.ReportJSON))
	if err := demoCommitment(ctx, m, backend, axisPath, filepath.Join(dir, "commitment")); err != nil {
		return err
	}
	if err := demoVariance(ctx, m, axisPath, filepath.Join(dir, "variance")); err != nil {
		return err
	}
	if _, err := demoConsistency(ctx, m, filepath.Join(dir, "consistency")); err != nil {
		return err
	}
	reports := []string{filepath.Join(driftDir, bench.ReportJSON), filepath.Join(dir, "commitment", bench.ReportJSON),
		filepath.Join(dir, "variance", bench.ReportJSON), filepath.Join(dir, "consistency", bench.ReportJSON)}
	return demoCompare(reports, filepath.Join(dir, "compare"))
}

// demoConsistency runs the judged small variance benchmark (bench.DemoConsistency), prints each
// consistency metric's parseable and unparseable verdicts and the consistency findings, and says
// what a story model can and cannot show.
func demoConsistency(ctx context.Context, m *model.Model, dir string) (*bench.VarianceReport, error) {
	fmt.Println("12. consistency metrics (--judge self): 2 personas (sparse anchors) x 2 questionnaire items x 2 seeds, each answer judged by the model itself (greedy, at most 8 tokens per verdict)")
	bar := newBar(1, "   units")
	rep, err := bench.DemoConsistency(ctx, m, dir, func(done, total int) {
		bar.ChangeMax(total)
		bar.Set(done)
	})
	bar.Finish()
	if err != nil {
		return nil, err
	}
	if rep.Consistency == nil {
		return nil, fmt.Errorf("demo: consistency run %s: the report has no consistency summary", dir)
	}
	names := map[string]string{consistency.PromptToLine: "prompt-to-line", consistency.LineToLine: "line-to-line", consistency.QA: "Q&A"}
	for _, c := range rep.Consistency.Overall {
		fmt.Printf("   %-16s %3d parseable, %3d unparseable verdicts (anchor form %s)\n", names[c.Metric]+":", c.N, c.Unparseable, c.Arm)
	}
	for _, f := range rep.Findings {
		if strings.HasPrefix(f, "anchor form ") {
			fmt.Printf("   - %s\n", f)
		}
	}
	fmt.Println("   A story model cannot judge consistency: it does not answer YES or NO, so its verdicts are unparseable (counted, never scored).")
	fmt.Println("   This shows the mechanics of the three metrics, not the science.")
	fmt.Printf("   report: %s (report.md and %s beside it)\n", filepath.Join(dir, bench.ReportJSON), bench.VarianceJudgementsFile)
	return rep, nil
}

// demoCompare puts the demo's reports side by side (what `bench compare` does), prints the table
// and writes compare.json, compare.md and compare.svg into dir.
func demoCompare(reports []string, dir string) error {
	fmt.Println("13. bench compare over the demo's drift, commitment, variance and consistency reports (one row per model):")
	c, err := bench.CompareReports(reports, time.Now())
	if err != nil {
		return err
	}
	if err := bench.WriteComparison(dir, c); err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(bench.RenderCompareMarkdown(c), "\n"), "\n") {
		fmt.Println("   " + line)
	}
	fmt.Printf("   wrote %s/{%s,%s,%s}\n", dir, bench.CompareJSONFile, bench.CompareMDFile, bench.ComparePlotFile)
	return nil
}

// demoVariance runs the small persona variance benchmark (bench.DemoVariance) and says what a
// story model can and cannot show.
func demoVariance(ctx context.Context, m *model.Model, axisPath, dir string) error {
	fmt.Println("11. persona variance: 4 built-in personas x the anchor forms that fit 512 tokens x 3 questionnaire items x 3 seeds")
	vbar := newBar(1, "   units")
	rep, err := bench.DemoVariance(ctx, m, axisPath, dir, nil, func(done, total int) {
		vbar.ChangeMax(total)
		vbar.Set(done)
	})
	vbar.Finish()
	if err != nil {
		return err
	}
	fmt.Printf("   %d answers; %d persona anchors skipped (too long for the 512-token context), %d of %d questionnaire answers unparseable\n",
		rep.Answers, rep.SkippedCount, rep.ParseFailures.Failures, rep.ParseFailures.Answers)
	for _, f := range rep.Findings {
		fmt.Printf("   - %s\n", f)
	}
	fmt.Println("   A story model shows the mechanics of this benchmark, not the science: it cannot read a persona or answer a questionnaire.")
	fmt.Printf("   report: %s (report.md and %s beside it)\n", filepath.Join(dir, bench.ReportJSON), bench.PlotVarianceICC)
	return nil
}

func totalTokens(rs []engine.Result) int {
	n := 0
	for _, r := range rs {
		n += len(r.Tokens)
	}
	return n
}

// meanNorm is the mean L2 norm of the rows of x.
func meanNorm(x [][]float32) float64 {
	if len(x) == 0 {
		return 0
	}
	var total float64
	for _, row := range x {
		var s float64
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		total += math.Sqrt(s)
	}
	return total / float64(len(x))
}

// oneLine shows line breaks of generated text as " / " so each sample stays on one line.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " / ") }
