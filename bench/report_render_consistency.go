package bench

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"tether/consistency"
)

// renderConsistency writes the consistency metrics: per arm and metric the
// fraction of YES verdicts with its interval, judgement and unparseable
// counts; then the same per turn and per persona.
func renderConsistency(b *strings.Builder, r *DriftReport) {
	s := r.Consistency
	if s == nil {
		return
	}
	fmt.Fprintf(b, "## Consistency\n\nJudge %s, prompts %s; lines and diagnostic answers judged against the persona prompt %q. Value: fraction of verdicts YES (1 = always consistent, 0 = never) with a %g%% interval (%s, %d resamples); unparseable verdicts are counted, never scored.\n\n",
		mdCell(orNone(r.Settings.Judge)), mdCell(orNone(r.Settings.JudgePrompts)), r.Settings.ConsistencyPersona, 100*s.Level, s.Method, s.Bootstrap)
	b.WriteString("| arm | metric | consistency | parseable verdicts | unparseable | conversations |\n|---|---|---|---|---|---|\n")
	for _, c := range s.Overall {
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %d |\n", mdCell(c.Arm), metricName(c.Metric), fmtInterval(c), c.N, c.Unparseable, c.Conversations)
	}
	b.WriteString("\n### Consistency per turn\n\n")
	renderConsistencyCells(b, s.ByTurn, "turn", func(c consistency.Cell) string { return strconv.Itoa(*c.Turn) })
	b.WriteString("### Consistency per persona\n\n")
	renderConsistencyCells(b, s.ByPersona, "persona", func(c consistency.Cell) string { return c.Persona })
}

// renderConsistencyCells writes one row per key (a turn or a persona) and one
// column per (arm, metric): the value with its interval and, when any, the
// unparseable count.
func renderConsistencyCells(b *strings.Builder, cells []consistency.Cell, keyName string, key func(consistency.Cell) string) {
	var cols, rows []string
	val := map[[2]string]string{}
	for _, c := range cells {
		col := c.Arm + " " + metricName(c.Metric)
		if !slices.Contains(cols, col) {
			cols = append(cols, col)
		}
		k := key(c)
		if !slices.Contains(rows, k) {
			rows = append(rows, k)
		}
		v := fmtInterval(c)
		if c.Unparseable > 0 {
			v += fmt.Sprintf(" (%d unparseable)", c.Unparseable)
		}
		val[[2]string{k, col}] = v
	}
	fmt.Fprintf(b, "| %s | %s |\n|---|%s\n", keyName, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, k := range rows {
		cellsOut := make([]string, len(cols))
		for i, col := range cols {
			cellsOut[i] = orNone(val[[2]string{k, col}])
		}
		fmt.Fprintf(b, "| %s | %s |\n", mdCell(k), strings.Join(cellsOut, " | "))
	}
	b.WriteString("\n")
}
