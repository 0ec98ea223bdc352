package svgplot

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

const testW, testH = 6 * vg.Inch, 4 * vg.Inch

// linePlot is a plot whose last x tick (4) sits at the axis' end, where
// gonum centres its label on the picture's edge.
func linePlot(t *testing.T) *plot.Plot {
	t.Helper()
	p := New()
	p.Title.Text = "A title"
	p.X.Label.Text = "layer"
	p.Y.Label.Text = "a rather long y axis label"
	line, err := plotter.NewLine(plotter.XYs{{X: 0, Y: -1}, {X: 4, Y: 1}})
	if err != nil {
		t.Fatal(err)
	}
	p.Add(line)
	p.Legend.Add("the line", line)
	p.Legend.Add("the same line again", line)
	return p
}

// svgTextStyles returns the text and the style attribute of every <text>
// element of an SVG document.
func svgTextStyles(t *testing.T, svg []byte) (texts, styles []string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	in := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return texts, styles
		}
		if err != nil {
			t.Fatalf("not valid XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "text" {
				in = true
				texts = append(texts, "")
				style := ""
				for _, a := range el.Attr {
					if a.Name.Local == "style" {
						style = a.Value
					}
				}
				styles = append(styles, style)
			}
		case xml.CharData:
			if in {
				texts[len(texts)-1] += string(el)
			}
		case xml.EndElement:
			in = false
		}
	}
}

// TestEncodeFontFamily: every text of the SVG asks for the metric-compatible
// family stack, none for a font the viewer may lack and substitute.
func TestEncodeFontFamily(t *testing.T) {
	svg, err := Encode(linePlot(t), testW, testH)
	if err != nil {
		t.Fatal(err)
	}
	texts, styles := svgTextStyles(t, svg)
	if len(texts) < 5 {
		t.Fatalf("only %d texts: %q", len(texts), texts)
	}
	for i, s := range styles {
		if !strings.Contains(s, "font-family:"+FontFamily+";") {
			t.Errorf("text %q: style %q lacks font-family %s", texts[i], s, FontFamily)
		}
	}
	if bytes.Contains(svg, []byte("Liberation Serif")) {
		t.Error("the SVG names Liberation Serif")
	}
	// A plot left with gonum's default (serif) font is refused, not
	// written with a family that does not match its metrics.
	p := linePlot(t)
	p.Title.TextStyle.Font = plot.DefaultFont
	if _, err := Encode(p, testW, testH); err == nil {
		t.Error("Encode accepted a plot in Liberation Serif")
	}
}

// TestLayoutBoxes checks the measured boxes against geometry: every text of
// the plot is found once, the y axis label (drawn turned by 90 degrees) is
// as tall as the unturned text is wide, and everything lies inside the
// canvas, even 10% wider than measured; the tick label at the end of the x
// axis too.
func TestLayoutBoxes(t *testing.T) {
	p := linePlot(t)
	boxes := Layout(p, testW, testH, 1)
	byText := map[string]TextBox{}
	for _, b := range boxes {
		byText[b.Text] = b
	}
	for _, want := range []string{"A title", "layer", "a rather long y axis label", "the line", "0", "4"} {
		if _, ok := byText[want]; !ok {
			t.Errorf("no box for %q (have %v)", want, boxes)
		}
	}
	ylab := byText["a rather long y axis label"]
	wantLen := p.Y.Label.TextStyle.Width(ylab.Text)
	if got := ylab.Max.Y - ylab.Min.Y; math.Abs(float64(got-wantLen)) > 0.01 {
		t.Errorf("turned y label is %v tall, want its width %v", got, wantLen)
	}
	if got := ylab.Max.X - ylab.Min.X; got > 2*p.Y.Label.TextStyle.Font.Size {
		t.Errorf("turned y label is %v wide, more than twice its font size", got)
	}
	if err := CheckLayout(Layout(p, testW, testH, 1.1), testW, testH); err != nil {
		t.Error(err)
	}
	if four := byText["4"]; four.Max.X > testW {
		t.Errorf("last x tick label ends at %v, past the %v canvas", four.Max.X, testW)
	}
}

// TestCheckLayout plants boxes that leave the canvas or overlap.
func TestCheckLayout(t *testing.T) {
	box := func(s string, x0, y0, x1, y1 vg.Length) TextBox {
		return TextBox{Text: s, Rectangle: vg.Rectangle{Min: vg.Point{X: x0, Y: y0}, Max: vg.Point{X: x1, Y: y1}}}
	}
	for _, tc := range []struct {
		name  string
		boxes []TextBox
		bad   []string
	}{
		{"apart", []TextBox{box("a", 0, 0, 10, 10), box("b", 10, 0, 20, 10)}, nil},
		{"overlap", []TextBox{box("a", 0, 0, 10, 10), box("b", 5, 5, 20, 20)}, []string{`"a"`, `"b"`, "overlaps"}},
		{"outside", []TextBox{box("a", 90, 0, 101, 10)}, []string{`"a"`, "leaves"}},
	} {
		err := CheckLayout(tc.boxes, 100, 100)
		if (err != nil) != (tc.bad != nil) {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		for _, w := range tc.bad {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
	}
}

// TestPlaceLabels plants four points at the corners of a crowd of twenty:
// the corners, placed first, all get labels; no two labels overlap, none
// covers a point or leaves the area; the crowd cannot hold twenty labels,
// so some go without; a lone point gets its label on its right.
func TestPlaceLabels(t *testing.T) {
	area := vg.Rectangle{Max: vg.Point{X: 400, Y: 300}}
	var pts []vg.Point
	for _, c := range [][2]vg.Length{{60, 40}, {340, 40}, {60, 260}, {340, 260}} {
		pts = append(pts, vg.Point{X: c[0], Y: c[1]})
	}
	for i := 0; i < 20; i++ {
		pts = append(pts, vg.Point{X: 200 + vg.Length(i%5)*6, Y: 150 + vg.Length(i/5)*5})
	}
	var obstacles []vg.Rectangle
	for _, p := range pts {
		obstacles = append(obstacles, vg.Rectangle{Min: vg.Point{X: p.X - 3, Y: p.Y - 3}, Max: vg.Point{X: p.X + 3, Y: p.Y + 3}})
	}
	size := func(i int) (vg.Length, vg.Length) { return vg.Length(30 + i%3*10), 8 }
	gaps := make([]vg.Length, len(pts))
	for i := range gaps {
		gaps[i] = 4
	}
	boxes, ok := PlaceLabels(pts, size, area, obstacles, gaps)
	placed := 0
	for i := range pts {
		if i < 4 && !ok[i] {
			t.Errorf("corner point %d got no label", i)
		}
		if !ok[i] {
			continue
		}
		placed++
		b := boxes[i]
		if w, h := size(i); math.Abs(float64(b.Size().X-w*LabelSlack)) > 1e-9 || b.Size().Y != h {
			t.Errorf("label %d: box %v, want %v x %v", i, b.Size(), w*LabelSlack, h)
		}
		if !inside(b, area) {
			t.Errorf("label %d at %v leaves the area", i, b)
		}
		if overlapsAny(b, obstacles) {
			t.Errorf("label %d at %v covers a point", i, b)
		}
		for j := i + 1; j < len(pts); j++ {
			if ok[j] && overlapsAny(b, []vg.Rectangle{boxes[j]}) {
				t.Errorf("labels %d at %v and %d at %v overlap", i, b, j, boxes[j])
			}
		}
	}
	if placed == len(pts) {
		t.Errorf("all %d labels placed in a crowd with no room for them", placed)
	}
	t.Logf("%d of %d labels placed", placed, len(pts))

	lone, ok := PlaceLabels([]vg.Point{{X: 100, Y: 100}}, func(int) (vg.Length, vg.Length) { return 20, 8 }, area, nil, []vg.Length{4})
	if want := (vg.Point{X: 104, Y: 96}); !ok[0] || lone[0].Min != want {
		t.Errorf("lone label at %v (ok %v), want its corner at %v", lone[0], ok[0], want)
	}
}

// TestAffine composes a translation and a turn by a quarter and checks a
// point by hand: translate (10, 0) after turning (1, 0) by 90 degrees gives
// (10, 1).
func TestAffine(t *testing.T) {
	c := &measureCanvas{m: identity}
	c.Translate(vg.Point{X: 10})
	c.Rotate(math.Pi / 2)
	x, y := c.m.apply(1, 0)
	if math.Abs(x-10) > 1e-12 || math.Abs(y-1) > 1e-12 {
		t.Errorf("got (%v, %v), want (10, 1)", x, y)
	}
	c.Push()
	c.Scale(2, 3)
	c.Pop()
	if x2, y2 := c.m.apply(1, 0); x2 != x || y2 != y {
		t.Errorf("Pop did not restore the transform: (%v, %v)", x2, y2)
	}
}
