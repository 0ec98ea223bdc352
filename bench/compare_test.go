package bench

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tether/consistency"
)

// plantedDriftReport is a drift report of model with exact-match capability em and planted
// overall prompt-to-line consistency cells for both arms (uncapped: mean p2l with interval
// [p2l-0.05, p2l+0.05], 40 judgements, 3 unparseable; capped: 0.5).
func plantedDriftReport(t *testing.T, model string, em, p2l float64) *DriftReport {
	r := syntheticDriftReport(t)
	r.Model = model
	r.Capability.ExactUncapped = em
	cell := func(arm string, m, lo, hi float64) consistency.Cell {
		return consistency.Cell{Arm: arm, Metric: consistency.PromptToLine, Mean: &m, Low: &lo, High: &hi, N: 40, Unparseable: 3, Conversations: 8}
	}
	r.Consistency = &consistency.Summary{Method: consistency.Method, Bootstrap: 100, Level: 0.95,
		Overall:   []consistency.Cell{cell(ArmUncapped, p2l, p2l-0.05, p2l+0.05), cell(ArmCapped, 0.5, 0.4, 0.6)},
		ByTurn:    []consistency.Cell{},
		ByPersona: []consistency.Cell{}}
	return r
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCompareReports: two models' drift reports, a variance report of the second, a commitment
// report of the first (its model an object with a name) and a report
// of a kind compare does not read give one row per model with the planted numbers in the
// table, the capped arm's values in compare.json only, the skipped report noted, and the
// capability-vs-consistency finding computed from the planted values.
func TestCompareReports(t *testing.T) {
	dir := t.TempDir()
	small := writeJSON(t, filepath.Join(dir, "small.json"), withEmptyLists(plantedDriftReport(t, "small-model", 0.5, 0.8)))
	big := writeJSON(t, filepath.Join(dir, "big.json"), withEmptyLists(plantedDriftReport(t, "big-model", 0.9, 0.82)))
	variance := writeJSON(t, filepath.Join(dir, "variance.json"), map[string]any{
		"format": "tether-variance-report/1", "model": "big-model",
		"representations": []any{
			map[string]any{"name": "activation", "ratio": map[string]any{"estimate": 1.5, "low": 1.2, "high": 1.9}, "finding": "supported"},
			map[string]any{"name": "questionnaire", "ratio": map[string]any{"estimate": 0.7, "low": 0.4, "high": 1.1}, "finding": "inconclusive"},
		},
	})
	commitment := writeJSON(t, filepath.Join(dir, "commitment.json"), map[string]any{
		"format": CommitmentReportFormat, "model": map[string]any{"name": "small-model", "dir": "/m"},
		"agreement":         map[string]any{"estimate": 0.625, "low": 0.5, "high": 0.75, "n": 12},
		"joint_consistency": map[string]any{"estimate": 0.25, "low": 0.125, "high": 0.375, "n": 12},
	})
	other := writeJSON(t, filepath.Join(dir, "other.json"), map[string]any{"format": "tether-persona-run/1", "model": "x"})
	c, err := CompareReports([]string{small, big, variance, commitment, other}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rows) != 2 || c.Rows[0].Model != "small-model" || c.Rows[1].Model != "big-model" || len(c.Rows[1].Reports) != 2 {
		t.Fatalf("rows %+v", c.Rows)
	}
	if len(c.Skipped) != 1 || c.Skipped[0].Path != other || !strings.Contains(c.Skipped[0].Note, "tether-persona-run/1") {
		t.Errorf("skipped %+v", c.Skipped)
	}
	md := RenderCompareMarkdown(c)
	lines := strings.Split(md, "\n")
	header := lines[2]
	for _, col := range []string{"exact match", "perplexity", "prompt-to-line, uncapped", "variance ratio (projection, uncapped)", "variance ratio (activation)", "variance ratio (questionnaire)", "commitment agreement", "commitment joint consistency"} {
		if !strings.Contains(header, "| "+col+" |") {
			t.Errorf("table header %q lacks column %q", header, col)
		}
	}
	if strings.Contains(header, "capped |") && strings.Contains(header, "prompt-to-line, capped") {
		t.Errorf("capped arm in the table header: %q", header)
	}
	wantRows := map[string][]string{
		"small-model": {"| 0.5 |", "| 12.5 |", "| 0.8 [0.75, 0.85] (3 unparseable) |", "| — |", "| 0.625 [0.5, 0.75] |", "| 0.25 [0.125, 0.375] |"},
		"big-model":   {"| 0.9 |", "| 0.82 [0.77, 0.87] (3 unparseable) |", "| 1.5 [1.2, 1.9] supported |", "| 0.7 [0.4, 1.1] inconclusive |"},
	}
	for model, cells := range wantRows {
		var row string
		for _, l := range lines {
			if strings.HasPrefix(l, "| "+model+" |") {
				row = l
			}
		}
		for _, cell := range cells {
			if !strings.Contains(row, cell) {
				t.Errorf("row of %s %q lacks %q", model, row, cell)
			}
		}
	}
	// +2.5% = 0.82/0.8 - 1.
	if len(c.Findings) != 1 || !strings.Contains(c.Findings[0], "big-model (exact match 0.9)") || !strings.Contains(c.Findings[0], "relative change +2.5%") {
		t.Errorf("findings %q", c.Findings)
	}
	capped := 0
	for _, v := range c.Rows[0].Values {
		if v.Name == "prompt-to-line, capped" {
			capped++
			if v.Table || *v.Estimate != 0.5 || v.Report != small || v.Kind != KindDrift {
				t.Errorf("capped value %+v", v)
			}
		}
	}
	if capped != 1 {
		t.Errorf("%d capped prompt-to-line values in compare.json, want 1", capped)
	}
	out := filepath.Join(dir, "out")
	if err := WriteComparison(out, c); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CompareJSONFile, CompareMDFile, ComparePlotFile} {
		data, err := os.ReadFile(filepath.Join(out, f))
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: %v", f, err)
		}
		if f == ComparePlotFile && (!strings.Contains(string(data), "big-model (EM 0.90)") || !strings.Contains(string(data), "prompt-to-line, uncapped")) {
			t.Error("plot lacks the model's label or the series legend")
		}
	}
}

// TestCompareBadInputs: every bad input is an error naming the file (and the field).
func TestCompareBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := writeJSON(t, filepath.Join(dir, "good.json"), withEmptyLists(plantedDriftReport(t, "m", 0.5, 0.8)))
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	broken := plantedDriftReport(t, "m", 0.5, 0.8)
	broken.Format = "tether-drift/0"
	for _, c := range []struct {
		name  string
		paths []string
		want  []string
	}{
		{"missing", []string{good, filepath.Join(dir, "nope.json")}, []string{"nope.json", "no such report file"}},
		{"malformed", []string{write("bad.json", `{"format": "tether-drift/2",`)}, []string{"bad.json", "not a JSON report object"}},
		{"not an object", []string{write("list.json", `[1, 2]`)}, []string{"list.json", "not a JSON report object"}},
		{"wrong kind", []string{write("kind.json", `{"format": "llama-bench", "model": "m"}`)}, []string{"kind.json", `field "format"`, `the string "llama-bench"`}},
		{"no format", []string{write("noformat.json", `{"model": "m"}`)}, []string{"noformat.json", `field "format"`, "got nothing"}},
		{"only skipped kinds", []string{write("skip.json", `{"format": "tether-persona-run/1"}`)}, []string{"none of the 1 files", "tether-persona-run/1"}},
		{"schema violation", []string{write("schema.json", strings.Replace(readString(t, good), `"held":true`, `"held":"yes"`, 1))}, []string{"schema.json", "/cap_check/held"}},
		{"no model", []string{write("nomodel.json", `{"format": "tether-variance-report/1", "representations": []}`)}, []string{"nomodel.json", `field "model"`}},
		{"wrong field type", []string{write("type.json", `{"format": "tether-variance-report/1", "model": "m", "representations": [{"name": "text", "ratio": {"estimate": "big"}}]}`)}, []string{"type.json", `"representations[0].ratio.estimate"`, "expected a number"}},
		{"commitment model object without name", []string{write("commit.json", `{"format": "tether-commitment-report/1", "model": {"dir": "/m"}}`)}, []string{"commit.json", `field "model"`}},
		{"none", nil, []string{"no report given"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := CompareReports(c.paths, time.Now())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCompareUnscoredCommitment: a commitment report in which no question could be scored
// (n 0, as a story model gives) shows no number in the table, not a measured 0.
func TestCompareUnscoredCommitment(t *testing.T) {
	dir := t.TempDir()
	path := writeJSON(t, filepath.Join(dir, "commitment.json"), map[string]any{
		"format": CommitmentReportFormat, "model": map[string]any{"name": "story-model"},
		"agreement":         map[string]any{"estimate": 0, "low": 0, "high": 0, "n": 0},
		"joint_consistency": map[string]any{"estimate": 0, "low": 0, "high": 0, "n": 0},
	})
	c, err := CompareReports([]string{path}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	md := RenderCompareMarkdown(c)
	if strings.Contains(md, "0 [0, 0]") {
		t.Fatalf("an unscored commitment report shows a measured 0:\n%s", md)
	}
	for _, v := range c.Rows[0].Values {
		if v.Measure == CompareCommitment && v.Estimate != nil {
			t.Errorf("%s: estimate %v from no scored question", v.Name, *v.Estimate)
		}
	}
}
