package bench

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"tether/internal/svgplot"
)

// Files written by WriteComparison.
const (
	CompareJSONFile = "compare.json"
	CompareMDFile   = "compare.md"
	ComparePlotFile = "compare.svg"
)

// compareColumn is one column of the comparison table: a measure and a name.
type compareColumn struct{ measure, name string }

func (c compareColumn) title() string {
	switch c.measure {
	case CompareVarianceRatio:
		return "variance ratio (" + c.name + ")"
	case CompareCommitment:
		return "commitment " + c.name
	}
	return c.name
}

// compareColumns lists the table's columns: capability, consistency, variance ratio and
// commitment values marked Table, each measure's names in order of first appearance.
func compareColumns(c *Comparison) []compareColumn {
	var cols []compareColumn
	for _, m := range []string{CompareCapability, CompareConsistency, CompareVarianceRatio, CompareCommitment} {
		for _, row := range c.Rows {
			for _, v := range row.Values {
				col := compareColumn{m, v.Name}
				if v.Measure == m && v.Table && !slices.Contains(cols, col) {
					cols = append(cols, col)
				}
			}
		}
	}
	return cols
}

// cellValue is a row's first table value of a column.
func cellValue(row CompareRow, col compareColumn) (CompareValue, bool) {
	for _, v := range row.Values {
		if v.Table && v.Measure == col.measure && v.Name == col.name {
			return v, true
		}
	}
	return CompareValue{}, false
}

// RenderCompareMarkdown renders compare.md: the table (one row per model; capability and
// variance ratio of drift's uncapped arm, consistency as the fraction of YES verdicts with its
// interval), the findings, and the reports read and skipped.
func RenderCompareMarkdown(c *Comparison) string {
	var b strings.Builder
	b.WriteString("# Model comparison\n\n")
	cols := compareColumns(c)
	b.WriteString("| model |")
	for _, col := range cols {
		fmt.Fprintf(&b, " %s |", mdCell(col.title()))
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, row := range c.Rows {
		fmt.Fprintf(&b, "| %s |", mdCell(row.Model))
		for _, col := range cols {
			v, ok := cellValue(row, col)
			s := "—"
			if ok {
				s = fmtValue(v)
				if v.Finding != "" {
					s += " " + v.Finding
				}
			}
			fmt.Fprintf(&b, " %s |", mdCell(s))
		}
		b.WriteString("\n")
	}
	b.WriteString("\nCapability: exact match and perplexity of the uncapped arm of `bench drift`. Consistency: fraction of judge verdicts YES (1 = always consistent), uncapped arm of drift, with its interval. Variance ratio: run-to-run over between-persona variance. When a model has several reports with the same measure, the table shows the first one given. All numbers, arms and intervals are in compare.json.\n\n")
	b.WriteString("## Findings\n\n")
	for _, f := range c.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	b.WriteString("\n## Reports\n\n| report | kind | format | model |\n|---|---|---|---|\n")
	for _, s := range c.Reports {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", mdCell(s.Path), s.Kind, mdCell(s.Format), mdCell(s.Model))
	}
	if len(c.Skipped) > 0 {
		b.WriteString("\nSkipped:\n\n")
		for _, s := range c.Skipped {
			fmt.Fprintf(&b, "- %s: %s\n", s.Path, s.Note)
		}
	}
	return b.String()
}

// WriteComparison writes compare.json, compare.md and compare.svg into dir (atomically).
func WriteComparison(dir string, c *Comparison) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: compare: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: compare: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CompareJSONFile), append(data, '\n')); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, CompareMDFile), []byte(RenderCompareMarkdown(c))); err != nil {
		return err
	}
	p, err := comparePlot(c)
	if err != nil {
		return fmt.Errorf("bench: compare: plot: %w", err)
	}
	return savePlot(p, filepath.Join(dir, ComparePlotFile))
}

// comparePlotColors are the series colours of the comparison plot.
var comparePlotColors = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, {R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, {R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// comparePlot draws, per model (x, labelled with its exact-match capability when known), the
// table's consistency values with their intervals; without any consistency estimate (none
// judged, or every verdict unparseable), the variance ratios, and without those the commitment
// values.
func comparePlot(c *Comparison) (*plot.Plot, error) {
	cols := compareColumns(c)
	estimated := func(col compareColumn) bool {
		return slices.ContainsFunc(c.Rows, func(row CompareRow) bool {
			v, ok := cellValue(row, col)
			return ok && v.Estimate != nil
		})
	}
	measure := ""
	for _, m := range []string{CompareConsistency, CompareVarianceRatio, CompareCommitment} {
		if slices.ContainsFunc(cols, func(col compareColumn) bool { return col.measure == m && estimated(col) }) {
			measure = m
			break
		}
	}
	p := svgplot.New()
	p.Title.Text = "Models side by side"
	var names []string
	for _, row := range c.Rows {
		name := row.Model
		if v, ok := cellValue(row, compareColumn{CompareCapability, "exact match"}); ok && v.Estimate != nil {
			name += fmt.Sprintf(" (EM %.2f)", *v.Estimate)
		}
		names = append(names, name)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names)-1)+0.6
	switch measure {
	case CompareConsistency:
		p.Y.Label.Text = "consistency (fraction YES)"
		// Room above 1 for the legend; ticks only where the scale is defined.
		p.Y.Min, p.Y.Max = 0, 1.3
		p.Y.Tick.Marker = plot.ConstantTicks([]plot.Tick{{Value: 0, Label: "0"}, {Value: 0.25, Label: "0.25"}, {Value: 0.5, Label: "0.5"}, {Value: 0.75, Label: "0.75"}, {Value: 1, Label: "1"}})
	case CompareVarianceRatio:
		p.Y.Label.Text = "run-to-run / between-persona variance"
	case CompareCommitment:
		p.Y.Label.Text = "commitment"
	default:
		p.Y.Label.Text = "no consistency, variance or commitment estimate"
		return p, nil
	}
	var series []compareColumn
	for _, col := range cols {
		if col.measure == measure {
			series = append(series, col)
		}
	}
	p.Add(plotter.NewGrid())
	loY, hiY := math.Inf(1), math.Inf(-1)
	for si, col := range series {
		pts := errPoints{}
		for ri, row := range c.Rows {
			v, ok := cellValue(row, col)
			if !ok || v.Estimate == nil {
				continue
			}
			x := float64(ri) + 0.5*(float64(si)+0.5)/float64(len(series)) - 0.25
			lo, hi := *v.Estimate, *v.Estimate
			if v.Low != nil && v.High != nil {
				lo, hi = *v.Low, *v.High
			}
			loY, hiY = min(loY, lo), max(hiY, hi)
			pts.xys = append(pts.xys, plotter.XY{X: x, Y: *v.Estimate})
			pts.errs = append(pts.errs, struct{ Low, High float64 }{*v.Estimate - lo, hi - *v.Estimate})
		}
		if len(pts.xys) == 0 {
			continue
		}
		clr := comparePlotColors[si%len(comparePlotColors)]
		sc, err := plotter.NewScatter(pts.xys)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: clr, Radius: vg.Points(3.5), Shape: draw.CircleGlyph{}}
		eb, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return nil, err
		}
		eb.LineStyle.Color, eb.LineStyle.Width, eb.CapWidth = clr, vg.Points(1.2), vg.Points(6)
		p.Add(eb, sc)
		p.Legend.Add(col.title(), sc)
	}
	if measure != CompareConsistency && hiY > 0 {
		// Room below the lowest point and above the highest for the legend.
		p.Y.Min, p.Y.Max = min(0, loY), 1.35*hiY
	}
	// Text to the right of its thumbnail: a wider fallback font cannot run into the thumbnail.
	p.Legend.Top, p.Legend.Left = true, true
	return p, nil
}

// errPoints are points with asymmetric vertical errors (plotter.XYer and YErrorer).
type errPoints struct {
	xys  plotter.XYs
	errs []struct{ Low, High float64 }
}

func (e errPoints) Len() int                    { return len(e.xys) }
func (e errPoints) XY(i int) (float64, float64) { return e.xys[i].X, e.xys[i].Y }
func (e errPoints) YError(i int) (float64, float64) {
	return e.errs[i].Low, e.errs[i].High
}
