package bench

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"tether/internal/svgplot"
)

// CommitmentReportSchema is the JSON schema of a commitment report.json
// (bench/schema/commitment-report.schema.json).
//
//go:embed schema/commitment-report.schema.json
var CommitmentReportSchema []byte

// CommitmentPlot is the SVG plot of a commitment report.
const CommitmentPlot = "commitment.svg"

// Definitions of the commitment report's measures, written into report.json and report.md.
const (
	defAgreement = "per question after a branch point: the fraction of the branches' parsed (yes/no) answers equal to their majority answer; unparseable answers are counted, not scored; a question with fewer than two parsed answers is not scored. Averaged over the scored questions of a branch point, then over openings x branch points."
	defJoint     = "a scored question is jointly consistent when every parsed answer of the branches is the same, so that one object could give them all; the estimate is the fraction of scored questions that are, per opening x branch point, averaged."
	defEntropy   = "Shannon entropy (bits, plug-in) of the branches' normalised final reveals (first line, lowercased, punctuation and articles removed); empty reveals are counted, not included. At most log2(branches)."
	defSpread    = "per branch, the mean over its answers (not the reveal) of the mean residual activation over the answer's generated tokens at the layer; within: mean pairwise Euclidean distance between branches of the same opening and branch point; between: mean distance between branches of different openings at the same branch point; ratio within/between. Intervals resample openings."
)

// CommitmentReport is report.json of `tether bench commitment`.
type CommitmentReport struct {
	Format           string              `json:"format"`
	Model            CommitmentModel     `json:"model"`
	Settings         CommitmentSettings  `json:"settings"`
	Definitions      map[string]string   `json:"definitions"`
	Agreement        CommitInterval      `json:"agreement"`
	JointConsistency CommitInterval      `json:"joint_consistency"`
	RevealEntropy    CommitInterval      `json:"reveal_entropy_bits"`
	MaxEntropy       float64             `json:"max_entropy_bits"`
	Counts           CommitCounts        `json:"counts"`
	ByPoint          []CommitPointResult `json:"by_branch_point"`
	Spread           *CommitSpread       `json:"spread"`
	Findings         []string            `json:"findings"`
}

// CommitCounts counts the parsed answers and reveals of a report.
type CommitCounts struct {
	Yes              int `json:"yes"`
	No               int `json:"no"`
	Unparseable      int `json:"unparseable"`
	ScoredQuestions  int `json:"scored_questions"`
	UnscoredQuestion int `json:"unscored_questions"`
	EmptyReveals     int `json:"empty_reveals"`
}

// CommitPointResult is one branch point's measures, intervals over openings.
type CommitPointResult struct {
	At               int            `json:"at"`
	Agreement        CommitInterval `json:"agreement"`
	JointConsistency CommitInterval `json:"joint_consistency"`
	RevealEntropy    CommitInterval `json:"reveal_entropy_bits"`
	Reveals          map[string]int `json:"reveals"`
}

// CommitSpread compares the residual-stream spread across branches with that across openings.
type CommitSpread struct {
	Layer           int            `json:"layer"`
	WithinOpening   CommitInterval `json:"within_opening"`
	BetweenOpenings CommitInterval `json:"between_openings"`
	Ratio           CommitInterval `json:"ratio"`
}

// unitScores are the measures of one opening x branch point.
type unitScores struct {
	agreement, joint float64
	scored           bool
	entropy          float64
}

// scorePoint measures one branch point of one opening, adding to counts.
func scorePoint(p CommitPoint, c *CommitCounts, reveals map[string]int) unitScores {
	var sc unitScores
	nq := 0
	if len(p.Branches) > 0 {
		nq = len(p.Branches[0].Parsed)
	}
	n := 0
	for q := range nq {
		answers := make([]string, len(p.Branches))
		for i, b := range p.Branches {
			answers[i] = b.Parsed[q]
		}
		agr, all, yes, no, un, ok := questionAgreement(answers)
		c.Yes, c.No, c.Unparseable = c.Yes+yes, c.No+no, c.Unparseable+un
		if !ok {
			c.UnscoredQuestion++
			continue
		}
		c.ScoredQuestions++
		n++
		sc.agreement += agr
		if all {
			sc.joint++
		}
	}
	if n > 0 {
		sc.agreement, sc.joint, sc.scored = sc.agreement/float64(n), sc.joint/float64(n), true
	}
	var names []string
	for _, b := range p.Branches {
		if b.RevealNorm == "" {
			c.EmptyReveals++
			continue
		}
		names = append(names, b.RevealNorm)
		reveals[b.RevealNorm]++
	}
	sc.entropy = entropyBits(names)
	return sc
}

// SummarizeCommitment computes the report of the finished games (one unit per opening, in
// opening order).
func SummarizeCommitment(m CommitmentManifest, units []CommitUnit) *CommitmentReport {
	s := m.Settings
	rep := &CommitmentReport{
		Format: m.Format, Model: m.Model, Settings: s,
		Definitions: map[string]string{"agreement": defAgreement, "joint_consistency": defJoint, "reveal_entropy_bits": defEntropy, "spread": defSpread},
		MaxEntropy:  math.Log2(float64(s.Branches)),
	}
	var agr, joint, ent []float64
	for p, at := range s.BranchAt {
		pr := CommitPointResult{At: at, Reveals: map[string]int{}}
		var pa, pj, pe []float64
		for _, u := range units {
			sc := scorePoint(u.Points[p], &rep.Counts, pr.Reveals)
			if sc.scored {
				pa, pj = append(pa, sc.agreement), append(pj, sc.joint)
			}
			pe = append(pe, sc.entropy)
		}
		seed := hashSeed(fmt.Sprintf("commit-bootstrap:%d:%d", s.Seed, at))
		pr.Agreement, pr.JointConsistency, pr.RevealEntropy = bootstrapMean(pa, seed), bootstrapMean(pj, seed+1), bootstrapMean(pe, seed+2)
		agr, joint, ent = append(agr, pa...), append(joint, pj...), append(ent, pe...)
		rep.ByPoint = append(rep.ByPoint, pr)
	}
	seed := hashSeed(fmt.Sprintf("commit-bootstrap:%d", s.Seed))
	rep.Agreement, rep.JointConsistency, rep.RevealEntropy = bootstrapMean(agr, seed), bootstrapMean(joint, seed+1), bootstrapMean(ent, seed+2)
	rep.Spread = commitSpread(s, units)
	rep.Findings = commitFindings(rep)
	return rep
}

// commitSpread measures the activation spread (nil without activations or with one opening).
func commitSpread(s CommitmentSettings, units []CommitUnit) *CommitSpread {
	n := len(units)
	if n < 2 {
		return nil
	}
	for _, u := range units {
		for _, p := range u.Points {
			for _, b := range p.Branches {
				if len(b.Activation) == 0 {
					return nil
				}
			}
		}
	}
	// d[i][j]: the mean distance between branches of openings i and j at the same branch point
	// (for i == j, distinct branches), averaged over branch points.
	d := make([][]float64, n)
	for i := range d {
		d[i] = make([]float64, n)
		for j := range d[i] {
			for p := range s.BranchAt {
				d[i][j] += meanDistance(units[i].Points[p].Branches, units[j].Points[p].Branches, i == j)
			}
			d[i][j] /= float64(len(s.BranchAt))
		}
	}
	stat := func(which int) func(idx []int) (float64, bool) {
		return func(idx []int) (float64, bool) {
			w, b, nb := 0.0, 0.0, 0
			for a, i := range idx {
				w += d[i][i]
				for _, j := range idx[a+1:] {
					if i != j {
						b += d[i][j]
						nb++
					}
				}
			}
			if nb == 0 {
				return 0, false
			}
			w, b = w/float64(len(idx)), b/float64(nb)
			switch which {
			case 0:
				return w, true
			case 1:
				return b, true
			}
			if b == 0 {
				return 0, false
			}
			return w / b, true
		}
	}
	seed := hashSeed(fmt.Sprintf("commit-spread:%d", s.Seed))
	return &CommitSpread{
		Layer:           s.Layer,
		WithinOpening:   bootstrapStat(n, seed, stat(0)),
		BetweenOpenings: bootstrapStat(n, seed, stat(1)),
		Ratio:           bootstrapStat(n, seed, stat(2)),
	}
}

// meanDistance is the mean Euclidean distance between the activations of a and b; same says a
// and b are one set, whose distinct pairs are taken.
func meanDistance(a, b []CommitBranch, same bool) float64 {
	s, n := 0.0, 0
	for i := range a {
		for j := range b {
			if same && j <= i {
				continue
			}
			s += euclid(a[i].Activation, b[j].Activation)
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return s / float64(n)
}

// commitFindings states the report's results in words.
func commitFindings(r *CommitmentReport) []string {
	var f []string
	if r.Agreement.N == 0 {
		f = append(f, "no question could be scored: no two branches answered one with a yes or no")
	} else {
		f = append(f, fmt.Sprintf("answer agreement across branches %.3f [%.3f, %.3f]; jointly consistent questions %.3f [%.3f, %.3f] (1 = every branch answers like one object)",
			r.Agreement.Estimate, r.Agreement.Low, r.Agreement.High, r.JointConsistency.Estimate, r.JointConsistency.Low, r.JointConsistency.High))
	}
	f = append(f, fmt.Sprintf("entropy of the final reveals %.3f bits [%.3f, %.3f] of at most %.3f (0 = every branch names the same thing)",
		r.RevealEntropy.Estimate, r.RevealEntropy.Low, r.RevealEntropy.High, r.MaxEntropy))
	switch {
	case r.RevealEntropy.Low > 0:
		f = append(f, "the branches do not commit to one secret: their reveals differ (the entropy interval excludes 0)")
	case r.RevealEntropy.High == 0:
		f = append(f, "every branch point's branches name the same secret")
	default:
		f = append(f, "inconclusive: the entropy interval reaches 0")
	}
	if c := r.Counts; c.Unparseable > 0 || c.EmptyReveals > 0 {
		f = append(f, fmt.Sprintf("%d of %d answers were not a yes or no and %d reveals were empty (counted, not scored)", c.Unparseable, c.Yes+c.No+c.Unparseable, c.EmptyReveals))
	}
	if sp := r.Spread; sp != nil {
		f = append(f, fmt.Sprintf("residual spread at layer %d: within an opening %.4g, between openings %.4g, ratio %.3f [%.3f, %.3f]",
			sp.Layer, sp.WithinOpening.Estimate, sp.BetweenOpenings.Estimate, sp.Ratio.Estimate, sp.Ratio.Low, sp.Ratio.High))
		if sp.Ratio.N < 3 {
			f = append(f, "with 2 openings the spread's intervals are degenerate (a resample of one opening has no pair between openings): use --openings 3 or more")
		}
	}
	return f
}

var (
	commitSchemaOnce sync.Once
	commitSchema     *jsonschema.Schema
	commitSchemaErr  error
)

// ValidateCommitmentReportJSON checks report.json bytes against CommitmentReportSchema.
func ValidateCommitmentReportJSON(data []byte) error {
	commitSchemaOnce.Do(func() {
		const url = "https://tether.invalid/schema/commitment-report.schema.json"
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(CommitmentReportSchema))
		if err == nil {
			c := jsonschema.NewCompiler()
			if err = c.AddResource(url, doc); err == nil {
				commitSchema, err = c.Compile(url)
			}
		}
		if err != nil {
			commitSchemaErr = fmt.Errorf("bench: schema/commitment-report.schema.json: %w", err)
		}
	})
	if commitSchemaErr != nil {
		return commitSchemaErr
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("bench: commitment report: not JSON: %w", err)
	}
	if err := commitSchema.Validate(inst); err != nil {
		return fmt.Errorf("bench: commitment report does not match schema/commitment-report.schema.json: %w", err)
	}
	return nil
}

// WriteCommitmentReport writes report.json (validated), report.md and the SVG plot into dir.
func WriteCommitmentReport(dir string, r *CommitmentReport) error {
	if r.Findings == nil {
		r.Findings = []string{}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: commitment report: %w", err)
	}
	data = append(data, '\n')
	if err := ValidateCommitmentReportJSON(data); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportJSON), data); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportMarkdown), []byte(RenderCommitmentMarkdown(r))); err != nil {
		return err
	}
	p, err := commitmentPlot(r)
	if err == nil {
		err = svgplot.CheckLayout(svgplot.Layout(p, plotWidth, plotHeight, svgplot.LabelSlack), plotWidth, plotHeight)
	}
	var svg []byte
	if err == nil {
		svg, err = svgplot.Encode(p, plotWidth, plotHeight)
	}
	if err != nil {
		return fmt.Errorf("bench: commitment plot: %w", err)
	}
	return writeFileAtomic(filepath.Join(dir, CommitmentPlot), svg)
}

// RenderCommitmentMarkdown is report.md of a commitment report.
func RenderCommitmentMarkdown(r *CommitmentReport) string {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "# Commitment (twenty questions)\n\nModel %s (%s); subject %s; %d questions; %d openings; branch points %v; %d branches each; temperature %g; max tokens %d; seed %d.\n\n",
		orNone(r.Model.Name), orNone(r.Model.Backend), s.Subject, len(s.Questions), len(s.Openings), s.BranchAt, s.Branches, s.Temperature, s.MaxTokens, s.Seed)
	b.WriteString("## Findings\n\n")
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	b.WriteString("\n## By branch point (95% bootstrap intervals over openings)\n\n| after question | agreement | jointly consistent | reveal entropy (bits) | reveals |\n|---|---|---|---|---|\n")
	iv := func(c CommitInterval) string {
		if c.N == 0 {
			return "not scored"
		}
		return fmt.Sprintf("%.3f [%.3f, %.3f] (n %d)", c.Estimate, c.Low, c.High, c.N)
	}
	for _, p := range r.ByPoint {
		names := make([]string, 0, len(p.Reveals))
		for k := range p.Reveals {
			names = append(names, k)
		}
		sort.Slice(names, func(i, j int) bool {
			if p.Reveals[names[i]] != p.Reveals[names[j]] {
				return p.Reveals[names[i]] > p.Reveals[names[j]]
			}
			return names[i] < names[j]
		})
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s x%d", k, p.Reveals[k]))
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s |\n", p.At, iv(p.Agreement), iv(p.JointConsistency), iv(p.RevealEntropy), mdCell(strings.Join(parts, ", ")))
	}
	c := r.Counts
	fmt.Fprintf(&b, "\nAnswers: %d yes, %d no, %d unparseable; %d questions scored, %d not (under two parsed answers); %d empty reveals.\n\n", c.Yes, c.No, c.Unparseable, c.ScoredQuestions, c.UnscoredQuestion, c.EmptyReveals)
	if sp := r.Spread; sp != nil {
		fmt.Fprintf(&b, "## Residual spread (layer %d, %s)\n\nwithin an opening %s; between openings %s; ratio %s\n\n", sp.Layer, s.LayerReason, iv(sp.WithinOpening), iv(sp.BetweenOpenings), iv(sp.Ratio))
	}
	b.WriteString("## Definitions\n\n")
	for _, k := range []string{"agreement", "joint_consistency", "reveal_entropy_bits", "spread"} {
		fmt.Fprintf(&b, "- **%s**: %s\n", k, r.Definitions[k])
	}
	return b.String()
}

// commitmentPlot draws agreement, joint consistency and the normalised reveal entropy per branch
// point.
func commitmentPlot(r *CommitmentReport) (*plot.Plot, error) {
	p := svgplot.New()
	p.Title.Text = "Commitment across branches"
	p.Y.Label.Text = "fraction (entropy / max entropy)"
	w := vg.Points(18)
	norm := r.MaxEntropy
	if norm == 0 {
		norm = 1
	}
	series := []struct {
		name string
		get  func(CommitPointResult) float64
		col  color.RGBA
	}{
		{"answer agreement", func(c CommitPointResult) float64 { return c.Agreement.Estimate }, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}},
		{"jointly consistent", func(c CommitPointResult) float64 { return c.JointConsistency.Estimate }, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}},
		{"reveal entropy / max", func(c CommitPointResult) float64 { return c.RevealEntropy.Estimate / norm }, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}},
	}
	var names []string
	for _, pt := range r.ByPoint {
		name := fmt.Sprintf("after q%d", pt.At)
		if pt.Agreement.N == 0 {
			name += " (no answer scored)"
		}
		names = append(names, name)
	}
	for i, sr := range series {
		vals := make(plotter.Values, len(r.ByPoint))
		for j, pt := range r.ByPoint {
			vals[j] = sr.get(pt)
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, err
		}
		bars.Color, bars.LineStyle.Width, bars.Offset = sr.col, 0, w*vg.Length(i-1)
		p.Add(bars)
		p.Legend.Add(sr.name, bars)
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.6, float64(len(names)-1)+0.6
	p.Y.Min, p.Y.Max = 0, 1
	legendRoom(p)
	return p, nil
}
