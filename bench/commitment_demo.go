package bench

import (
	"context"
	"fmt"

	"tether/axis"
	"tether/model"
)

// DemoCommitment runs a small commitment game for `tether demo`: the first 3 built-in object
// questions, 3 openings, one branch point after the first question with 3 branches, replies of
// at most 6 tokens at temperature 1, the residual stream at the axis file's default layer; backend names the
// model's backend in the report. It
// writes the report into out (resuming a run there) and returns it.
func DemoCommitment(ctx context.Context, m *model.Model, backend, axisPath, out string, progress func(done, total int)) (*CommitmentReport, error) {
	ax, err := axis.Read(axisPath)
	if err != nil {
		return nil, fmt.Errorf("bench: demo commitment: %w", err)
	}
	layer, why := axis.DefaultLayer(ax)
	qs, err := BuiltinCommitmentQuestions(SubjectObject)
	if err != nil {
		return nil, err
	}
	ops, err := BuiltinCommitmentOpenings(SubjectObject)
	if err != nil {
		return nil, err
	}
	cfg, err := axis.ConfigSHA256(m.Dir)
	if err != nil {
		return nil, fmt.Errorf("bench: demo commitment: %w", err)
	}
	set := CommitmentSettings{Subject: SubjectObject, Questions: qs[:3], Openings: ops[:3], BranchAt: []int{1}, Branches: 3,
		Temperature: 1, TopP: 1, MaxTokens: 6, Layer: layer, LayerReason: why, Seed: 1}
	ans := &ModelAnswerer{M: m, Layer: layer, MaxTokens: set.MaxTokens, Temperature: set.Temperature, TopP: set.TopP}
	return RunCommitment(ctx, ans, CommitmentOptions{Out: out, Settings: set, Progress: progress,
		Model: CommitmentModel{Name: m.Name, Dir: m.Dir, ConfigSHA256: cfg, Backend: backend}})
}
