package main

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"tether/engine"
	"tether/model"
	"tether/models"
)

func init() {
	register("demo", "the main job on the bundled stories260K model (convert, inspect, generate, read activations)", runDemo)
}

// knownStoriesStart is how greedy decoding of stories260K from BOS begins,
// according to the llama2.c project.
const knownStoriesStart = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

func runDemo(args []string) error {
	fs := newFlags("demo", "[--dir DIR] [--backend B]", "tether demo --dir .tether")
	dir := fs.String("dir", ".tether", "working directory for the converted model")
	backend := fs.String("backend", "go", "compute backend: go (CPU) or xla:cuda (GPU)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Println("tether demo: the bundled stories260K model (a real 260K-parameter Llama trained on TinyStories).")
	fmt.Println()

	// 1. Convert the bundled llama2.c checkpoint into a Hugging Face style directory.
	ckpt, tok, err := models.ExtractStories260K(filepath.Join(*dir, "stories260K-llama2c"))
	if err != nil {
		return err
	}
	hfDir := filepath.Join(*dir, "stories260K")
	if err := convertLlama2c(ckpt, tok, hfDir); err != nil {
		return err
	}
	fmt.Printf("1. converted the llama2.c checkpoint to %s (config.json, model.safetensors, tokenizer.json)\n", hfDir)

	m, err := model.Open(hfDir, model.Options{Backend: *backend})
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
	fmt.Println()
	fmt.Println("A tiny story model shows the mechanics, not the science: the persona pipeline (axis, capping, drift)")
	fmt.Println("needs an instruction-tuned model such as Qwen 3, Llama 3 or Gemma 2/3 (tether generate --model ORG/NAME).")
	if !strings.HasPrefix(greedy, knownStoriesStart) {
		return fmt.Errorf("demo: greedy output differs from llama2.c's known output")
	}
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
