package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"

	"tether/axis"
	"tether/model"
	"tether/probe"
	"tether/steer"
)

func init() {
	register("project", "per-turn projections of a conversation's assistant turns onto the Assistant Axis", runProject)
}

func runProject(args []string) error {
	fs := newFlags("project", "--model M --axis A --conversation FILE.json [--layer L] [--enable-thinking] [--json] [--backend B]",
		"tether project --model HuggingFaceTB/SmolLM2-135M-Instruct --axis axis.safetensors --conversation chat.json\n"+
			`  chat.json: [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}, ...] or {"messages": [...]} (docs/conversations.md)`)
	ref := fs.String("model", "", "model directory or Hugging Face id (the model the axis was built from)")
	axisPath := fs.String("axis", "", "axis file (axis.safetensors)")
	convPath := fs.String("conversation", "", "conversation file (JSON messages, see docs/conversations.md)")
	layer := fs.Int("layer", -1, "layer to read (default: the axis file's axis_layer, else the reference's layer for the model, else the middle layer)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	backend := addBackendFlag(fs)
	thinking := addThinkingFlag(fs)
	allowOther := fs.Bool("allow-other-model", false, "accept an axis built from a model with another config.json (same shape)")
	limit(fs, "layer", layerRange)
	if err := parseFlags(fs, args, "model", "axis", "conversation"); err != nil {
		return err
	}
	a, err := axis.Read(*axisPath)
	if err != nil {
		return err
	}
	msgs, err := probe.ReadConversation(*convPath)
	if err != nil {
		return err
	}
	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	// Resolve checks the axis against the model and chooses the layer (steer.DefaultMeasureLayer).
	spec := steer.Spec{AllowOtherModel: *allowOther}
	if *layer >= 0 {
		spec.MeasureLayer = layer
	}
	setup, err := steer.Resolve(ctx, spec, a, steer.ForModel(m))
	if err != nil {
		return fmt.Errorf("project: %w", flagError(err, map[string]string{"axis": *axisPath, "measure_layer": "--layer"}))
	}
	if err := warnAxisRendering(warnOut, *axisPath, a, m); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	res, err := probe.ProjectConversation(ctx, m, a, msgs, setup.MeasureLayer)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("%s, layer %d, %d tokens: projection of each assistant turn's mean activation on the unit axis (higher = more Assistant-like)\n",
		res.Model, res.Layer, res.Tokens)
	var ps []float64
	for p := range res.Tau {
		if x, err := strconv.ParseFloat(p, 64); err == nil {
			ps = append(ps, x)
		}
	}
	sort.Float64s(ps)
	if len(ps) > 0 {
		fmt.Print("calibration at this layer:")
		for _, p := range ps {
			fmt.Printf(" p%g=%.4g", p, res.Tau[strconv.FormatFloat(p, 'g', -1, 64)])
		}
		fmt.Println()
	}
	fmt.Printf("%4s %6s %7s %11s  %s\n", "turn", "reply", "tokens", "projection", "text")
	for _, t := range res.Turns {
		fmt.Printf("%4d %6d %7d %11.4g  %s\n", t.Turn, t.Assistant, t.Tokens, t.Projection, t.Preview)
	}
	return nil
}
