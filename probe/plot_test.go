package probe

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/plot"

	"tether/internal/svgplot"
)

func TestWriteAxisReportAndPlots(t *testing.T) {
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildRunAxis(run, RunAxisOptions{MinScore: KeepScore, AxisOptions: rolloutAll})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rep, err := b.WriteAxisReport(dir, run.Manifest(), run.Dir(), KeepScore, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PersonaSpacePlot, VariancePlot, PC1CosinePlot} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		// Well-formed XML with an <svg> root.
		dec := xml.NewDecoder(strings.NewReader(string(data)))
		root := ""
		for {
			tok, err := dec.Token()
			if err != nil {
				if root == "" {
					t.Fatalf("%s: no XML root element: %v", name, err)
				}
				break
			}
			if se, ok := tok.(xml.StartElement); ok && root == "" {
				root = se.Name.Local
			}
		}
		if root != "svg" {
			t.Errorf("%s: root element %q, want svg", name, root)
		}
		if name == PersonaSpacePlot {
			for _, role := range append(b.RoleNames, "default (Assistant)") {
				if !strings.Contains(string(data), role) {
					t.Errorf("%s: no label %q", name, role)
				}
			}
		}
	}
	var back AxisReport
	data, err := os.ReadFile(filepath.Join(dir, AxisReportFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.PerLayer) != 2 || len(back.Roles) != len(b.RoleNames) || len(rep.Plots) != 3 {
		t.Errorf("report: %d layers, %d roles, %d plots", len(back.PerLayer), len(back.Roles), len(rep.Plots))
	}
	// The default projects above the average role on the unit axis: by construction
	// <default - mean(roles), u> = |axis| > 0.
	var mean float64
	for _, r := range back.Roles {
		mean += r.Projection / float64(len(back.Roles))
	}
	if got, want := back.DefaultProjection-mean, b.AxisNorms[1]; got < want*(1-1e-6) || got > want*(1+1e-6) {
		t.Errorf("default minus mean role projection %v, want |axis| %v", got, want)
	}
	if _, err := b.Report(run.Manifest(), run.Dir(), KeepScore, 2); err == nil {
		t.Error("report at layer 2 of 2: no error")
	}
}

// TestPlotLayouts: in every picture of the fixture's axis build, no text
// leaves the canvas or overlaps another, even drawn 10% wider than measured
// (a fallback font), and the SVG asks for the metric-compatible font stack.
func TestPlotLayouts(t *testing.T) {
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildRunAxis(run, RunAxisOptions{MinScore: KeepScore, AxisOptions: rolloutAll})
	if err != nil {
		t.Fatal(err)
	}
	persona, err := personaSpacePlot(b, 1)
	if err != nil {
		t.Fatal(err)
	}
	variance, err := varianceExplainedPlot(b, 1, 20)
	if err != nil {
		t.Fatal(err)
	}
	cosine, err := pc1CosinePlot(b)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*plot.Plot{PersonaSpacePlot: persona, VariancePlot: variance, PC1CosinePlot: cosine} {
		if err := svgplot.CheckLayout(svgplot.Layout(p, plotWidth, plotHeight, svgplot.LabelSlack), plotWidth, plotHeight); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Every bar of the variance plot has its whole slot inside the axis.
	if n := len(b.PCA[1].Explained); variance.X.Min > -0.5 || variance.X.Max < float64(n)-0.5 {
		t.Errorf("variance plot: x axis [%v, %v] cuts the bars at 0 .. %d", variance.X.Min, variance.X.Max, n-1)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, PersonaSpacePlot)
	if err := PlotPersonaSpace(b, 1, path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "font-family:"+svgplot.FontFamily+";") || strings.Contains(string(data), "Liberation Serif") {
		t.Errorf("%s does not ask for %s everywhere", path, svgplot.FontFamily)
	}
}

// TestPersonaSpaceLabelsPlanted plants four roles at the corners of persona
// space around a crowd of thirty-six: the corner roles and the default are
// labelled, no two labels overlap and none leaves the picture; the crowd
// cannot hold a label for each of its roles.
func TestPersonaSpaceLabelsPlanted(t *testing.T) {
	b := &AxisBuild{}
	lp := LayerPCA{Explained: []float64{0.5, 0.2, 0.1}, PC1Cosine: 0.9, DefaultLoading: []float64{0.9, 0}}
	corners := map[string][2]float64{"far_left_top": {-1, 1}, "far_right_top": {1, 1}, "far_left_bottom": {-1, -1}, "far_right_bottom": {1, -1}}
	for _, name := range []string{"far_left_bottom", "far_left_top", "far_right_bottom", "far_right_top"} {
		c := corners[name]
		b.RoleNames = append(b.RoleNames, name)
		lp.Loadings = append(lp.Loadings, []float64{c[0], c[1], 0})
	}
	for i := 0; i < 36; i++ {
		b.RoleNames = append(b.RoleNames, fmt.Sprintf("crowded_role_%02d", i))
		lp.Loadings = append(lp.Loadings, []float64{0.01 * float64(i%6), 0.01 * float64(i/6), 0})
	}
	b.PCA = []LayerPCA{lp}
	p, err := personaSpacePlot(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	boxes := svgplot.Layout(p, plotWidth, plotHeight, svgplot.LabelSlack)
	if err := svgplot.CheckLayout(boxes, plotWidth, plotHeight); err != nil {
		t.Error(err)
	}
	drawn := map[string]bool{}
	crowd := 0
	for _, box := range boxes {
		drawn[box.Text] = true
		if strings.HasPrefix(box.Text, "crowded_role_") {
			crowd++
		}
	}
	for _, want := range []string{"default (Assistant)", "far_left_top", "far_right_top", "far_left_bottom", "far_right_bottom"} {
		if !drawn[want] {
			t.Errorf("no label %q", want)
		}
	}
	if crowd == 0 || crowd >= 36 {
		t.Errorf("%d of the 36 crowded roles labelled; want some, not all", crowd)
	}
	t.Logf("%d of 36 crowded roles labelled", crowd)
}
