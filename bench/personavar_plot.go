package bench

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"tether/internal/svgplot"
)

// PlotVarianceICC is the persona variance report's plot: the ICC with its interval per
// representation, overall and per anchor form.
const PlotVarianceICC = "variance_icc.svg"

// formColors are the plot colours of the anchor forms ("all" is black).
var formColors = []color.RGBA{
	{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// renderVariancePlot draws the ICC (between-persona share of the variance; 0.5 is the line
// where run-to-run equals between-persona) with 95% intervals.
func renderVariancePlot(r *VarianceReport, dir string) error {
	p := svgplot.New()
	p.Title.Text = "Between-persona share of variance (ICC, 95% interval)"
	p.Y.Label.Text = "ICC = between / (between + run-to-run)"
	p.Y.Min, p.Y.Max = 0, 1.15
	names := varianceRepNames(r)
	half := plotter.NewFunction(func(float64) float64 { return 0.5 })
	half.Color = color.RGBA{A: 0x80}
	half.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(plotter.NewGrid(), half)
	p.Legend.Add("equal shares", half)
	groups := []string{"all"}
	for _, name := range names {
		for _, f := range sortedForms(r.Representations[name].ByAnchor) {
			if !slices.Contains(groups, f) {
				groups = append(groups, f)
			}
		}
	}
	for gi, g := range groups {
		var pts plotter.XYs
		var errs plotter.YErrors
		for ni, name := range names {
			rp := r.Representations[name]
			c, ok := rp.VarianceComparison, g == "all"
			if !ok {
				c, ok = rp.ByAnchor[g]
			}
			if !ok {
				continue
			}
			x := float64(ni) + 0.15*(float64(gi)-float64(len(groups)-1)/2)
			pts = append(pts, plotter.XY{X: x, Y: c.ICC.Estimate})
			errs = append(errs, struct{ Low, High float64 }{c.ICC.Estimate - c.ICC.Low, c.ICC.High - c.ICC.Estimate})
		}
		if len(pts) == 0 {
			continue
		}
		col := formColors[gi%len(formColors)]
		if g == "all" {
			col = color.RGBA{A: 0xff}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return fmt.Errorf("bench: variance plot: %w", err)
		}
		sc.Color, sc.Shape, sc.Radius = col, draw.CircleGlyph{}, vg.Points(3.5)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{pts, errs})
		if err != nil {
			return fmt.Errorf("bench: variance plot: %w", err)
		}
		eb.Color = col
		p.Add(eb, sc)
		p.Legend.Add(g, sc)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names)-1)+0.6
	p.Legend.Top = true
	return savePlot(p, filepath.Join(dir, PlotVarianceICC))
}
