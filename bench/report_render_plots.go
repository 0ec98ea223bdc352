package bench

import (
	"fmt"
	"image/color"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"tether/internal/svgplot"
)

// Plot file names written by RenderPlots (projection plots are
// PlotProjectionPrefix + domain + ".svg").
const (
	PlotProjectionPrefix = "projection_"
	PlotVariance         = "variance.svg"
	PlotCapability       = "capability.svg"
)

// armColors are the plot colours of the arms.
var armColors = map[string]color.RGBA{
	ArmUncapped: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	ArmCapped:   {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
}

// PlotFileName is the SVG file of a domain's projection plot (characters
// other than letters, digits, '-' and '_' become '_').
func PlotFileName(domain string) string {
	var b strings.Builder
	for _, r := range domain {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteRune('_')
		}
	}
	return PlotProjectionPrefix + b.String() + ".svg"
}

// RenderPlots writes the SVG plots of the report into dir: per domain the
// projection per turn of both arms with a band of +- one standard deviation
// across seeds and scenarios; the variance decomposition per arm; the
// capability deltas (when capability was measured).
func RenderPlots(r *DriftReport, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: plots: %w", err)
	}
	for _, domain := range summaryDomains(r.Summary) {
		p, err := projectionPlot(r, domain)
		if err != nil {
			return fmt.Errorf("bench: plots: domain %q: %w", domain, err)
		}
		if err := savePlot(p, filepath.Join(dir, PlotFileName(domain))); err != nil {
			return err
		}
	}
	if len(r.Variance) > 0 {
		p, err := variancePlot(r)
		if err != nil {
			return fmt.Errorf("bench: plots: variance: %w", err)
		}
		if err := savePlot(p, filepath.Join(dir, PlotVariance)); err != nil {
			return err
		}
	}
	if r.Capability != nil {
		p, err := capabilityPlot(r.Capability)
		if err != nil {
			return fmt.Errorf("bench: plots: capability: %w", err)
		}
		if err := savePlot(p, filepath.Join(dir, PlotCapability)); err != nil {
			return err
		}
	}
	return nil
}

// ProjectionPlotTitle is the title of a domain's projection plot.
func ProjectionPlotTitle(domain string) string { return "Projection per turn: " + domain }

// Titles of the other plots.
const (
	VariancePlotTitle   = "Variance decomposition of projections"
	CapabilityPlotTitle = "Capability change under capping"
)

// projectionPlot draws each arm's mean projection per turn and its +- sd band.
func projectionPlot(r *DriftReport, domain string) (*plot.Plot, error) {
	p := svgplot.New()
	p.Title.Text = ProjectionPlotTitle(domain)
	p.X.Label.Text = "turn"
	p.Y.Label.Text = fmt.Sprintf("projection at layer %d", r.Settings.ProjectionLayer)
	p.Add(plotter.NewGrid())
	rows := summaryByTurn(r.Summary, domain)
	turns := slices.Sorted(maps.Keys(rows))
	for _, arm := range []string{ArmUncapped, ArmCapped} {
		var mean, hi, lo plotter.XYs
		for _, t := range turns {
			s := rows[t][arm]
			if s == nil {
				continue
			}
			x := float64(t)
			mean = append(mean, plotter.XY{X: x, Y: s.MeanProjection})
			hi = append(hi, plotter.XY{X: x, Y: s.MeanProjection + s.StdProjection})
			lo = append(lo, plotter.XY{X: x, Y: s.MeanProjection - s.StdProjection})
		}
		if len(mean) == 0 {
			continue
		}
		col := armColors[arm]
		band := append(plotter.XYs{}, hi...)
		for i := len(lo) - 1; i >= 0; i-- {
			band = append(band, lo[i])
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return nil, err
		}
		poly.Color = color.NRGBA{R: col.R, G: col.G, B: col.B, A: 0x40}
		poly.LineStyle.Width = 0
		line, points, err := plotter.NewLinePoints(mean)
		if err != nil {
			return nil, err
		}
		line.Color, points.Color = col, col
		line.Width = vg.Points(1.5)
		p.Add(poly, line, points)
		p.Legend.Add(arm+" (mean +- sd)", line, points)
	}
	if len(r.Settings.CapTaus) > 0 && len(r.Settings.CapLayers) > 0 {
		for i, l := range r.Settings.CapLayers {
			if l == r.Settings.ProjectionLayer && i < len(r.Settings.CapTaus) && len(turns) > 0 {
				tau := float64(r.Settings.CapTaus[i])
				line, err := plotter.NewLine(plotter.XYs{{X: float64(turns[0]), Y: tau}, {X: float64(turns[len(turns)-1]), Y: tau}})
				if err != nil {
					return nil, err
				}
				line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
				p.Add(line)
				p.Legend.Add("tau at the projection layer", line)
			}
		}
	}
	if len(turns) > 0 {
		// A third of a turn of room on both sides, so the first and last
		// points are not drawn on the frame.
		p.X.Min, p.X.Max = float64(turns[0])-0.3, float64(turns[len(turns)-1])+0.3
	}
	legendRoom(p)
	return p, nil
}

// legendRoom puts the legend at the top left, its symbols first and the
// text after them (so a font that draws the text wider than measured runs
// into the empty plot, not into the symbols), and raises the top of the Y
// axis so that it does not cover the data.
func legendRoom(p *plot.Plot) {
	p.Legend.Top, p.Legend.Left = true, true
	lo, hi := p.Y.Min, p.Y.Max
	if hi <= lo {
		hi = lo + 1
	}
	p.Y.Max = hi + 0.35*(hi-lo)
}

// variancePlot draws grouped bars: run-to-run, between scenario and between
// persona variance for each arm.
func variancePlot(r *DriftReport) (*plot.Plot, error) {
	p := svgplot.New()
	p.Title.Text = VariancePlotTitle
	p.Y.Label.Text = "variance"
	w := vg.Points(40)
	var names []string
	for _, v := range r.Variance {
		names = append(names, v.Arm)
	}
	comps := []struct {
		name string
		get  func(VarianceResult) float64
		col  color.RGBA
	}{
		{"run-to-run (seeds)", func(v VarianceResult) float64 { return v.RunToRun }, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}},
		{"between scenario", func(v VarianceResult) float64 { return v.BetweenScenario }, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
		{"between persona", func(v VarianceResult) float64 { return v.BetweenPersona }, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}},
	}
	for i, c := range comps {
		vals := make(plotter.Values, len(r.Variance))
		for j, v := range r.Variance {
			vals[j] = c.get(v)
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color = c.col
		bars.LineStyle.Width = 0
		bars.Offset = w * vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(c.name, bars)
	}
	p.NominalX(names...)
	// The groups sit at 0 .. n-1: leave room at both ends.
	p.X.Min, p.X.Max = -0.6, float64(len(names)-1)+0.6
	legendRoom(p)
	return p, nil
}

// capabilityPlot draws the relative change (percent) of perplexity and
// exact-match accuracy under capping.
func capabilityPlot(c *CapabilityResult) (*plot.Plot, error) {
	p := svgplot.New()
	p.Title.Text = CapabilityPlotTitle
	p.Y.Label.Text = "capped vs uncapped (% change)"
	vals := plotter.Values{100 * c.PerplexityRelative, 100 * c.ExactRelative}
	bars, err := plotter.NewBarChart(vals, vg.Points(40))
	if err != nil {
		return nil, err
	}
	bars.Color = armColors[ArmCapped]
	bars.LineStyle.Width = 0
	p.Add(plotter.NewGrid(), bars)
	p.NominalX("perplexity", "exact match")
	// The bars sit at 0 and 1: leave room at both ends, and above and
	// below the longest bars.
	p.X.Min, p.X.Max = -0.7, 1.7
	lo, hi := min(0, vals[0], vals[1]), max(0, vals[0], vals[1])
	if hi == lo {
		hi = lo + 1
	}
	p.Y.Min, p.Y.Max = lo-0.1*(hi-lo), hi+0.1*(hi-lo)
	return p, nil
}

// plotWidth and plotHeight are the size of the report's pictures.
const (
	plotWidth  = 7 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// savePlot writes p as an SVG file (svgplot.Encode; through a temporary
// file, renamed).
func savePlot(p *plot.Plot, path string) error {
	data, err := svgplot.Encode(p, plotWidth, plotHeight)
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	return writeFileAtomic(path, data)
}
