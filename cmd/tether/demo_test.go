package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tether/bench"
	"tether/internal/testmodels"
)

// TestDemoConsistencyAndCompare runs the demo's consistency step (2 personas with sparse
// anchors x 2 items x 2 seeds, judged by the model itself) and its comparison step on a tiny
// random chat model. The counts printed per metric must be those the method implies (every
// answer against its anchor; every answer after a seed's first against that seed's earlier
// ones; Q&A every answer against the anchor plus every pair of seeds per item), split into
// parseable and unparseable; the comparison table must have a row for the model, and its files
// must be written.
func TestDemoConsistencyAndCompare(t *testing.T) {
	m := testmodels.Open(t, writePersonaTestModel(t))
	dir := t.TempDir()
	var rep *bench.VarianceReport
	out, err := captureStdout(t, func() error {
		var err error
		rep, err = demoConsistency(t.Context(), m, filepath.Join(dir, "consistency"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	const personas, items, seeds = 2, 2, 2
	want := map[string]int{
		"prompt-to-line": personas * items * seeds,
		"line-to-line":   personas * seeds * (items - 1),
		"Q&A":            personas * (items*seeds + items*seeds*(seeds-1)/2),
	}
	for name, n := range want {
		re := regexp.MustCompile(regexp.QuoteMeta(name+":") + `\s+(\d+) parseable,\s+(\d+) unparseable verdicts`)
		mm := re.FindStringSubmatch(out)
		if mm == nil {
			t.Errorf("no counts for %s in:\n%s", name, out)
			continue
		}
		var p, u int
		fmt.Sscan(mm[1], &p)
		fmt.Sscan(mm[2], &u)
		if p+u != n {
			t.Errorf("%s: %d parseable + %d unparseable, want %d verdicts in all", name, p, u, n)
		}
	}
	for _, s := range []string{"anchor form sparse: consistency with the persona prompt", "mechanics", "not the science"} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	if rep.Answers != personas*items*seeds {
		t.Errorf("%d answers, want %d", rep.Answers, personas*items*seeds)
	}

	cmpDir := filepath.Join(dir, "compare")
	out, err = captureStdout(t, func() error {
		return demoCompare([]string{filepath.Join(dir, "consistency", bench.ReportJSON)}, cmpDir)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "| "+m.Name+" |") || !strings.Contains(out, "prompt-to-line, sparse") {
		t.Errorf("comparison table lacks a row for %s or the consistency column:\n%s", m.Name, out)
	}
	for _, f := range []string{bench.CompareJSONFile, bench.CompareMDFile, bench.ComparePlotFile} {
		if st, err := os.Stat(filepath.Join(cmpDir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}
