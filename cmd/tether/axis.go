package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"tether/axis"
	"tether/probe"
)

func init() {
	register("axis build", "build the Assistant Axis, persona space (PCA) and tau calibration from a persona run", runAxisBuild)
	register("axis inspect", "show an axis file: layers, norms, PC1 cosine, tau table, roles at each end", runAxisInspect)
}

func runAxisBuild(args []string) error {
	fs := newFlags("axis build", "--run RUN --out axis.safetensors [--percentiles 1,25,50,75] [--min-score 3] [--min-role-rollouts N] [--calibrate-on default|roles|all] [--calibrate-unit token|rollout] [--model M] [--axis-layer L] [--layer L]",
		`tether axis build --run /tmp/run --out /tmp/run/axis.safetensors   # also writes axis_report.json and SVG pictures beside it
  tether axis build --run /tmp/run --out ref.safetensors --calibrate-on all --calibrate-unit rollout --token-fractions   # see how often a per-rollout tau would cap`)
	runDir := fs.String("run", "", `run directory written by "tether persona run", or the --out of a sharded run (every shard is checked and merged)`)
	out := fs.String("out", "", "axis file to write (.safetensors); the report and pictures go to the same directory")
	pcts := fs.String("percentiles", "1,25,50,75", "percentiles of the calibration projections to calibrate tau at")
	minScore := fs.Int("min-score", probe.KeepScore, "with a judge, the lowest score a role's rollout needs to count for its role vector")
	minRole := fs.Int("min-role-rollouts", 0, "roles with fewer kept rollouts are left out of the axis (default: 50 when a judge scored the run, as the reference; 1 without a judge)")
	calOn := fs.String("calibrate-on", probe.CalibrateDefault, "rollouts tau is calibrated on: default (the Assistant's), roles (those in the role vectors) or all")
	calUnit := fs.String("calibrate-unit", probe.UnitToken, "token: percentiles of every response token's projection (re-runs the model over the calibration rollouts); rollout: of the rollouts' span means")
	fractions := fs.Bool("token-fractions", false, "with --calibrate-unit rollout, still re-read the tokens to record how often each tau would cap (always recorded with token)")
	modelRef := fs.String("model", "", "model for the per-token pass (default: the run's recorded model); must have the run's config.json")
	backend := addBackendFlag(fs)
	axisLayer := fs.Int("axis-layer", -1, "layer the axis is read at by default (default: the reference's layer for a known model, else the middle layer)")
	layer := fs.Int("layer", -1, "layer of the persona-space pictures and the role table (default: the axis layer)")
	limit(fs, "min-score", between(0, 3).with("judge scores run from 0 to 3"))
	limit(fs, "min-role-rollouts", atLeast(1))
	limit(fs, "layer", layerRange)
	limit(fs, "axis-layer", layerRange)
	if err := parseFlags(fs, args, "run", "out"); err != nil {
		return err
	}
	percentiles, err := parsePercentiles(*pcts)
	if err != nil {
		return fmt.Errorf("axis build: --percentiles: %w", err)
	}
	if err := checkOutputFile("out", *out, "axis.safetensors"); err != nil {
		return fmt.Errorf("axis build: %w", err)
	}
	if *fractions && *calUnit == probe.UnitToken {
		*fractions = false // recorded anyway
	}
	b, rep, err := probe.WriteRunAxis(*runDir, *out, probe.RunAxisOptions{
		AxisOptions: probe.AxisOptions{Percentiles: percentiles, MinRoleRollouts: *minRole, CalibrateOn: *calOn,
			CalibrateUnit: *calUnit, TokenFractions: *fractions},
		MinScore: *minScore, PlotLayer: optionalLayer(*layer), AxisLayer: optionalLayer(*axisLayer), ModelRef: *modelRef, Backend: *backend})
	if err != nil {
		return err
	}
	plotLayer := rep.PlotLayer
	fmt.Printf("wrote %s: axis of %d layers x %d, %d roles (%d kept rollouts) vs %d default rollouts, tau at percentiles %s\n",
		*out, b.Layers, b.Hidden, len(b.RoleNames), sumInts(b.RoleCounts), b.DefaultCount, *pcts)
	fmt.Printf("axis layer %d (%s)\n", b.AxisLayer(), b.AxisLayerReason)
	fmt.Printf("calibration: %s\n", b.CalibrationText())
	if b.CalibrationTokens > 0 {
		fmt.Printf("per-token pass: the re-read tokens reproduce the run's span means to %.2g of their norm\n", b.TokenMeanDeviation)
	}
	if ref := rep.ReferenceCap; ref != "" {
		fmt.Printf("%s\n", ref)
	}
	if len(b.Dropped) > 0 {
		fmt.Printf("left out %d roles with fewer than %d kept rollouts: %s\n", len(b.Dropped), b.MinRoleRollouts, b.DroppedText())
	}
	lp := b.PCA[plotLayer]
	fmt.Printf("layer %d: |axis| %.4g, PC1 explains %.1f%%, cos(PC1, axis) %.3f\n", plotLayer, b.AxisNorms[plotLayer], 100*lp.Explained[0], lp.PC1Cosine)
	fmt.Printf("report: %s\n", filepath.Join(filepath.Dir(*out), probe.AxisReportFile))
	for _, p := range rep.Plots {
		fmt.Printf("picture: %s\n", p)
	}
	return nil
}

func runAxisInspect(args []string) error {
	fs := newFlags("axis inspect", "axis.safetensors [--layer L] [--top N] [--json]",
		"tether axis inspect /tmp/run/axis.safetensors --layer 12")
	layer := fs.Int("layer", -1, "layer of the role table (default: the file's axis_layer, else the middle layer)")
	top := fs.Int("top", 5, "roles to show at each end of the axis")
	asJSON := fs.Bool("json", false, "print everything as JSON")
	limit(fs, "layer", layerRange)
	limit(fs, "top", atLeast(1))
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErrorf("axis inspect: want exactly one axis file, got %d arguments (see --help)", fs.NArg())
	}
	a, err := axis.Read(fs.Arg(0))
	if err != nil {
		return err
	}
	in, err := probe.InspectAxis(a, *layer)
	if err != nil {
		return fmt.Errorf("axis inspect: %s: %w", fs.Arg(0), err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	printInspection(in, *top)
	return nil
}

func printInspection(in *probe.AxisInspection, top int) {
	fmt.Printf("model %s: %d layers, hidden size %d, %d roles\n", in.Model, in.Layers, in.Hidden, len(in.Roles))
	fmt.Printf("layer numbering: %s\n", in.LayerNumbering)
	if in.AxisLayer != nil {
		reason := ""
		if in.AxisLayerReason != "" {
			reason = " (" + in.AxisLayerReason + ")"
		}
		fmt.Printf("axis layer (default for steering and projection): %d%s\n", *in.AxisLayer, reason)
	}
	if in.CapLayers != "" {
		fmt.Printf("reference capping setting: --cap-layers %s --cap-percentile %g (or --cap-layers default)\n", in.CapLayers, in.CapPercentile)
	}
	if in.Calibration != "" {
		fmt.Printf("calibration (%s, %s units): %s\n", in.CalibrateOn, in.CalibrateUnit, in.Calibration)
	}
	if len(in.Dropped) > 0 {
		names := make([]string, 0, len(in.Dropped))
		for n := range in.Dropped {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			if c := in.Dropped[n]; c >= 0 {
				names[i] = fmt.Sprintf("%s (%d kept)", n, c)
			}
		}
		fmt.Printf("left out %d roles with fewer than %d kept rollouts: %s\n", len(names), in.MinRoleRollouts, strings.Join(names, ", "))
	}
	fmt.Printf("\n%5s %10s %8s", "layer", "|axis|", "PC1 cos")
	for _, p := range in.Percentiles {
		fmt.Printf(" %9s", "tau p"+strconv.FormatFloat(p, 'g', -1, 64))
	}
	if in.HasTokenFractions {
		for _, p := range in.Percentiles {
			fmt.Printf(" %9s", "caps p"+strconv.FormatFloat(p, 'g', -1, 64))
		}
	}
	fmt.Println()
	for _, l := range in.PerLayer {
		cos := "-"
		if l.PC1Cosine != nil {
			cos = fmt.Sprintf("%.3f", *l.PC1Cosine)
		}
		fmt.Printf("%5d %10.4g %8s", l.Layer, l.AxisNorm, cos)
		for _, t := range l.Tau {
			fmt.Printf(" %9.4g", t)
		}
		for _, f := range l.CapTokenFraction {
			fmt.Printf(" %8.1f%%", 100*f)
		}
		fmt.Println()
	}
	if in.HasTokenFractions {
		fmt.Println("caps pP: fraction of the calibration rollouts' response tokens whose projection is below tau pP, the tokens a cap at that tau acts on")
	} else {
		fmt.Println("(no per-token statistics in this file: build with --calibrate-unit token or --token-fractions for the fraction of tokens each tau caps)")
	}
	def := "unknown (no default_mean in the file)"
	if in.Default != nil {
		def = fmt.Sprintf("%.4g", *in.Default)
	}
	fmt.Printf("\nlayer %d, projections on the unit axis (higher = more Assistant-like); default %s\n", in.Layer, def)
	n := min(top, len(in.Roles))
	fmt.Println("Assistant end:")
	for _, r := range in.Roles[:n] {
		fmt.Printf("  %-24s %10.4g\n", r.Role, r.Projection)
	}
	fmt.Println("far end:")
	for i := len(in.Roles) - 1; i >= len(in.Roles)-n && i >= 0; i-- {
		r := in.Roles[i]
		fmt.Printf("  %-24s %10.4g\n", r.Role, r.Projection)
	}
}

// optionalLayer is nil for a layer flag left at -1 (its default), else the layer.
func optionalLayer(l int) *int {
	if l == -1 {
		return nil
	}
	return &l
}

// parsePercentiles parses "1,25,50,75".
func parsePercentiles(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return nil, fmt.Errorf("expected comma-separated numbers in [0, 100], got %q", s)
		}
		out = append(out, x)
	}
	return out, probe.CheckPercentiles(out)
}

func sumInts(xs []int) int {
	s := 0
	for _, x := range xs {
		s += x
	}
	return s
}
