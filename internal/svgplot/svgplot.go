// Package svgplot writes gonum plots as SVG files that look the same in any
// viewer, and measures where their text lands.
//
// gonum/plot measures text with the Liberation fonts it embeds and names
// the font in the SVG ("Liberation Serif" by default). A viewer without
// that font substitutes another (DejaVu Serif on most Linux systems, Times
// elsewhere) whose glyphs are wider or narrower than what the layout was
// computed for, so legends run into their symbols and labels into each
// other. Here every plot is measured with Liberation Sans, which is metric
// compatible with Arial and Helvetica (each glyph has the same advance
// width), and the SVG asks for FontFamily: Liberation Sans, else Arial,
// else Helvetica, one of which Windows, macOS and most Linux desktops have,
// so the text is drawn exactly as wide as it was measured. Where none of
// them is installed the generic sans-serif is used (DejaVu Sans, up to
// about 10% wider), and the layouts leave room for that (see Layout's
// widthScale).
//
// Embedding the font (gonum's vgsvg.EmbedFonts: @font-face with a base64
// data URI) was the other choice: it adds about 0.5 MB per font face to
// every plot (a small plot with two faces grew from 4 KB to 1.1 MB), and
// librsvg, which many tools use to show and convert SVG, ignores
// @font-face (rsvg-convert 2.x drew the embedded and the plain file alike,
// with the system's substitute), so it would not help there.
package svgplot

import (
	"bytes"
	"fmt"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// FontFamily is the CSS font-family every text of the SVG asks for: fonts
// with the metrics of Liberation Sans first, the generic family last.
const FontFamily = "'Liberation Sans', Arial, Helvetica, sans-serif"

// measuredFamily is the family name gonum writes for Font.
const measuredFamily = "Liberation Sans"

// Font is the font plot text is measured with, at size.
func Font(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// New returns an empty plot whose title, axis labels, tick labels and
// legend use Font (at gonum's default sizes, but 10 points for the legend,
// whose entries are 2 points apart: at gonum's 12 points and no gap the
// lines' boxes overlap).
func New() *plot.Plot {
	p := plot.New()
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.Legend.Padding = vg.Points(2)
	for _, s := range []*text.Style{
		&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle,
		&p.X.Tick.Label, &p.Y.Tick.Label, &p.Legend.TextStyle,
	} {
		s.Font = Font(s.Font.Size)
	}
	return p
}

// Encode draws p on a w x h canvas and returns the SVG document, its text
// set in FontFamily. The plot is drawn inset on the right and at the top by
// what the outermost tick labels can stick out past the axes (gonum centres
// them on the ticks, so one at the axis' end would be cut off at the
// picture's edge).
func Encode(p *plot.Plot, w, h vg.Length) ([]byte, error) {
	c := vgsvg.New(w, h)
	p.Draw(inset(p, draw.New(c)))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("svgplot: %w", err)
	}
	svg := buf.String()
	if n := strings.Count(svg, "font-family:"); n != strings.Count(svg, "font-family:"+measuredFamily+";") {
		return nil, fmt.Errorf("svgplot: the plot uses a font other than %s (set it with svgplot.Font)", measuredFamily)
	}
	svg = strings.ReplaceAll(svg, "font-family:"+measuredFamily+";", "font-family:"+FontFamily+";")
	return []byte(svg), nil
}

// inset crops the canvas on the right by half the widest x tick label and
// at the top by half the y tick labels' height (measured 10% wider, see
// Layout), plus a little air there and on the left (gonum puts the y axis
// label's line box, ascent included, a point or so past the left edge).
func inset(p *plot.Plot, c draw.Canvas) draw.Canvas {
	const air = vg.Length(4)
	var right vg.Length
	if p.X.Min <= p.X.Max {
		for _, t := range p.X.Tick.Marker.Ticks(p.X.Min, p.X.Max) {
			right = max(right, p.X.Tick.Label.Width(t.Label)*1.1/2)
		}
	}
	top := p.Y.Tick.Label.Height("0") / 2
	return draw.Crop(c, air, -(right + air), 0, -(top + air))
}
