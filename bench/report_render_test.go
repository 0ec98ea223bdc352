package bench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gonum.org/v1/plot"

	"tether/internal/svgplot"
)

// syntheticDriftReport builds a report from planted numbers: 2 domains x 2 scenarios x
// 2 seeds x 3 turns x 2 arms; the uncapped arm drifts down by 0.5 per turn in the
// emotional domain, the capped arm stays. Summary and variance are computed here from the
// turns (summary by hand, variance with DecomposeVariance).
func syntheticDriftReport(t testing.TB) *DriftReport {
	t.Helper()
	r := &DriftReport{
		Format: DriftReportFormat, Model: "tiny|model", ModelDir: "/models/tiny", Axis: "axis.safetensors", AxisModel: "tiny",
		Settings: DriftSettings{Seeds: []uint64{11, 12}, Turns: 3, MaxTokens: 24, Temperature: 0.7, TopP: 0.9,
			CapLayers: []int{1, 2}, CapPercentile: 25, CapTaus: []float32{1.25, 2.5}, ProjectionLayer: 2, Backend: "go"},
		CapCheck: CapCheck{Tokens: 480, Violations: 0, MinMargin: 0.0031, Held: true},
		Findings: []string{"The uncapped arm drifts by -1.0000 in emotional.", "The cap held on all 480 pairs."},
		Created:  "2026-11-23T21:00:00Z",
	}
	for _, d := range []string{DomainEmotional, DomainCoding} {
		for s := range 2 {
			id := fmt.Sprintf("%s-%d", d, s)
			r.Scenarios = append(r.Scenarios, ScenarioInfo{ID: id, Domain: d, Persona: "persona " + id, Topic: "topic " + id, Turns: 3})
			for _, arm := range []string{ArmUncapped, ArmCapped} {
				for k, seed := range r.Settings.Seeds {
					for turn := range 3 {
						v := 3 + 0.25*float64(s) + 0.1*float64(k)
						if d == DomainEmotional && arm == ArmUncapped {
							v -= 0.5 * float64(turn)
						}
						rec := TurnRecord{Scenario: id, Domain: d, Persona: "persona " + id, Arm: arm, Seed: seed, Turn: turn,
							Projection: v, Drift: v - (3 + 0.25*float64(s) + 0.1*float64(k)), ResponseTokens: 10 + turn, User: "u", Response: "r"}
						if arm == ArmCapped {
							rec.CapFraction = 0.125 * float64(turn)
						}
						r.Turns = append(r.Turns, rec)
					}
				}
			}
		}
	}
	r.Summary = handSummary(r.Turns)
	for _, arm := range []string{ArmUncapped, ArmCapped} {
		v, err := DecomposeVariance(arm, TurnRecordsForVariance(r.Turns, arm), VarianceOptions{Bootstrap: 100})
		if err != nil {
			t.Fatal(err)
		}
		r.Variance = append(r.Variance, v)
	}
	r.Capability = &CapabilityResult{PerplexityUncapped: 12.5, PerplexityCapped: 12.75, PerplexityRelative: 0.02,
		HeldOutTokens: 1200, ExactUncapped: 0.75, ExactCapped: 0.725, ExactRelative: -0.0333, ExactAbsolute: -0.025, Questions: 40,
		Items: []CapabilityItem{{ID: "arith-01", Uncapped: "12", Capped: "13", UncappedCorrect: true}}}
	return r
}

// handSummary aggregates turns per arm, domain and turn (population sd).
func handSummary(turns []TurnRecord) []TurnSummary {
	type key struct {
		arm, domain string
		turn        int
	}
	groups := map[key][]TurnRecord{}
	var order []key
	for _, t := range turns {
		k := key{t.Arm, t.Domain, t.Turn}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	var out []TurnSummary
	for _, k := range order {
		g := groups[k]
		s := TurnSummary{Arm: k.arm, Domain: k.domain, Turn: k.turn, N: len(g)}
		for _, t := range g {
			s.MeanProjection += t.Projection / float64(len(g))
			s.MeanDrift += t.Drift / float64(len(g))
			s.MeanCapFrac += t.CapFraction / float64(len(g))
			s.MeanTokens += float64(t.ResponseTokens) / float64(len(g))
		}
		for _, t := range g {
			s.StdProjection += (t.Projection - s.MeanProjection) * (t.Projection - s.MeanProjection) / float64(len(g))
		}
		s.StdProjection = math.Sqrt(s.StdProjection)
		out = append(out, s)
	}
	return out
}

// TestRenderMarkdownHasTheNumbers: every summary, variance, capability and cap-check number
// of the synthetic report appears in report.md, in its section.
func TestRenderMarkdownHasTheNumbers(t *testing.T) {
	r := syntheticDriftReport(t)
	md := RenderMarkdown(r)
	sections := strings.Split(md, "\n## ")
	section := func(title string) string {
		for _, s := range sections {
			if strings.HasPrefix(s, title) {
				return s
			}
		}
		t.Fatalf("no section %q in\n%s", title, md)
		return ""
	}
	f4 := func(v float64) string { return fmt.Sprintf("%.4f", v) }
	proj := section("Projection per turn")
	for _, s := range r.Summary {
		dom := proj[strings.Index(proj, "### "+s.Domain):]
		if i := strings.Index(dom[4:], "### "); i >= 0 {
			dom = dom[:i+4]
		}
		row := ""
		for _, line := range strings.Split(dom, "\n") {
			if strings.HasPrefix(line, fmt.Sprintf("| %d |", s.Turn)) {
				row = line
			}
		}
		want := []string{f4(s.MeanProjection) + " +- " + f4(s.StdProjection), fmt.Sprintf("%+.4f", s.MeanDrift), fmt.Sprintf("%.1f", s.MeanTokens)}
		if s.Arm == ArmCapped {
			want = append(want, f4(s.MeanCapFrac))
		}
		for _, w := range want {
			if !strings.Contains(row, w) {
				t.Errorf("%s %s turn %d: row %q lacks %q", s.Domain, s.Arm, s.Turn, row, w)
			}
		}
	}
	// Coding comes before emotional (built-in domain order).
	if strings.Index(proj, "### coding") > strings.Index(proj, "### emotional") {
		t.Error("domains out of order")
	}
	v := section("Variance decomposition")
	for _, x := range r.Variance {
		for _, w := range []string{x.Arm, f4(x.RunToRun), f4(x.BetweenScenario), f4(x.BetweenPersona), f4(x.ICC),
			"[" + f4(x.ICCLow) + ", " + f4(x.ICCHigh) + "]", fmt.Sprint(x.Records)} {
			if !strings.Contains(v, w) {
				t.Errorf("variance section lacks %q", w)
			}
		}
	}
	c := section("Capability under capping")
	for _, w := range []string{"12.5000", "12.7500", "+2.00%", "0.7500", "0.7250", "-3.33%", "-2.5000 points", "1200 tokens", "40 questions", "arith-01"} {
		if !strings.Contains(c, w) {
			t.Errorf("capability section lacks %q:\n%s", w, c)
		}
	}
	cc := section("Cap check")
	if !strings.Contains(cc, "| 480 | 0 | +0.0031 | yes |") {
		t.Errorf("cap check section:\n%s", cc)
	}
	for _, w := range r.Findings {
		if !strings.Contains(section("Findings"), "- "+w) {
			t.Errorf("findings lack %q", w)
		}
	}
	head := sections[0]
	for _, w := range []string{"tiny\\|model", "11, 12", "1.2500, 2.5000", "| projection layer | 2 |", "| cap percentile | 25.0000 |"} {
		if !strings.Contains(head, w) {
			t.Errorf("settings lack %q:\n%s", w, head)
		}
	}
	if !strings.Contains(section("Scenarios"), "| emotional-1 | emotional | persona emotional-1 | topic emotional-1 | 3 |") {
		t.Error("scenario table row missing")
	}
}

// svgTexts parses an SVG file as XML and returns its root element name and all its text.
func svgTexts(t *testing.T, path string) (string, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	root := ""
	var text strings.Builder
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: not valid XML: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
		case xml.CharData:
			text.Write(el)
		}
	}
	return root, text.String()
}

// TestRenderPlots: one projection plot per domain, the variance and capability plots;
// each is valid XML with an <svg> root and its title.
func TestRenderPlots(t *testing.T) {
	r := syntheticDriftReport(t)
	dir := t.TempDir()
	if err := RenderPlots(r, dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		PlotFileName(DomainEmotional): ProjectionPlotTitle(DomainEmotional),
		PlotFileName(DomainCoding):    ProjectionPlotTitle(DomainCoding),
		PlotVariance:                  VariancePlotTitle,
		PlotCapability:                CapabilityPlotTitle,
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != len(want) {
		t.Errorf("files %v, want %d", files, len(want))
	}
	for name, title := range want {
		root, text := svgTexts(t, filepath.Join(dir, name))
		if root != "svg" || !strings.Contains(text, title) {
			t.Errorf("%s: root %q, text lacks title %q", name, root, title)
		}
	}
	_, text := svgTexts(t, filepath.Join(dir, PlotFileName(DomainEmotional)))
	for _, w := range []string{"uncapped (mean +- sd)", "capped (mean +- sd)", "tau at the projection layer"} {
		if !strings.Contains(text, w) {
			t.Errorf("projection plot lacks legend %q", w)
		}
	}
	// Degenerate data: one turn of one arm, all-zero variance and capability changes.
	edge := &DriftReport{Format: DriftReportFormat, Model: "m",
		Summary:    []TurnSummary{{Arm: ArmCapped, Domain: "my domain/2", Turn: 0, N: 1, MeanProjection: 1}},
		Variance:   []VarianceResult{{Arm: ArmUncapped, RatioUndefined: true}},
		Capability: &CapabilityResult{PerplexityUncapped: 3, PerplexityCapped: 3}}
	edir := t.TempDir()
	if err := RenderPlots(edge, edir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"projection_my_domain_2.svg", PlotVariance, PlotCapability} {
		if root, _ := svgTexts(t, filepath.Join(edir, name)); root != "svg" {
			t.Errorf("degenerate %s: root %q", name, root)
		}
	}
	if md := RenderMarkdown(edge); !strings.Contains(md, "undefined (between persona is 0)") || !strings.Contains(md, "| 0 | - | 1.0000 +- 0.0000 |") {
		t.Errorf("degenerate markdown:\n%s", md)
	}
	if got := PlotFileName("my domain/2"); got != "projection_my_domain_2.svg" {
		t.Errorf("PlotFileName = %q", got)
	}
}

// TestPlotLayouts: in every plot of the synthetic report no text leaves the
// canvas or overlaps another, even drawn 10% wider than measured (a
// fallback font); every bar's slot lies inside the x axis; the SVG asks
// for the metric-compatible font stack and nothing else.
func TestPlotLayouts(t *testing.T) {
	r := syntheticDriftReport(t)
	plots := map[string]*plot.Plot{}
	for _, domain := range summaryDomains(r.Summary) {
		p, err := projectionPlot(r, domain)
		if err != nil {
			t.Fatal(err)
		}
		plots[PlotFileName(domain)] = p
	}
	variance, err := variancePlot(r)
	if err != nil {
		t.Fatal(err)
	}
	capability, err := capabilityPlot(r.Capability)
	if err != nil {
		t.Fatal(err)
	}
	plots[PlotVariance], plots[PlotCapability] = variance, capability
	for name, p := range plots {
		if err := svgplot.CheckLayout(svgplot.Layout(p, plotWidth, plotHeight, svgplot.LabelSlack), plotWidth, plotHeight); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, bars := range map[string]struct {
		p *plot.Plot
		n int
	}{PlotVariance: {variance, len(r.Variance)}, PlotCapability: {capability, 2}} {
		if bars.p.X.Min > -0.5 || bars.p.X.Max < float64(bars.n)-0.5 {
			t.Errorf("%s: x axis [%v, %v] cuts the bars at 0 .. %d", name, bars.p.X.Min, bars.p.X.Max, bars.n-1)
		}
	}
	dir := t.TempDir()
	if err := RenderPlots(r, dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, PlotCapability))
	if err != nil {
		t.Fatal(err)
	}
	if n, good := strings.Count(string(data), "font-family:"), strings.Count(string(data), "font-family:"+svgplot.FontFamily+";"); n == 0 || n != good {
		t.Errorf("%s: %d of %d texts ask for %s", PlotCapability, good, n, svgplot.FontFamily)
	}
}

// TestWriteReadReport: WriteReport writes report.json, report.md and the plots; readReport
// gives back the same report; report.md regenerated from report.json alone is identical.
func TestWriteReadReport(t *testing.T) {
	r := syntheticDriftReport(t)
	dir := t.TempDir()
	if err := WriteReport(dir, r); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{ReportJSON, ReportMarkdown, PlotVariance, PlotCapability, PlotFileName(DomainCoding)} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	back, err := readReport(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("report changed through report.json:\n%+v\n%+v", back, r)
	}
	md, err := os.ReadFile(filepath.Join(dir, ReportMarkdown))
	if err != nil {
		t.Fatal(err)
	}
	if string(md) != RenderMarkdown(back) {
		t.Error("report.md differs from the one regenerated from report.json")
	}
	// regenerateReport from report.json alone rewrites the same report.md and plots.
	for _, name := range []string{ReportMarkdown, PlotVariance} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := regenerateReport(dir); err != nil {
		t.Fatal(err)
	}
	if again, err := os.ReadFile(filepath.Join(dir, ReportMarkdown)); err != nil || !bytes.Equal(again, md) {
		t.Errorf("regenerated report.md differs (%v)", err)
	}
	if root, _ := svgTexts(t, filepath.Join(dir, PlotVariance)); root != "svg" {
		t.Error("variance plot not regenerated")
	}
	// An empty report still writes valid files ([] rather than null).
	empty := &DriftReport{Format: DriftReportFormat, Model: "m", Created: "2026-11-23T21:00:00Z"}
	if err := WriteReport(t.TempDir(), empty); err != nil {
		t.Errorf("empty report: %v", err)
	}
	// A report breaking the schema is written but reported.
	bad := syntheticDriftReport(t)
	bad.Turns[0].Arm = "sideways"
	if err := WriteReport(t.TempDir(), bad); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("bad arm: error %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old.json"), []byte(`{"format": "tether-drift/0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readReport(filepath.Join(dir, "old.json")); err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("old format: error %v", err)
	}
	if _, err := readReport(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

// readReport reads a report.json written by WriteReport (for regenerating
// report.md and the plots from it alone).
func readReport(path string) (*DriftReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: read report: %w", err)
	}
	var r DriftReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("bench: read report %s: %w", path, err)
	}
	if r.Format != DriftReportFormat {
		return nil, fmt.Errorf("bench: read report %s: field \"format\": %q: expected %q", path, r.Format, DriftReportFormat)
	}
	return &r, nil
}

// regenerateReport rewrites report.md and the SVG plots of dir from its
// report.json alone (report.json itself is left as it is).
func regenerateReport(dir string) error {
	r, err := readReport(filepath.Join(dir, ReportJSON))
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportMarkdown), []byte(RenderMarkdown(r))); err != nil {
		return err
	}
	return RenderPlots(r, dir)
}
