package svgplot

import "gonum.org/v1/plot/vg"

// LabelSlack is how much wider than measured PlaceLabels reserves room for
// a label: a fallback sans-serif font may draw text up to about 10% wider
// than Liberation Sans (see the package comment).
const LabelSlack = 1.1

// PlaceLabels finds room for labels beside points, such that no two labels
// overlap, no label covers an obstacle (the points' own glyphs, a legend)
// and every label stays inside area. Labels are placed in the order given,
// so the ones that matter most come first; each tries eight spots around
// its point (right, left, above, below, then the diagonals), gaps[i] away
// from it (more than the radius of the point's glyph). size gives a label's width and height; the width reserved is
// LabelSlack times it. The result holds, for each label, its box (its
// bottom left corner is where to draw it), or ok false where no spot was
// free: the caller leaves that label out.
func PlaceLabels(points []vg.Point, size func(i int) (w, h vg.Length), area vg.Rectangle, obstacles []vg.Rectangle, gaps []vg.Length) (boxes []vg.Rectangle, ok []bool) {
	boxes = make([]vg.Rectangle, len(points))
	ok = make([]bool, len(points))
	taken := append([]vg.Rectangle{}, obstacles...)
	for i, pt := range points {
		w, h := size(i)
		w *= LabelSlack
		gap := gaps[i]
		d := gap // diagonal offsets: the corner clear of a square glyph
		for _, min := range []vg.Point{
			{X: pt.X + gap, Y: pt.Y - h/2},
			{X: pt.X - gap - w, Y: pt.Y - h/2},
			{X: pt.X - w/2, Y: pt.Y + gap},
			{X: pt.X - w/2, Y: pt.Y - gap - h},
			{X: pt.X + d, Y: pt.Y + d},
			{X: pt.X + d, Y: pt.Y - d - h},
			{X: pt.X - d - w, Y: pt.Y + d},
			{X: pt.X - d - w, Y: pt.Y - d - h},
		} {
			box := vg.Rectangle{Min: min, Max: vg.Point{X: min.X + w, Y: min.Y + h}}
			if !inside(box, area) || overlapsAny(box, taken) {
				continue
			}
			boxes[i], ok[i] = box, true
			taken = append(taken, box)
			break
		}
	}
	return boxes, ok
}

// inside tells whether r lies within area.
func inside(r, area vg.Rectangle) bool {
	return r.Min.X >= area.Min.X && r.Min.Y >= area.Min.Y && r.Max.X <= area.Max.X && r.Max.Y <= area.Max.Y
}

// overlapsAny tells whether r overlaps one of rs.
func overlapsAny(r vg.Rectangle, rs []vg.Rectangle) bool {
	for _, o := range rs {
		if r.Min.X < o.Max.X && o.Min.X < r.Max.X && r.Min.Y < o.Max.Y && o.Min.Y < r.Max.Y {
			return true
		}
	}
	return false
}
