package bench

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// RenderMarkdown renders report.md from the report alone: settings,
// findings, per domain and arm the mean projection per turn with drift,
// cap fraction and response length, the variance decomposition, the
// consistency metrics, the capability deltas, the cap check and the scenarios.
func RenderMarkdown(r *DriftReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Drift benchmark: %s\n\n", mdCell(r.Model))
	renderSettings(&b, r)
	b.WriteString("## Findings\n\n")
	if len(r.Findings) == 0 {
		b.WriteString("No findings were recorded.\n\n")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}
	if len(r.Findings) > 0 {
		b.WriteString("\n")
	}
	renderProjections(&b, r)
	renderVariance(&b, r)
	renderConsistency(&b, r)
	renderCapability(&b, r)
	renderCapCheck(&b, r)
	renderScenarios(&b, r)
	return b.String()
}

// renderSettings writes the run's settings as a two-column table.
func renderSettings(b *strings.Builder, r *DriftReport) {
	s := r.Settings
	rows := [][2]string{
		{"model", r.Model}, {"model directory", r.ModelDir}, {"axis", r.Axis}, {"axis model", r.AxisModel},
		{"seeds", joinNumbers(s.Seeds)}, {"user turns", strconv.Itoa(s.Turns)},
		{"max new tokens", strconv.Itoa(s.MaxTokens)}, {"temperature", fmtFloat(s.Temperature)}, {"top-p", fmtFloat(s.TopP)},
		{"capped layers", joinNumbers(s.CapLayers)}, {"cap percentile", fmtFloat(s.CapPercentile)},
		{"cap tau per layer", joinNumbers(s.CapTaus)}, {"projection layer", strconv.Itoa(s.ProjectionLayer)},
		{"simulated user", orNone(s.SimulatedUser)}, {"judge", orNone(s.Judge)},
		{"judge prompts", orNone(s.JudgePrompts)}, {"diagnostic questions after turns", qaTurnsText(s)}, {"backend", s.Backend},
		{"scenarios", strconv.Itoa(len(r.Scenarios))}, {"created", r.Created}, {"format", r.Format},
	}
	b.WriteString("| setting | value |\n|---|---|\n")
	for _, row := range rows {
		fmt.Fprintf(b, "| %s | %s |\n", row[0], mdCell(row[1]))
	}
	b.WriteString("\n")
}

// renderProjections writes one table per domain: per turn, each arm's mean
// projection (+- sd across seeds and scenarios), drift, cap fraction and
// response length.
func renderProjections(b *strings.Builder, r *DriftReport) {
	b.WriteString("## Projection per turn\n\n")
	b.WriteString("Mean projection of the assistant turn on the axis at the projection layer " +
		"(+- one standard deviation across seeds and scenarios), drift from turn 0, " +
		"fraction of (token, capped layer) pairs where the cap acted, and mean response tokens.\n\n")
	if len(r.Summary) == 0 {
		b.WriteString("No turns were summarised.\n\n")
		return
	}
	for _, domain := range summaryDomains(r.Summary) {
		fmt.Fprintf(b, "### %s\n\n", mdCell(domain))
		b.WriteString("| turn | uncapped projection | capped projection | uncapped drift | capped drift | capped cap fraction | uncapped tokens | capped tokens |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|\n")
		rows := summaryByTurn(r.Summary, domain)
		for _, turn := range slices.Sorted(maps.Keys(rows)) {
			u, c := rows[turn][ArmUncapped], rows[turn][ArmCapped]
			fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", turn,
				meanSD(u), meanSD(c), field(u, func(s TurnSummary) string { return fmtSigned(s.MeanDrift) }),
				field(c, func(s TurnSummary) string { return fmtSigned(s.MeanDrift) }),
				field(c, func(s TurnSummary) string { return fmtFloat(s.MeanCapFrac) }),
				field(u, func(s TurnSummary) string { return fmtTokens(s.MeanTokens) }),
				field(c, func(s TurnSummary) string { return fmtTokens(s.MeanTokens) }))
		}
		b.WriteString("\n")
	}
}

// renderVariance writes the variance decomposition per arm.
func renderVariance(b *strings.Builder, r *DriftReport) {
	b.WriteString("## Variance decomposition\n\n")
	if len(r.Variance) == 0 {
		b.WriteString("No variance decomposition was computed.\n\n")
		return
	}
	b.WriteString("For the same scenario and turn: run-to-run variance across seeds against the variance " +
		"between scenarios and between personas. A ratio >= 1 means run-to-run noise matches or exceeds " +
		"the differences between personas.\n\n")
	b.WriteString("| arm | run-to-run | between scenario | between persona | run-to-run / persona | ICC (groups = personas) | bootstrap interval | resamples | personas | scenarios | records |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, v := range r.Variance {
		ratio := fmtFloat(v.RatioRunToPersona)
		if v.RatioUndefined {
			ratio = "undefined (between persona is 0)"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | [%s, %s] | %d | %d | %d | %d |\n", v.Arm,
			fmtFloat(v.RunToRun), fmtFloat(v.BetweenScenario), fmtFloat(v.BetweenPersona), ratio,
			fmtFloat(v.ICC), fmtFloat(v.ICCLow), fmtFloat(v.ICCHigh), v.Bootstrap, v.Personas, v.Scenarios, v.Records)
	}
	same := true
	for _, v := range r.Variance {
		same = same && v.Method == r.Variance[0].Method
	}
	if same {
		fmt.Fprintf(b, "\nMethod: %s.\n\n", r.Variance[0].Method)
		return
	}
	b.WriteString("\n")
	for _, v := range r.Variance {
		fmt.Fprintf(b, "Method (%s): %s.\n\n", v.Arm, v.Method)
	}
}

// renderCapability writes the capability comparison.
func renderCapability(b *strings.Builder, r *DriftReport) {
	b.WriteString("## Capability under capping\n\n")
	c := r.Capability
	if c == nil {
		b.WriteString("Capability was not measured.\n\n")
		return
	}
	b.WriteString("| metric | uncapped | capped | relative change |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| perplexity on held-out text (%d tokens; lower is better) | %s | %s | %s |\n",
		c.HeldOutTokens, fmtFloat(c.PerplexityUncapped), fmtFloat(c.PerplexityCapped), fmtPercent(c.PerplexityRelative))
	fmt.Fprintf(b, "| exact-match accuracy (%d questions) | %s | %s | %s (%s points) |\n\n",
		c.Questions, fmtFloat(c.ExactUncapped), fmtFloat(c.ExactCapped), fmtPercent(c.ExactRelative), fmtSigned(100*c.ExactAbsolute))
	var changed []string
	for _, it := range c.Items {
		if it.UncappedCorrect != it.CappedCorrect {
			changed = append(changed, fmt.Sprintf("| %s | %s | %s | %s | %s |", mdCell(it.ID), mdCell(firstLine(it.Uncapped)),
				yesNo(it.UncappedCorrect), mdCell(firstLine(it.Capped)), yesNo(it.CappedCorrect)))
		}
	}
	if len(changed) > 0 {
		b.WriteString("Questions whose correctness changed under capping:\n\n")
		b.WriteString("| question | uncapped answer | correct | capped answer | correct |\n|---|---|---|---|---|\n")
		b.WriteString(strings.Join(changed, "\n") + "\n\n")
	}
}

// renderCapCheck writes whether the cap held.
func renderCapCheck(b *strings.Builder, r *DriftReport) {
	c := r.CapCheck
	b.WriteString("## Cap check\n\n")
	held := "no"
	if c.Held {
		held = "yes"
	}
	b.WriteString("| (token, capped layer) pairs | violations | min margin (after - tau) | held |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| %d | %d | %s | %s |\n\n", c.Tokens, c.Violations, fmtSigned(c.MinMargin), held)
}

// renderScenarios lists the scenarios.
func renderScenarios(b *strings.Builder, r *DriftReport) {
	if len(r.Scenarios) == 0 {
		return
	}
	b.WriteString("## Scenarios\n\n| id | domain | persona | topic | turns |\n|---|---|---|---|---|\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %d |\n", mdCell(s.ID), mdCell(s.Domain), mdCell(s.Persona), mdCell(s.Topic), s.Turns)
	}
	b.WriteString("\n")
}

// summaryDomains lists the domains of the summary, the built-in ones first
// in their usual order, then the others sorted.
func summaryDomains(rows []TurnSummary) []string {
	seen := map[string]bool{}
	for _, s := range rows {
		seen[s.Domain] = true
	}
	var out []string
	for _, d := range []string{DomainCoding, DomainWriting, DomainEmotional, DomainPhilosophical} {
		if seen[d] {
			out = append(out, d)
			delete(seen, d)
		}
	}
	rest := make([]string, 0, len(seen))
	for d := range seen {
		rest = append(rest, d)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// summaryByTurn indexes one domain's summary rows by turn and arm.
func summaryByTurn(rows []TurnSummary, domain string) map[int]map[string]*TurnSummary {
	out := map[int]map[string]*TurnSummary{}
	for i := range rows {
		s := &rows[i]
		if s.Domain != domain {
			continue
		}
		if out[s.Turn] == nil {
			out[s.Turn] = map[string]*TurnSummary{}
		}
		out[s.Turn][s.Arm] = s
	}
	return out
}

// meanSD formats "mean +- sd" or "-" for a missing row.
func meanSD(s *TurnSummary) string {
	if s == nil {
		return "-"
	}
	return fmtFloat(s.MeanProjection) + " +- " + fmtFloat(s.StdProjection)
}

// field formats one value of a row, or "-" for a missing row.
func field(s *TurnSummary, f func(TurnSummary) string) string {
	if s == nil {
		return "-"
	}
	return f(*s)
}

// fmtFloat formats a number with 4 decimals (the precision of every
// number in report.md).
func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }

// fmtSigned is fmtFloat with an explicit sign.
func fmtSigned(v float64) string {
	if v >= 0 {
		return "+" + fmtFloat(v)
	}
	return fmtFloat(v)
}

// fmtPercent formats a relative change as a signed percentage.
func fmtPercent(v float64) string { return fmt.Sprintf("%+.2f%%", 100*v) }

// fmtTokens formats a mean token count with one decimal.
func fmtTokens(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// joinNumbers formats a list of numbers separated by commas ("none" when empty).
func joinNumbers[T int | uint64 | float32](xs []T) string {
	if len(xs) == 0 {
		return "none"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		switch v := any(x).(type) {
		case float32:
			parts[i] = fmtFloat(float64(v))
		default:
			parts[i] = fmt.Sprint(v)
		}
	}
	return strings.Join(parts, ", ")
}

// orNone is s or "none" when empty.
func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// yesNo formats a boolean for a table.
func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

// firstLine is the first non-empty line of s, at most 80 characters.
func firstLine(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			if r := []rune(l); len(r) > 80 {
				return string(r[:80]) + "..."
			}
			return l
		}
	}
	return ""
}

// mdCell escapes text for a markdown table cell (pipes and line breaks).
func mdCell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}

// qaTurnsText words the turns after which the diagnostic questions were asked.
func qaTurnsText(s DriftSettings) string {
	switch {
	case s.Judge == "":
		return "none"
	case s.QATurns == nil:
		return "first, middle and last"
	}
	return joinNumbers(s.QATurns)
}
