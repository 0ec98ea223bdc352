package svgplot

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TextBox is where one string of a plot lands: the axis-aligned box around
// it on the canvas, in points from the bottom left corner.
type TextBox struct {
	Text string
	vg.Rectangle
}

// Overlaps tells whether two boxes share more than a sliver (tol points
// in each direction).
func (b TextBox) Overlaps(o TextBox, tol vg.Length) bool {
	return b.Min.X+tol < o.Max.X && o.Min.X+tol < b.Max.X && b.Min.Y+tol < o.Max.Y && o.Min.Y+tol < b.Max.Y
}

// Layout draws p as Encode does, on a w x h canvas that only measures, and
// returns the box of every string drawn. Each string is measured
// widthScale times as wide as Font makes it (from its start, where SVG
// anchors it): 1 is the text as Arial or Helvetica draw it, 1.1 as a
// fallback sans-serif up to 10% wider would.
func Layout(p *plot.Plot, w, h vg.Length, widthScale float64) []TextBox {
	m := &measureCanvas{w: w, h: h, scale: widthScale, m: identity}
	p.Draw(inset(p, draw.NewCanvas(m, w, h)))
	return m.boxes
}

// CheckLayout returns an error naming every box that leaves the w x h
// canvas and every pair of boxes that overlap, nil if there are none.
func CheckLayout(boxes []TextBox, w, h vg.Length) error {
	var bad []string
	const tol = 0.5
	for i, b := range boxes {
		if b.Min.X < -tol || b.Min.Y < -tol || b.Max.X > w+tol || b.Max.Y > h+tol {
			bad = append(bad, fmt.Sprintf("%q at %v leaves the %vx%v canvas", b.Text, b.Rectangle, w, h))
		}
		for _, o := range boxes[i+1:] {
			if b.Overlaps(o, tol) {
				bad = append(bad, fmt.Sprintf("%q at %v overlaps %q at %v", b.Text, b.Rectangle, o.Text, o.Rectangle))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("svgplot: text layout: %s", strings.Join(bad, "; "))
	}
	return nil
}

// affine maps (x, y) to (a*x + c*y + e, b*x + d*y + f).
type affine struct{ a, b, c, d, e, f float64 }

var identity = affine{a: 1, d: 1}

// then returns the map that applies n first, then m.
func (m affine) then(n affine) affine {
	return affine{
		a: m.a*n.a + m.c*n.b, b: m.b*n.a + m.d*n.b,
		c: m.a*n.c + m.c*n.d, d: m.b*n.c + m.d*n.d,
		e: m.a*n.e + m.c*n.f + m.e, f: m.b*n.e + m.d*n.f + m.f,
	}
}

func (m affine) apply(x, y float64) (float64, float64) {
	return m.a*x + m.c*y + m.e, m.b*x + m.d*y + m.f
}

// measureCanvas is a vg.Canvas that draws nothing; it follows the
// transforms and records the box of each string.
type measureCanvas struct {
	w, h  vg.Length
	scale float64
	m     affine
	stack []affine
	boxes []TextBox
}

func (c *measureCanvas) SetLineWidth(vg.Length)              {}
func (c *measureCanvas) SetLineDash([]vg.Length, vg.Length)  {}
func (c *measureCanvas) SetColor(color.Color)                {}
func (c *measureCanvas) Stroke(vg.Path)                      {}
func (c *measureCanvas) Fill(vg.Path)                        {}
func (c *measureCanvas) DrawImage(vg.Rectangle, image.Image) {}
func (c *measureCanvas) Size() (vg.Length, vg.Length)        { return c.w, c.h }
func (c *measureCanvas) Push()                               { c.stack = append(c.stack, c.m) }

func (c *measureCanvas) Pop() {
	if n := len(c.stack); n > 0 {
		c.m, c.stack = c.stack[n-1], c.stack[:n-1]
	}
}

func (c *measureCanvas) Rotate(rad float64) {
	s, co := math.Sincos(rad)
	c.m = c.m.then(affine{a: co, b: s, c: -s, d: co})
}

func (c *measureCanvas) Translate(pt vg.Point) {
	c.m = c.m.then(affine{a: 1, d: 1, e: pt.X.Points(), f: pt.Y.Points()})
}

func (c *measureCanvas) Scale(x, y float64) { c.m = c.m.then(affine{a: x, d: y}) }

// FillString records the box of str drawn from pt (on its baseline).
func (c *measureCanvas) FillString(f font.Face, pt vg.Point, str string) {
	ext := f.Extents()
	x0, x1 := pt.X.Points(), pt.X.Points()+c.scale*f.Width(str).Points()
	y0, y1 := pt.Y.Points()-ext.Descent.Points(), pt.Y.Points()+ext.Ascent.Points()
	minX, minY, maxX, maxY := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, corner := range [4][2]float64{{x0, y0}, {x1, y0}, {x0, y1}, {x1, y1}} {
		x, y := c.m.apply(corner[0], corner[1])
		minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
	}
	c.boxes = append(c.boxes, TextBox{Text: str, Rectangle: vg.Rectangle{
		Min: vg.Point{X: vg.Length(minX), Y: vg.Length(minY)},
		Max: vg.Point{X: vg.Length(maxX), Y: vg.Length(maxY)},
	}})
}
