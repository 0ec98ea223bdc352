package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// ReadReport reads a report.json written by WriteReport (for regenerating
// report.md and the plots from it alone).
func ReadReport(path string) (*DriftReport, error) {
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

// RegenerateReport rewrites report.md and the SVG plots of dir from its
// report.json alone (report.json itself is left as it is).
func RegenerateReport(dir string) error {
	r, err := ReadReport(filepath.Join(dir, ReportJSON))
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, ReportMarkdown), []byte(RenderMarkdown(r))); err != nil {
		return err
	}
	return RenderPlots(r, dir)
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

// writeFileAtomic writes data to a temporary file in path's directory,
// syncs it and renames it over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	merr := f.Chmod(0o644)
	serr := f.Sync()
	cerr := f.Close()
	if err := firstErr(werr, merr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bench: write %s: %w", path, err)
	}
	return nil
}

// firstErr returns the first non-nil error.
func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
