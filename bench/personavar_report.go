package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"tether/consistency"
	"tether/personas"
)

// Representations of the persona variance benchmark.
const (
	RepActivation    = "activation"
	RepText          = "text"
	RepQuestionnaire = "questionnaire"
)

// VarianceRepresentation is one representation's decomposition: overall (the embedded
// comparison), per anchor form, and the sparse-vs-rich contrast.
type VarianceRepresentation struct {
	VarianceComparison
	// Description says what the values are (layer, dimensions, scale).
	Description string `json:"description"`
	// ByAnchor holds the decomposition of each anchor form's answers alone.
	ByAnchor map[string]VarianceComparison `json:"by_anchor"`
	// AnchorContrast is anchor richness (e), absent without a sparse and a rich form.
	AnchorContrast *AnchorContrast `json:"anchor_contrast,omitempty"`
	// Projection is the activation's projection on the axis (activation only, with an axis).
	Projection *VarianceRepresentation `json:"projection,omitempty"`
}

// ParseFailures counts questionnaire answers without a readable rating.
type ParseFailures struct {
	Answers  int            `json:"answers"`
	Failures int            `json:"failures"`
	ByAnchor map[string]int `json:"by_anchor"`
	// Examples are up to five failing answers with the reason.
	Examples []string `json:"examples"`
}

// VarianceReport is report.json of `tether bench variance`.
type VarianceReport struct {
	Format          string                            `json:"format"`
	Model           string                            `json:"model"`
	Created         string                            `json:"created"`
	Settings        VarianceSettings                  `json:"settings"`
	Method          string                            `json:"method"`
	Answers         int                               `json:"answers"`
	Representations map[string]VarianceRepresentation `json:"representations"`
	ParseFailures   ParseFailures                     `json:"parse_failures"`
	Skipped         []SkippedAnchor                   `json:"skipped"`
	SkippedCount    int                               `json:"skipped_count"`
	Findings        []string                          `json:"findings"`
	// Consistency is the judge's aggregate (with a judge only; see VarianceConsistencyMethod).
	Consistency *consistency.Summary `json:"consistency,omitempty"`
}

// BuildVarianceReport computes the report from the stored answers.
func BuildVarianceReport(modelName string, man VarianceManifest, answers []VarianceAnswer, skipped []SkippedAnchor, now time.Time) (*VarianceReport, error) {
	s := man.Settings
	rep := &VarianceReport{
		Format: VarianceReportFormat, Model: modelName, Created: now.UTC().Format(time.RFC3339),
		Settings: s, Method: PersonaVarianceMethod, Answers: len(answers),
		Representations: map[string]VarianceRepresentation{},
		Skipped:         append([]SkippedAnchor{}, skipped...), SkippedCount: len(skipped),
		ParseFailures: ParseFailures{ByAnchor: map[string]int{}, Examples: []string{}},
	}
	sets := map[string][]VarObservation{}
	for _, a := range answers {
		base := VarObservation{Persona: a.Persona, Anchor: a.Anchor, Item: a.Item, Seed: a.Seed}
		add := func(rep string, v []float64) {
			o := base
			o.Value = v
			sets[rep] = append(sets[rep], o)
		}
		add(RepActivation, float64s(a.Activation))
		add(RepText, float64s(a.Text))
		if a.Projection != nil {
			add("projection", []float64{*a.Projection})
		}
		rep.ParseFailures.Answers++
		if a.Rating != nil {
			add(RepQuestionnaire, []float64{float64(*a.Rating)})
		} else {
			rep.ParseFailures.Failures++
			rep.ParseFailures.ByAnchor[a.Anchor]++
			if len(rep.ParseFailures.Examples) < 5 {
				rep.ParseFailures.Examples = append(rep.ParseFailures.Examples, fmt.Sprintf("%q: %s", firstLine(a.Answer), a.ParseError))
			}
		}
	}
	dim := 0
	if len(answers) > 0 {
		dim = len(answers[0].Activation)
	}
	desc := map[string]string{
		RepActivation:    fmt.Sprintf("mean residual stream over the answer's tokens after block %d, the full %d-dimensional vector (variance = trace of the covariance)", s.Layer, dim),
		RepText:          fmt.Sprintf("the answer text run alone through the model, mean-pooled residual stream after block %d (%d dimensions, variance = trace of the covariance)", s.Layer, dim),
		RepQuestionnaire: fmt.Sprintf("the parsed rating of each questionnaire item (1 to 7; %d of %d answers unparseable, left out)", rep.ParseFailures.Failures, rep.ParseFailures.Answers),
		"projection":     fmt.Sprintf("the mean activation's projection on the unit axis at layer %d", s.Layer),
	}
	seed := uint64(1)
	for _, name := range []string{RepActivation, RepText, RepQuestionnaire, "projection"} {
		obs := sets[name]
		r, err := representation(obs, s, seed)
		if err != nil {
			return nil, fmt.Errorf("bench: variance: %s: %w", name, err)
		}
		seed++
		if r == nil {
			continue
		}
		r.Description = desc[name]
		if name == "projection" {
			a := rep.Representations[RepActivation]
			a.Projection = r
			rep.Representations[RepActivation] = a
			continue
		}
		rep.Representations[name] = *r
	}
	for _, name := range []string{RepActivation, RepText, RepQuestionnaire} {
		r, ok := rep.Representations[name]
		if !ok {
			rep.Findings = append(rep.Findings, fmt.Sprintf("%s: no observations", name))
			continue
		}
		rep.Findings = append(rep.Findings, findingLine(name, r))
	}
	if rep.SkippedCount > 0 {
		rep.Findings = append(rep.Findings, fmt.Sprintf("%d (persona, anchor) pairs skipped: the anchor does not fit the model's context", rep.SkippedCount))
	}
	return rep, nil
}

// representation decomposes one representation overall and by anchor (nil without data).
func representation(obs []VarObservation, s VarianceSettings, seed uint64) (*VarianceRepresentation, error) {
	if len(obs) == 0 {
		return nil, nil
	}
	all, err := CompareVariance(obs, s.Bootstrap, 0.95, seed)
	if err != nil {
		return nil, err
	}
	r := &VarianceRepresentation{VarianceComparison: all, ByAnchor: map[string]VarianceComparison{}}
	for _, f := range s.Forms {
		var sub []VarObservation
		for _, o := range obs {
			if o.Anchor == f {
				sub = append(sub, o)
			}
		}
		if len(sub) == 0 {
			continue
		}
		if r.ByAnchor[f], err = CompareVariance(sub, s.Bootstrap, 0.95, seed); err != nil {
			return nil, err
		}
	}
	var rich []string
	for _, f := range s.Forms {
		if f != personas.Sparse {
			rich = append(rich, f)
		}
	}
	c, ok, err := CompareAnchors(obs, personas.Sparse, rich, s.Bootstrap, 0.95, seed)
	if err != nil {
		return nil, err
	}
	if ok {
		r.AnchorContrast = &c
	}
	return r, nil
}

// findingLine states one representation's finding in words.
func findingLine(name string, r VarianceRepresentation) string {
	line := fmt.Sprintf("%s: run-to-run >= between-persona is %s (ratio %s, 95%% interval %s to %s; ICC %s)",
		name, r.Finding, fmtInf(r.Ratio.Estimate), fmtInf(r.Ratio.Low), fmtInf(r.Ratio.High), fmtFloat(r.ICC.Estimate))
	if r.Note != "" {
		line += "; " + r.Note
	}
	return line
}

// fmtInf formats a number that may be +Inf.
func fmtInf(v float64) string {
	if v > 1e308 {
		return "inf"
	}
	return fmtFloat(v)
}

func float64s(xs []float32) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = float64(v)
	}
	return out
}

// WriteVarianceReport writes report.json (validated against VarianceReportSchema), report.md
// and the SVG plot into dir.
func WriteVarianceReport(dir string, r *VarianceReport) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: variance report: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: variance report %s: %w", filepath.Join(dir, ReportJSON), err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(filepath.Join(dir, ReportJSON), data); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportMarkdown), []byte(RenderVarianceMarkdown(r))); err != nil {
		return err
	}
	if err := renderVariancePlot(r, dir); err != nil {
		return err
	}
	if err := ValidateVarianceReportJSON(data); err != nil {
		return fmt.Errorf("bench: variance report %s: %w", filepath.Join(dir, ReportJSON), err)
	}
	return nil
}

// RenderVarianceMarkdown is report.md of a persona variance run.
func RenderVarianceMarkdown(r *VarianceReport) string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "# Persona variance: %s\n\n", r.Model)
	fmt.Fprintf(&b, "%d personas x %d anchor forms x %d items x %d seeds; temperature %v, top-p %v, max %d tokens, layer %d; personas from %s. %d answers.\n\n",
		len(s.Personas), len(s.Forms), len(s.Items), len(s.Seeds), s.Temperature, s.TopP, s.MaxTokens, s.Layer, s.PersonasSource, r.Answers)
	b.WriteString("## Findings\n\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	b.WriteString("\n## Variance components (95% bootstrap intervals)\n\n")
	b.WriteString("| representation | anchor | run-to-run | between-persona | ratio | ICC | finding |\n|---|---|---|---|---|---|---|\n")
	row := func(name, anchor string, c VarianceComparison) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", name, anchor, fmtIv(Interval{c.RunToRun.Variance, c.RunToRun.Low, c.RunToRun.High}), fmtIv(Interval{c.BetweenPersona.Variance, c.BetweenPersona.Low, c.BetweenPersona.High}), fmtIv(c.Ratio), fmtIv(c.ICC), c.Finding)
	}
	for _, name := range varianceRepNames(r) {
		rp := r.Representations[name]
		row(name, "all", rp.VarianceComparison)
		for _, f := range s.Forms {
			if c, ok := rp.ByAnchor[f]; ok {
				row(name, f, c)
			}
		}
		if rp.Projection != nil {
			row(name+" (axis projection)", "all", rp.Projection.VarianceComparison)
		}
	}
	b.WriteString("\n## Anchor richness: ICC of rich (journal, document) minus sparse anchors\n\n")
	var rows []string
	for _, name := range varianceRepNames(r) {
		if c := r.Representations[name].AnchorContrast; c != nil {
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s |\n", name, fmtFloat(c.SparseICC), fmtFloat(c.RichICC), fmtIv(c.Difference), c.Finding))
		}
	}
	if len(rows) == 0 {
		b.WriteString("No contrast: the run has no answers under a sparse and a rich anchor (a rich anchor that does not fit the context is skipped).\n")
	} else {
		b.WriteString("| representation | sparse ICC | rich ICC | difference (95% interval) | finding |\n|---|---|---|---|---|\n")
		b.WriteString(strings.Join(rows, ""))
	}
	b.WriteString("\n## Representations\n\n")
	for _, name := range varianceRepNames(r) {
		fmt.Fprintf(&b, "- **%s**: %s\n", name, r.Representations[name].Description)
	}
	fmt.Fprintf(&b, "\n## Questionnaire parsing\n\n%d of %d answers had no readable rating (counted, never guessed).\n", r.ParseFailures.Failures, r.ParseFailures.Answers)
	for _, e := range r.ParseFailures.Examples {
		fmt.Fprintf(&b, "- %s\n", mdCell(e))
	}
	fmt.Fprintf(&b, "\n## Skipped (anchor does not fit the context)\n\n%d skipped.\n", r.SkippedCount)
	for _, sk := range r.Skipped {
		fmt.Fprintf(&b, "- %s / %s: %d prompt tokens, context %d\n", sk.Persona, sk.Anchor, sk.PromptTokens, sk.Context)
	}
	renderVarianceConsistency(&b, r.Consistency)
	fmt.Fprintf(&b, "\n## Method\n\n%s\n\n![ICC by representation and anchor](%s)\n", r.Method, PlotVarianceICC)
	return b.String()
}

// varianceRepNames lists the report's representations in canonical order.
func varianceRepNames(r *VarianceReport) []string {
	var out []string
	for _, n := range []string{RepActivation, RepText, RepQuestionnaire} {
		if _, ok := r.Representations[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// fmtIv formats an interval as "estimate [low, high]".
func fmtIv(iv Interval) string {
	return fmt.Sprintf("%s [%s, %s]", fmtInf(iv.Estimate), fmtInf(iv.Low), fmtInf(iv.High))
}

// sortedForms lists the forms of a by-anchor map in canonical order, then others.
func sortedForms(m map[string]VarianceComparison) []string {
	var out []string
	for _, f := range personas.Forms {
		if _, ok := m[f]; ok {
			out = append(out, f)
		}
	}
	for f := range m {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// renderVarianceConsistency writes the judge's overall cells per anchor form and metric.
func renderVarianceConsistency(b *strings.Builder, s *consistency.Summary) {
	if s == nil {
		return
	}
	b.WriteString("\n## Consistency (judge; fraction judged consistent, 95% interval)\n\n| anchor | metric | mean | interval | judged | unparseable |\n|---|---|---|---|---|---|\n")
	for _, c := range s.Overall {
		mean, lo, hi := "n/a", "n/a", "n/a"
		if c.Mean != nil {
			mean, lo, hi = fmtFloat(*c.Mean), fmtFloat(*c.Low), fmtFloat(*c.High)
		}
		fmt.Fprintf(b, "| %s | %s | %s | [%s, %s] | %d | %d |\n", c.Arm, c.Metric, mean, lo, hi, c.N, c.Unparseable)
	}
	fmt.Fprintf(b, "\n%s\n", s.Method)
}
