package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"tether/internal/atomicfile"
)

// Report file names written by WriteReport.
const (
	ReportJSON     = "report.json"
	ReportMarkdown = "report.md"
)

// WriteReport writes report.json (atomically: a temporary file renamed),
// report.md and the SVG plots into dir, all from r. It then validates
// report.json against the schema and returns the violation, if any (the
// files are kept, so that no run is lost to a bug in the report).
func WriteReport(dir string, r *DriftReport) error {
	if r == nil {
		return fmt.Errorf("bench: write report %s: nil report", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	n := withEmptyLists(r)
	data, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: write report %s: %w", filepath.Join(dir, ReportJSON), err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(filepath.Join(dir, ReportJSON), data); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportMarkdown), []byte(RenderMarkdown(n))); err != nil {
		return err
	}
	if err := RenderPlots(n, dir); err != nil {
		return err
	}
	if err := ValidateDriftReportJSON(data); err != nil {
		return fmt.Errorf("bench: write report %s: %w", filepath.Join(dir, ReportJSON), err)
	}
	return nil
}

// withEmptyLists returns a shallow copy of r whose nil lists are empty, so
// that report.json holds [] rather than null.
func withEmptyLists(r *DriftReport) *DriftReport {
	n := *r
	if n.Scenarios == nil {
		n.Scenarios = []ScenarioInfo{}
	}
	if n.Turns == nil {
		n.Turns = []TurnRecord{}
	}
	if n.Summary == nil {
		n.Summary = []TurnSummary{}
	}
	if n.Variance == nil {
		n.Variance = []VarianceResult{}
	}
	if n.Findings == nil {
		n.Findings = []string{}
	}
	if n.Settings.Seeds == nil {
		n.Settings.Seeds = []uint64{}
	}
	if n.Settings.CapLayers == nil {
		n.Settings.CapLayers = []int{}
	}
	if n.Settings.CapTaus == nil {
		n.Settings.CapTaus = []float32{}
	}
	return &n
}

// writeFileAtomic writes data to path atomically (atomicfile.Write).
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
