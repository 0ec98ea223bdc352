package probe

import (
	"fmt"
	"image/color"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"tether/internal/atomicfile"
	"tether/internal/svgplot"
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
// name where there is room, and the default (Assistant) vector as a red triangle; PC1 is oriented
// so the default projects high. Labels never overlap: the default's comes first, then the roles'
// from the outside in (the extreme roles are the ones a reader looks for), and a role in a crowd
// with no free spot beside it keeps its point but loses its label (axis_report.json lists every
// role's coordinates). The picture is written as SVG to path.
func PlotPersonaSpace(b *AxisBuild, layer int, path string) error {
	p, err := personaSpacePlot(b, layer)
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	return savePlot(p, path)
}

// personaSpacePlot builds the plot PlotPersonaSpace writes.
func personaSpacePlot(b *AxisBuild, layer int) (*plot.Plot, error) {
	if layer < 0 || layer >= len(b.PCA) {
		return nil, fmt.Errorf("layer %d out of range [0, %d)", layer, len(b.PCA))
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
	p := svgplot.New()
	p.Title.Text = fmt.Sprintf("Persona space, layer %d (%d roles)", layer, len(b.RoleNames))
	p.X.Label.Text = fmt.Sprintf("PC1 (%.1f%% variance; cos with axis %.2f)", 100*coord(lp.Explained, 0), lp.PC1Cosine)
	p.Y.Label.Text = fmt.Sprintf("PC2 (%.1f%% variance)", 100*coord(lp.Explained, 1))
	roles, err := plotter.NewScatter(pts)
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	roles.GlyphStyle.Color = roleColour
	roles.GlyphStyle.Radius = vg.Points(2.5)
	def := plotter.XYs{{X: coord(lp.DefaultLoading, 0), Y: coord(lp.DefaultLoading, 1)}}
	defPt, err := plotter.NewScatter(def)
	if err != nil {
		return nil, fmt.Errorf("default: %w", err)
	}
	defPt.GlyphStyle.Color = defaultColour
	defPt.GlyphStyle.Radius = vg.Points(5)
	defPt.GlyphStyle.Shape = draw.TriangleGlyph{}
	names := make([]string, len(pts))
	copy(names, b.RoleNames)
	labels := &pointLabels{
		xys:    append(append(plotter.XYs{}, def...), pts...),
		names:  append([]string{"default (Assistant)"}, names...),
		radius: []vg.Length{defPt.GlyphStyle.Radius},
		colour: []color.Color{defaultColour},
		size:   []vg.Length{vg.Points(9)},
	}
	for range pts {
		labels.radius = append(labels.radius, roles.GlyphStyle.Radius)
		labels.colour = append(labels.colour, color.Black)
		labels.size = append(labels.size, vg.Points(7))
	}
	p.Add(plotter.NewGrid(), roles, defPt, labels)
	p.Legend.Add("roles", roles)
	p.Legend.Add("default", defPt)
	p.Legend.Top, p.Legend.Left = true, true
	all := append(append(plotter.XYs{}, pts...), def...)
	padRange(&p.X, all, func(xy plotter.XY) float64 { return xy.X }, 0.18)
	padRange(&p.Y, all, func(xy plotter.XY) float64 { return xy.Y }, 0.1)
	// Room above the points for the legend (top left).
	p.Y.Max += 0.15 * (p.Y.Max - p.Y.Min)
	return p, nil
}

// pointLabels draws a label beside each of its points where there is room
// (svgplot.PlaceLabels), the first point's first, then from the outside of
// the cloud in.
type pointLabels struct {
	xys    plotter.XYs
	names  []string
	radius []vg.Length   // glyph radius of each point, kept clear
	colour []color.Color // text colour of each label
	size   []vg.Length   // font size of each label
}

// Plot implements plot.Plotter.
func (l *pointLabels) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	at := make([]vg.Point, len(l.xys))
	var centre vg.Point
	for i, xy := range l.xys {
		at[i] = vg.Point{X: trX(xy.X), Y: trY(xy.Y)}
		centre.X += at[i].X / vg.Length(len(l.xys))
		centre.Y += at[i].Y / vg.Length(len(l.xys))
	}
	order := make([]int, len(at))
	for i := range order {
		order[i] = i
	}
	dist := func(i int) vg.Length {
		d := at[i].Sub(centre)
		return d.X*d.X + d.Y*d.Y
	}
	sort.SliceStable(order[1:], func(a, b int) bool { return dist(order[1+a]) > dist(order[1+b]) })
	styles := make([]text.Style, len(at))
	obstacles := []vg.Rectangle{p.Legend.Rectangle(c)}
	ordered := make([]vg.Point, len(at))
	gaps := make([]vg.Length, len(at))
	for k, i := range order {
		styles[i] = text.Style{Color: l.colour[i], Font: svgplot.Font(l.size[i]), XAlign: text.XLeft, YAlign: text.YBottom, Handler: p.Title.TextStyle.Handler}
		r := l.radius[i] + 1
		obstacles = append(obstacles, vg.Rectangle{Min: at[i].Sub(vg.Point{X: r, Y: r}), Max: at[i].Add(vg.Point{X: r, Y: r})})
		ordered[k] = at[i]
		gaps[k] = r + 1
	}
	boxes, ok := svgplot.PlaceLabels(ordered, func(k int) (vg.Length, vg.Length) {
		i := order[k]
		return styles[i].Width(l.names[i]), styles[i].Height(l.names[i])
	}, c.Rectangle, obstacles, gaps)
	for k, i := range order {
		if ok[k] {
			c.FillText(styles[i], boxes[k].Min, l.names[i])
		}
	}
}

// PlotVarianceExplained draws the fraction of variance of each of the first max components of
// persona space at a layer (all of them when max <= 0).
func PlotVarianceExplained(b *AxisBuild, layer, max int, path string) error {
	p, err := varianceExplainedPlot(b, layer, max)
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	return savePlot(p, path)
}

// varianceExplainedPlot builds the plot PlotVarianceExplained writes.
func varianceExplainedPlot(b *AxisBuild, layer, max int) (*plot.Plot, error) {
	if layer < 0 || layer >= len(b.PCA) {
		return nil, fmt.Errorf("layer %d out of range [0, %d)", layer, len(b.PCA))
	}
	ex := b.PCA[layer].Explained
	if max > 0 && len(ex) > max {
		ex = ex[:max]
	}
	vals := make(plotter.Values, len(ex))
	for i, e := range ex {
		vals[i] = 100 * e
	}
	p := svgplot.New()
	p.Title.Text = fmt.Sprintf("Variance explained per component, layer %d", layer)
	p.X.Label.Text = "principal component"
	p.Y.Label.Text = "% of variance"
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return nil, err
	}
	bars.Color = roleColour
	p.Add(plotter.NewGrid(), bars)
	names := make([]string, len(ex))
	for i := range names {
		names[i] = fmt.Sprintf("%d", i+1)
	}
	p.NominalX(names...)
	// The bars sit at 0 .. n-1: leave most of a slot free at both ends,
	// and some room above the tallest.
	p.X.Min, p.X.Max = -0.7, float64(len(ex)-1)+0.7
	p.Y.Max += 0.08 * (p.Y.Max - p.Y.Min)
	return p, nil
}

// PlotPC1Cosine draws the cosine between PC1 and the axis at every layer.
func PlotPC1Cosine(b *AxisBuild, path string) error {
	p, err := pc1CosinePlot(b)
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	return savePlot(p, path)
}

// pc1CosinePlot builds the plot PlotPC1Cosine writes.
func pc1CosinePlot(b *AxisBuild) (*plot.Plot, error) {
	pts := make(plotter.XYs, len(b.PCA))
	for l, lp := range b.PCA {
		pts[l] = plotter.XY{X: float64(l), Y: lp.PC1Cosine}
	}
	p := svgplot.New()
	p.Title.Text = "Cosine between PC1 and the Assistant Axis"
	p.X.Label.Text = "layer"
	p.Y.Label.Text = "cosine"
	p.Y.Min, p.Y.Max = -1, 1
	line, points, err := plotter.NewLinePoints(pts)
	if err != nil {
		return nil, err
	}
	line.Color, points.Color = roleColour, roleColour
	p.Add(plotter.NewGrid(), line, points)
	// Half a layer of room on both sides, so the first and last points
	// are not drawn on the frame.
	p.X.Min, p.X.Max = -0.5, float64(len(pts)-1)+0.5
	return p, nil
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

// plotWidth and plotHeight are the size of the axis build's pictures.
const (
	plotWidth  = 6 * vg.Inch
	plotHeight = 4.5 * vg.Inch
)

// savePlot writes p as an SVG file (svgplot.Encode), atomically.
func savePlot(p *plot.Plot, path string) error {
	data, err := svgplot.Encode(p, plotWidth, plotHeight)
	if err == nil {
		err = atomicfile.Write(path, data)
	}
	if err != nil {
		return fmt.Errorf("probe: plot %s: %w", path, err)
	}
	return nil
}
