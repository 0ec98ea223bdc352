package probe

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// The file names of the pictures WriteAxisPlots writes.
const (
	PersonaSpacePlot = "persona_space.svg"
	VariancePlot     = "variance_explained.svg"
	PC1CosinePlot    = "pc1_cosine.svg"
)

var (
	roleColour    = color.RGBA{R: 0x33, G: 0x66, B: 0xaa, A: 0xff}
	defaultColour = color.RGBA{R: 0xcc, G: 0x33, B: 0x11, A: 0xff}
)

// PlotPersonaSpace draws the roles on PC1 (x) against PC2 (y) at a layer, each labelled with its
// name, and the default (Assistant) vector as a red triangle; PC1 is oriented so the default
// projects high. The picture is written as SVG to path.
func PlotPersonaSpace(b *AxisBuild, layer int, path string) error {
	if layer < 0 || layer >= len(b.PCA) {
		return fmt.Errorf("probe: plot %s: layer %d out of range [0, %d)", path, layer, len(b.PCA))
	}
	lp := b.PCA[layer]
	coord := func(v []float64, c int) float64 {
		if c < len(v) {
			return v[c]
		}
		return 0
	}
	pts := make(plotter.XYs, len(lp.Loadings))
	for r, ld := range lp.Loadings {
		pts[r] = plotter.XY{X: coord(ld, 0), Y: coord(ld, 1)}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Persona space, layer %d (%d roles)", layer, len(b.RoleNames))
	p.X.Label.Text = fmt.Sprintf("PC1 (%.1f%% variance; cos with axis %.2f)", 100*coord(lp.Explained, 0), lp.PC1Cosine)
	p.Y.Label.Text = fmt.Sprintf("PC2 (%.1f%% variance)", 100*coord(lp.Explained, 1))
	roles, err := plotter.NewScatter(pts)
	if err != nil {
		return fmt.Errorf("probe: plot %s: roles: %w", path, err)
	}
	roles.GlyphStyle.Color = roleColour
	roles.GlyphStyle.Radius = vg.Points(2.5)
	names, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: b.RoleNames})
	if err != nil {
		return fmt.Errorf("probe: plot %s: labels: %w", path, err)
	}
	for i := range names.TextStyle {
		names.TextStyle[i].Font.Size = vg.Points(6)
	}
	names.Offset = vg.Point{X: vg.Points(3), Y: vg.Points(2)}
	def := plotter.XYs{{X: coord(lp.DefaultLoading, 0), Y: coord(lp.DefaultLoading, 1)}}
	defPt, err := plotter.NewScatter(def)
	if err != nil {
		return fmt.Errorf("probe: plot %s: default: %w", path, err)
	}
	defPt.GlyphStyle.Color = defaultColour
	defPt.GlyphStyle.Radius = vg.Points(5)
	defPt.GlyphStyle.Shape = draw.TriangleGlyph{}
	defLabel, err := plotter.NewLabels(plotter.XYLabels{XYs: def, Labels: []string{"default (Assistant)"}})
	if err != nil {
		return fmt.Errorf("probe: plot %s: default label: %w", path, err)
	}
	defLabel.TextStyle[0].Color = defaultColour
	defLabel.Offset = vg.Point{X: vg.Points(6), Y: vg.Points(-3)}
	p.Add(plotter.NewGrid(), roles, names, defPt, defLabel)
	p.Legend.Add("roles", roles)
	p.Legend.Add("default", defPt)
	p.Legend.Top, p.Legend.Left = true, true
	padRange(&p.X, append(append(plotter.XYs{}, pts...), def...), func(xy plotter.XY) float64 { return xy.X }, 0.18)
	padRange(&p.Y, append(append(plotter.XYs{}, pts...), def...), func(xy plotter.XY) float64 { return xy.Y }, 0.1)
	return savePlot(p, path)
}

// PlotVarianceExplained draws the fraction of variance of each of the first max components of
// persona space at a layer (all of them when max <= 0).
func PlotVarianceExplained(b *AxisBuild, layer, max int, path string) error {
	if layer < 0 || layer >= len(b.PCA) {
		return fmt.Errorf("probe: plot %s: layer %d out of range [0, %d)", path, layer, len(b.PCA))
	}
	ex := b.PCA[layer].Explained
	if max > 0 && len(ex) > max {
		ex = ex[:max]
	}
	vals := make(plotter.Values, len(ex))
	for i, e := range ex {
		vals[i] = 100 * e
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Variance explained per component, layer %d", layer)
	p.X.Label.Text = "principal component"
	p.Y.Label.Text = "% of variance"
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	bars.Color = roleColour
	p.Add(plotter.NewGrid(), bars)
	names := make([]string, len(ex))
	for i := range names {
		names[i] = fmt.Sprintf("%d", i+1)
	}
	p.NominalX(names...)
	return savePlot(p, path)
}

// PlotPC1Cosine draws the cosine between PC1 and the axis at every layer.
func PlotPC1Cosine(b *AxisBuild, path string) error {
	pts := make(plotter.XYs, len(b.PCA))
	for l, lp := range b.PCA {
		pts[l] = plotter.XY{X: float64(l), Y: lp.PC1Cosine}
	}
	p := plot.New()
	p.Title.Text = "Cosine between PC1 and the Assistant Axis"
	p.X.Label.Text = "layer"
	p.Y.Label.Text = "cosine"
	p.Y.Min, p.Y.Max = -1, 1
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	line.Color, points.Color = roleColour, roleColour
	p.Add(plotter.NewGrid(), line, points)
	return savePlot(p, path)
}

// padRange sets an axis to the data's range widened by frac of its width on each side, so that
// labels beside the points stay inside the picture.
func padRange(a *plot.Axis, pts plotter.XYs, coord func(plotter.XY) float64, frac float64) {
	if len(pts) == 0 {
		return
	}
	lo, hi := coord(pts[0]), coord(pts[0])
	for _, xy := range pts[1:] {
		lo, hi = min(lo, coord(xy)), max(hi, coord(xy))
	}
	w := hi - lo
	if w == 0 {
		w = 1
	}
	a.Min, a.Max = lo-frac*w, hi+frac*w
}

func savePlot(p *plot.Plot, path string) error {
	if err := p.Save(6*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	return nil
}
