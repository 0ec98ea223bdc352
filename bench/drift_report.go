package bench

import "tether/consistency"

// DriftReportFormat identifies the report.json layout written by the drift
// benchmark; bump it when a field changes meaning.
const DriftReportFormat = "tether-drift/2"

// Arm names: the two conditions every scenario and seed runs under.
const (
	ArmUncapped = "uncapped"
	ArmCapped   = "capped"
)

// DriftReport is report.json of `tether bench drift`: every number, the
// settings, the model and axis ids and the seeds. report.md and the SVG plots
// are generated from it alone (see the schema in bench/schema/).
type DriftReport struct {
	Format    string         `json:"format"`
	Model     string         `json:"model"`
	ModelDir  string         `json:"model_dir"`
	Axis      string         `json:"axis"`       // path of the axis file
	AxisModel string         `json:"axis_model"` // model id recorded in the axis file
	Settings  DriftSettings  `json:"settings"`
	Scenarios []ScenarioInfo `json:"scenarios"`
	// Turns holds one record per (scenario, arm, seed, turn): the raw data.
	Turns []TurnRecord `json:"turns"`
	// Summary aggregates Turns per arm, domain and turn index.
	Summary []TurnSummary `json:"summary"`
	// Variance decomposes the projections per arm.
	Variance []VarianceResult `json:"variance"`
	// Capability compares capped with uncapped on held-out text and questions.
	Capability *CapabilityResult `json:"capability,omitempty"`
	// Consistency aggregates the judge's consistency metrics per arm, turn and
	// persona (the scenario's persona), with intervals (with a judge only).
	Consistency *consistency.Summary `json:"consistency,omitempty"`
	// CapCheck states whether the capped arm held projection >= tau at the
	// capped layers on every generated token.
	CapCheck CapCheck `json:"cap_check"`
	// Findings are plain-language statements derived from the numbers above.
	Findings []string `json:"findings"`
	Created  string   `json:"created"` // RFC 3339
}

// DriftSettings are the knobs of a drift run.
type DriftSettings struct {
	Seeds           []uint64  `json:"seeds"`
	Turns           int       `json:"turns"` // user turns per conversation (scripted turns beyond are dropped)
	MaxTokens       int       `json:"max_tokens"`
	Temperature     float64   `json:"temperature"`
	TopP            float64   `json:"top_p"`
	CapLayers       []int     `json:"cap_layers"`
	CapPercentile   float64   `json:"cap_percentile,omitempty"`
	CapTaus         []float32 `json:"cap_taus"`         // per capped layer, as applied
	ProjectionLayer int       `json:"projection_layer"` // the axis layer projections are read at
	SimulatedUser   string    `json:"simulated_user,omitempty"`
	Judge           string    `json:"judge,omitempty"`
	// With a judge: where its prompts came from ("built-in" or a directory),
	// the sha256 of the prompt templates and questions used, the persona
	// prompt lines are judged against, the turns after which the diagnostic
	// questions were asked (none: the first, middle and last) and the
	// questions.
	JudgePrompts        string   `json:"judge_prompts,omitempty"`
	JudgePromptsSHA256  string   `json:"judge_prompts_sha256,omitempty"`
	ConsistencyPersona  string   `json:"consistency_persona,omitempty"`
	QATurns             []int    `json:"qa_turns,omitempty"`
	DiagnosticQuestions []string `json:"diagnostic_questions,omitempty"`
	Backend             string   `json:"backend"`
}

// ScenarioInfo describes one scripted conversation.
type ScenarioInfo struct {
	ID      string `json:"id"`
	Domain  string `json:"domain"` // coding, writing, emotional, philosophical, or a user's own
	Persona string `json:"persona"`
	Topic   string `json:"topic"`
	Turns   int    `json:"turns"`
}

// TurnRecord is one assistant turn of one conversation under one arm and seed.
type TurnRecord struct {
	Scenario string `json:"scenario"`
	Domain   string `json:"domain"`
	Persona  string `json:"persona"`
	Arm      string `json:"arm"`
	Seed     uint64 `json:"seed"`
	Turn     int    `json:"turn"` // 0-based
	// Projection is the mean over the assistant turn's tokens of <h, u> at
	// the projection layer (after any cap); Drift is Projection minus turn
	// 0's projection of the same scenario, arm and seed.
	Projection float64 `json:"projection"`
	Drift      float64 `json:"drift"`
	// CapFraction is the fraction of (token, capped layer) pairs where the
	// cap acted (0 in the uncapped arm).
	CapFraction float64 `json:"cap_fraction"`
	// CapPairs, CapViolations and CapMinMargin are this turn's share of
	// CapCheck: the (token, capped layer) pairs checked, those below tau,
	// and the smallest (after - tau) (0 when no pair was checked).
	CapPairs       int     `json:"cap_pairs,omitempty"`
	CapViolations  int     `json:"cap_violations,omitempty"`
	CapMinMargin   float64 `json:"cap_min_margin,omitempty"`
	ResponseTokens int     `json:"response_tokens"`
	// StopReason is why the turn's generation ended (engine.StopEOS,
	// StopString, StopLength or StopContext: the conversation filled the
	// model's context before MaxTokens); "" in runs made before it was
	// recorded.
	StopReason string `json:"stop_reason,omitempty"`
	User       string `json:"user"`
	Response   string `json:"response"`
	// Diagnostics are the answers to the diagnostic questions asked in a side
	// branch after this turn's line (with a judge, at the Q&A turns only).
	Diagnostics []consistency.Answer `json:"diagnostics,omitempty"`
	// Consistency holds the judge's verdicts on this turn: its line against
	// the persona prompt and the earlier lines, and its diagnostic answers
	// (with a judge only).
	Consistency []consistency.Judgement `json:"consistency,omitempty"`
}

// TurnSummary aggregates projections over seeds and scenarios.
type TurnSummary struct {
	Arm            string  `json:"arm"`
	Domain         string  `json:"domain"`
	Turn           int     `json:"turn"`
	N              int     `json:"n"`
	MeanProjection float64 `json:"mean_projection"`
	StdProjection  float64 `json:"std_projection"`
	MeanDrift      float64 `json:"mean_drift"`
	MeanCapFrac    float64 `json:"mean_cap_fraction"`
	MeanTokens     float64 `json:"mean_response_tokens"`
}

// VarianceResult decomposes the variance of projections for one arm: for the
// same scenario and turn, the variance across seeds (run-to-run) against the
// variance across scenarios and across personas.
type VarianceResult struct {
	Arm             string  `json:"arm"`
	RunToRun        float64 `json:"run_to_run"`
	BetweenScenario float64 `json:"between_scenario"`
	BetweenPersona  float64 `json:"between_persona"`
	// RatioRunToPersona = RunToRun / BetweenPersona (>= 1 means run-to-run
	// noise matches or exceeds the differences between personas).
	RatioRunToPersona float64 `json:"ratio_run_to_persona"`
	// ICC is the intraclass correlation of projections grouped by persona,
	// with a percentile bootstrap interval.
	ICC       float64 `json:"icc"`
	ICCLow    float64 `json:"icc_low"`
	ICCHigh   float64 `json:"icc_high"`
	Bootstrap int     `json:"bootstrap"`
	Method    string  `json:"method"` // how the components were estimated
	// RatioUndefined is set when BetweenPersona is 0 (RatioRunToPersona is
	// then reported as 0).
	RatioUndefined bool `json:"ratio_undefined,omitempty"`
	// Records, Personas and Scenarios count the data behind the estimates.
	Records   int `json:"records"`
	Personas  int `json:"personas"`
	Scenarios int `json:"scenarios"`
}

// CapabilityResult compares the arms on capability.
type CapabilityResult struct {
	PerplexityUncapped float64 `json:"perplexity_uncapped"`
	PerplexityCapped   float64 `json:"perplexity_capped"`
	PerplexityRelative float64 `json:"perplexity_relative_change"` // capped/uncapped - 1
	HeldOutTokens      int     `json:"held_out_tokens"`
	ExactUncapped      float64 `json:"exact_match_uncapped"`
	ExactCapped        float64 `json:"exact_match_capped"`
	ExactRelative      float64 `json:"exact_match_relative_change"` // 0 when uncapped is 0
	Questions          int     `json:"questions"`
	// ExactAbsolute is ExactCapped - ExactUncapped (defined when the
	// uncapped accuracy is 0).
	ExactAbsolute float64 `json:"exact_match_absolute_change"`
	// Items are the answers to each question in both arms.
	Items []CapabilityItem `json:"items,omitempty"`
}

// CapabilityItem is one question's answers in both arms.
type CapabilityItem struct {
	ID              string `json:"id"`
	Uncapped        string `json:"uncapped"`
	Capped          string `json:"capped"`
	UncappedCorrect bool   `json:"uncapped_correct"`
	CappedCorrect   bool   `json:"capped_correct"`
}

// CapCheck records how the capped arm's telemetry compares with tau.
type CapCheck struct {
	Tokens     int     `json:"tokens"`     // (token, capped layer) pairs checked
	Violations int     `json:"violations"` // pairs whose projection after the cap is below tau - capTolerance*max(|tau|, 1), capTolerance = 1e-4
	MinMargin  float64 `json:"min_margin"` // min over pairs of (after - tau)
	Held       bool    `json:"held"`
}
