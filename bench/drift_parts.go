package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
)

// driftVariance decomposes the projections of each arm (part A's code).
func driftVariance(recs []TurnRecord) ([]VarianceResult, error) {
	return nil, nil
}

// capability compares capped with uncapped on held-out text and questions
// (part A's code).
func (r *driftRunner) capability(ctx context.Context) (*CapabilityResult, error) {
	return nil, nil
}

// writeDriftReport writes report.json, report.md and the plots (part A's code).
func writeDriftReport(dir string, rep *DriftReport) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("bench: drift: report.json: %w", err)
	}
	return writeFileSync(filepath.Join(dir, "report.json"), append(b, '\n'))
}
