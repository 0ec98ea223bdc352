package bench

import (
	"context"

	"tether/axis"
	"tether/consistency"
	"tether/model"
	"tether/personas"
)

// DemoVariance runs a small persona variance benchmark for `tether demo`: the first 4 built-in
// personas in every anchor form that fits the context, the first 3 questionnaire items, 3
// seeds, answers of at most 8 tokens, the activation projected on the axis at its default
// layer, 200 bootstrap resamples. It writes the report into out (resuming a run there).
func DemoVariance(ctx context.Context, m *model.Model, axisPath, out string, warn func(string), progress func(done, total int)) (*VarianceReport, error) {
	ax, err := axis.Read(axisPath)
	if err != nil {
		return nil, err
	}
	ps, q, err := demoSubset(4, 3)
	if err != nil {
		return nil, err
	}
	return RunPersonaVariance(ctx, m, PersonaVarianceOptions{
		Out: out, Personas: ps, PersonasSource: personas.BuiltinFile, Questionnaire: q,
		Seeds: []uint64{1, 2, 3}, Temperature: DefaultVarianceTemperature, MaxTokens: 8, Layer: -1,
		Axis: ax, AxisPath: axisPath, Bootstrap: 200, Backend: m.Engine.Backend().Name(),
		Warn: warn, Progress: progress,
	})
}

// DemoConsistency runs the smallest persona variance benchmark that yields every consistency
// metric, for `tether demo`: the first 2 built-in personas in their sparse anchor form, the first
// 2 questionnaire items, 2 seeds, answers of at most 8 tokens, 200 bootstrap resamples, judged by
// the model itself (greedy, at most consistency.DefaultJudgeMaxTokens tokens per verdict). It
// writes the report into out (resuming a run there).
func DemoConsistency(ctx context.Context, m *model.Model, out string, progress func(done, total int)) (*VarianceReport, error) {
	ps, q, err := demoSubset(2, 2)
	if err != nil {
		return nil, err
	}
	return RunPersonaVariance(ctx, m, PersonaVarianceOptions{
		Out: out, Personas: ps, PersonasSource: personas.BuiltinFile, Questionnaire: q,
		Forms: []string{personas.Sparse}, Seeds: []uint64{1, 2}, Temperature: DefaultVarianceTemperature,
		MaxTokens: 8, Layer: -1, Bootstrap: 200, Backend: m.Engine.Backend().Name(),
		Judge: consistency.NewModelJudge(m, 0), JudgeName: consistency.JudgeSelf, Progress: progress,
	})
}

// demoSubset returns the first n built-in personas and the built-in questionnaire cut to its
// first items items.
func demoSubset(n, items int) ([]personas.Persona, *personas.Questionnaire, error) {
	set, err := personas.Builtin()
	if err != nil {
		return nil, nil, err
	}
	q, err := personas.BuiltinQuestionnaire()
	if err != nil {
		return nil, nil, err
	}
	q.Items = q.Items[:items]
	return set.Personas[:n], q, nil
}
