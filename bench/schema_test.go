package bench

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"tether/consistency"
)

// TestSchemaValidatesReports: a report produced by the types validates (also one with
// consistency judgements and without capability); broken ones do not, with the reason.
func TestSchemaValidatesReports(t *testing.T) {
	r := syntheticDriftReport(t)
	data, err := json.Marshal(withEmptyLists(r))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateDriftReportJSON(data); err != nil {
		t.Fatalf("synthetic report: %v", err)
	}
	r2 := syntheticDriftReport(t)
	r2.Capability = nil
	one := 1.0
	r2.Turns[0].Diagnostics = []consistency.Answer{{Turn: 0, Question: "Who are you?", Text: "An assistant."}}
	r2.Turns[0].Consistency = []consistency.Judgement{
		{Metric: consistency.PromptToLine, Turn: 0, Against: consistency.AgainstPrompt, Reply: "YES", Score: &one},
		{Metric: consistency.QA, Turn: 0, Against: consistency.AgainstPrompt, Question: "Who are you?", Reply: "hm", Score: nil},
	}
	var err2 error
	if r2.Consistency, err2 = DriftConsistency(r2.Turns); err2 != nil {
		t.Fatal(err2)
	}
	r2.Settings.SimulatedUser, r2.Settings.Judge = "judge-model", "judge-model"
	r2.Settings.JudgePrompts, r2.Settings.ConsistencyPersona, r2.Settings.QATurns = "built-in", DriftPersona, []int{0}
	data2, err := json.Marshal(r2)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateDriftReportJSON(data2); err != nil {
		t.Errorf("report with consistency, without capability: %v", err)
	}

	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
		want   string // part of the error (the offending location or keyword)
	}{
		{"missing settings", func(m map[string]any) { delete(m, "settings") }, "settings"},
		{"wrong format", func(m map[string]any) { m["format"] = "tether-drift/0" }, "format"},
		{"unknown field", func(m map[string]any) { m["bogus"] = 1 }, "bogus"},
		{"bad arm", func(m map[string]any) { turn(m, 0)["arm"] = "sideways" }, "/turns/0/arm"},
		{"negative seed", func(m map[string]any) { turn(m, 0)["seed"] = -1 }, "/turns/0/seed"},
		{"cap fraction above 1", func(m map[string]any) { turn(m, 1)["cap_fraction"] = 1.5 }, "/turns/1/cap_fraction"},
		{"fractional turn", func(m map[string]any) { turn(m, 0)["turn"] = 0.5 }, "/turns/0/turn"},
		{"consistency score 2", func(m map[string]any) { turn(m, 0)["consistency"].([]any)[0].(map[string]any)["score"] = 2 }, "/turns/0/consistency/0/score"},
		{"consistency mean above 1", func(m map[string]any) {
			m["consistency"].(map[string]any)["overall"].([]any)[0].(map[string]any)["mean"] = 1.5
		}, "/consistency/overall/0/mean"},
		{"unknown metric", func(m map[string]any) {
			m["consistency"].(map[string]any)["by_turn"].([]any)[0].(map[string]any)["metric"] = "vibes"
		}, "/consistency/by_turn/0/metric"},
		{"projection as text", func(m map[string]any) { turn(m, 0)["projection"] = "high" }, "/turns/0/projection"},
		{"icc above 1", func(m map[string]any) { m["variance"].([]any)[0].(map[string]any)["icc"] = 1.2 }, "/variance/0/icc"},
		{"negative variance", func(m map[string]any) { m["variance"].([]any)[1].(map[string]any)["run_to_run"] = -0.1 }, "/variance/1/run_to_run"},
		{"created not a date", func(m map[string]any) { m["created"] = "yesterday" }, "/created"},
		{"held as string", func(m map[string]any) { m["cap_check"].(map[string]any)["held"] = "yes" }, "/cap_check/held"},
		{"capability perplexity below 1", func(m map[string]any) {
			m["capability"] = map[string]any{"perplexity_uncapped": 0.5, "perplexity_capped": 2, "perplexity_relative_change": 3,
				"held_out_tokens": 10, "exact_match_uncapped": 0, "exact_match_capped": 0, "exact_match_relative_change": 0,
				"questions": 1, "exact_match_absolute_change": 0}
		}, "/capability/perplexity_uncapped"},
		{"scenario without id", func(m map[string]any) { delete(m["scenarios"].([]any)[0].(map[string]any), "id") }, "/scenarios/0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(data2, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			broken, _ := json.Marshal(m)
			err := ValidateDriftReportJSON(broken)
			if err == nil {
				t.Fatal("broken report validates")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
	if err := ValidateDriftReportJSON([]byte("{")); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("not JSON: %v", err)
	}
	if data, _ := json.Marshal(DriftReport{}); ValidateDriftReportJSON(data) == nil {
		t.Error("zero report validates")
	}
}

// turn returns the i-th turn record of a decoded report.
func turn(m map[string]any, i int) map[string]any {
	return m["turns"].([]any)[i].(map[string]any)
}

// TestSchemaMatchesTypes: every JSON field of the report types has a property in the
// schema and vice versa, and "required" lists exactly the fields without omitempty.
func TestSchemaMatchesTypes(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(DriftReportSchema, &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	for _, tc := range []struct {
		typ reflect.Type
		def map[string]any
	}{
		{reflect.TypeFor[DriftReport](), schema},
		{reflect.TypeFor[DriftSettings](), defs["settings"].(map[string]any)},
		{reflect.TypeFor[ScenarioInfo](), defs["scenario"].(map[string]any)},
		{reflect.TypeFor[TurnRecord](), defs["turn"].(map[string]any)},
		{reflect.TypeFor[consistency.Judgement](), defs["judgement"].(map[string]any)},
		{reflect.TypeFor[consistency.Answer](), defs["diagnostic_answer"].(map[string]any)},
		{reflect.TypeFor[consistency.Cell](), defs["consistency_cell"].(map[string]any)},
		{reflect.TypeFor[consistency.Summary](), defs["consistency_summary"].(map[string]any)},
		{reflect.TypeFor[TurnSummary](), defs["summary"].(map[string]any)},
		{reflect.TypeFor[VarianceResult](), defs["variance"].(map[string]any)},
		{reflect.TypeFor[CapabilityResult](), defs["capability"].(map[string]any)},
		{reflect.TypeFor[CapabilityItem](), defs["capability_item"].(map[string]any)},
		{reflect.TypeFor[CapCheck](), defs["cap_check"].(map[string]any)},
	} {
		var fields, required []string
		for f := range tc.typ.Fields() {
			tag := strings.Split(f.Tag.Get("json"), ",")
			if tag[0] == "" || tag[0] == "-" {
				t.Errorf("%s.%s: no json name", tc.typ.Name(), f.Name)
				continue
			}
			fields = append(fields, tag[0])
			if !slices.Contains(tag[1:], "omitempty") {
				required = append(required, tag[0])
			}
		}
		var props []string
		for p := range tc.def["properties"].(map[string]any) {
			props = append(props, p)
		}
		var req []string
		for _, r := range tc.def["required"].([]any) {
			req = append(req, r.(string))
		}
		slices.Sort(fields)
		slices.Sort(props)
		slices.Sort(required)
		slices.Sort(req)
		if !slices.Equal(fields, props) {
			t.Errorf("%s: Go fields %v, schema properties %v (update bench/schema/drift-report.schema.json)", tc.typ.Name(), fields, props)
		}
		if !slices.Equal(required, req) {
			t.Errorf("%s: fields without omitempty %v, schema required %v", tc.typ.Name(), required, req)
		}
		if tc.def["additionalProperties"] != false {
			t.Errorf("%s: schema allows additional properties", tc.typ.Name())
		}
	}
}
