package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchCompare: the command prints the table of two models' variance reports, writes
// compare.json, compare.md and compare.svg with --out, and names the file of a bad report.
func TestBenchCompare(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.json", `{"format": "tether-variance-report/1", "model": "model-a", "representations": [{"name": "text", "ratio": {"estimate": 2, "low": 1.5, "high": 2.5}, "finding": "supported"}]}`)
	b := write("b.json", `{"format": "tether-variance-report/1", "model": "model-b", "representations": [{"name": "text", "ratio": {"estimate": 0.25, "low": 0.125, "high": 0.5}, "finding": "not supported"}]}`)
	out := filepath.Join(dir, "cmp")
	stdout, _, err := captureOutput(t, func() error { return dispatch([]string{"bench", "compare", a, b, "--out", out}) })
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"| model | variance ratio (text) |", "| model-a | 2 [1.5, 2.5] supported |", "| model-b | 0.25 [0.125, 0.5] not supported |"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("printed %q, want %q in it", stdout, w)
		}
	}
	for _, f := range []string{"compare.json", "compare.md", "compare.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	bad := write("bad.json", "{")
	if err := dispatch([]string{"bench", "compare", a, bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("malformed report: error %v, want one naming %s", err, bad)
	}
	if err := dispatch([]string{"bench", "compare"}); err == nil || !strings.Contains(err.Error(), "give the report.json files") {
		t.Errorf("no reports: error %v", err)
	}
}
