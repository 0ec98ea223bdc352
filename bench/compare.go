package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// CompareFormat identifies compare.json, written by `tether bench compare`.
const CompareFormat = "tether-compare/1"

// Report kinds `bench compare` reads, by the prefix of their "format" field.
const (
	KindDrift      = "drift"
	KindVariance   = "variance"
	KindCommitment = "commitment"
)

// Measures of a comparison (CompareValue.Measure).
const (
	CompareCapability    = "capability"
	CompareConsistency   = "consistency"
	CompareVarianceRatio = "variance_ratio"
	CompareCommitment    = "commitment"
)

// Comparison is compare.json: several models' reports side by side.
type Comparison struct {
	Format string `json:"format"`
	// Reports are the reports read, Skipped the ones left out with the reason.
	Reports []CompareSource `json:"reports"`
	Skipped []CompareSource `json:"skipped"`
	// Rows has one entry per model (in the order of first appearance).
	Rows []CompareRow `json:"rows"`
	// Findings state the capability-vs-consistency contrast in words.
	Findings []string `json:"findings"`
	Created  string   `json:"created"`
}

// CompareSource is one report file.
type CompareSource struct {
	Path   string `json:"path"`
	Format string `json:"format,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Model  string `json:"model,omitempty"`
	// Note says why a report was skipped.
	Note string `json:"note,omitempty"`
}

// CompareRow is one model's numbers from all its reports.
type CompareRow struct {
	Model   string         `json:"model"`
	Reports []string       `json:"reports"`
	Values  []CompareValue `json:"values"`
}

// CompareValue is one number of a model: a measure (capability, consistency, variance ratio,
// commitment) with its name (which metric, arm or representation), the kind of report it came
// from, and its interval when the report gives one.
type CompareValue struct {
	Measure  string   `json:"measure"`
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Report   string   `json:"report"`
	Estimate *float64 `json:"estimate"`
	Low      *float64 `json:"low,omitempty"`
	High     *float64 `json:"high,omitempty"`
	// N counts the data behind the estimate when the report says; Unparseable the judge
	// answers left out (consistency).
	N           int    `json:"n,omitempty"`
	Unparseable int    `json:"unparseable,omitempty"`
	Finding     string `json:"finding,omitempty"`
	// Table marks the values shown in compare.md's table (the others are in compare.json
	// only): the uncapped arm of drift reports, every representation of variance reports.
	Table bool `json:"table"`
}

// CompareReports reads report.json files of `bench drift`, `bench variance` and `bench
// commitment` (told apart by their "format" field) and puts them side by side, one row per
// model. A tether report of another kind is skipped with a note; a file that is missing, not
// JSON, or not a tether report, or a field of the wrong type, is an error naming the file and
// the field.
func CompareReports(paths []string, now time.Time) (*Comparison, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("bench: compare: no report given")
	}
	c := &Comparison{Format: CompareFormat, Reports: []CompareSource{}, Skipped: []CompareSource{}, Rows: []CompareRow{}, Findings: []string{}, Created: now.UTC().Format(time.RFC3339)}
	rows := map[string]*CompareRow{}
	var order []string
	for _, p := range paths {
		src, vals, err := readCompareReport(p)
		if err != nil {
			return nil, fmt.Errorf("bench: compare: %w", err)
		}
		if src.Note != "" {
			c.Skipped = append(c.Skipped, src)
			continue
		}
		c.Reports = append(c.Reports, src)
		row := rows[src.Model]
		if row == nil {
			row = &CompareRow{Model: src.Model}
			rows[src.Model] = row
			order = append(order, src.Model)
		}
		row.Reports = append(row.Reports, p)
		row.Values = append(row.Values, vals...)
	}
	if len(c.Reports) == 0 {
		return nil, fmt.Errorf("bench: compare: none of the %d files is a drift, variance or commitment report (%s)", len(paths), c.Skipped[0].Note)
	}
	for _, m := range order {
		c.Rows = append(c.Rows, *rows[m])
	}
	c.Findings = compareFindings(c.Rows)
	return c, nil
}

// readCompareReport reads one report: its source description and its values, or a source
// with a Note when its kind is not compared.
func readCompareReport(path string) (CompareSource, []CompareValue, error) {
	src := CompareSource{Path: path}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return src, nil, fmt.Errorf("%s: no such report file", path)
		}
		return src, nil, err
	}
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		return src, nil, fmt.Errorf("%s: not a JSON report object: %w", path, err)
	}
	r := jsonReader{path: path, m: top}
	format, ok := top["format"].(string)
	if !ok || !strings.HasPrefix(format, "tether-") {
		return src, nil, fmt.Errorf("%s: field \"format\": got %s, expected the format of a tether report (%q, %q or %q...)", path, describe(top["format"]), DriftReportFormat, "tether-variance-report/1", "tether-commitment-report/1")
	}
	src.Format = format
	switch {
	case strings.HasPrefix(format, "tether-drift/"):
		src.Kind = KindDrift
	case strings.HasPrefix(format, "tether-variance"):
		src.Kind = KindVariance
	case strings.HasPrefix(format, "tether-commitment"):
		src.Kind = KindCommitment
	default:
		src.Note = fmt.Sprintf("format %q is not a drift, variance or commitment report: skipped", format)
		return src, nil, nil
	}
	if format == DriftReportFormat {
		if err := ValidateDriftReportJSON(data); err != nil {
			return src, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if src.Model, err = r.model(); err != nil {
		return src, nil, err
	}
	var vals []CompareValue
	switch src.Kind {
	case KindDrift:
		vals, err = r.driftValues()
	case KindVariance:
		vals, err = r.varianceValues()
	case KindCommitment:
		vals, err = r.commitmentValues()
	}
	if err != nil {
		return src, nil, err
	}
	vals = append(vals, r.consistencyValues(src.Kind)...)
	if err := r.err; err != nil {
		return src, nil, err
	}
	for i := range vals {
		vals[i].Kind, vals[i].Report = src.Kind, path
	}
	return src, vals, nil
}

// jsonReader reads fields of a decoded report; the first type error is kept in err, naming
// the file and the field's path.
type jsonReader struct {
	path string
	m    map[string]any
	err  error
}

// describe words a JSON value for an error.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("the string %q", x)
	case float64:
		return fmt.Sprintf("the number %g", x)
	case bool:
		return fmt.Sprintf("%v", x)
	case []any:
		return "a list"
	}
	return "an object"
}

// fail records a type error at field (once).
func (r *jsonReader) fail(field string, v any, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: field %q: got %s, expected %s", r.path, field, describe(v), want)
	}
}

// num reads a number at obj[key] (field names the path for errors); ok is false when absent
// or null.
func (r *jsonReader) num(obj map[string]any, key, field string) (float64, bool) {
	v, present := obj[key]
	if !present || v == nil {
		return 0, false
	}
	f, isNum := v.(float64)
	if !isNum {
		r.fail(field, v, "a number")
		return 0, false
	}
	return f, true
}

// obj reads an object at parent[key]; nil when absent.
func (r *jsonReader) obj(parent map[string]any, key, field string) map[string]any {
	v, present := parent[key]
	if !present || v == nil {
		return nil
	}
	o, ok := v.(map[string]any)
	if !ok {
		r.fail(field, v, "an object")
	}
	return o
}

// list reads a list of objects at parent[key]; nil when absent.
func (r *jsonReader) list(parent map[string]any, key, field string) []map[string]any {
	v, present := parent[key]
	if !present || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		r.fail(field, v, "a list")
		return nil
	}
	out := make([]map[string]any, 0, len(l))
	for i, e := range l {
		o, ok := e.(map[string]any)
		if !ok {
			r.fail(fmt.Sprintf("%s[%d]", field, i), e, "an object")
			return nil
		}
		out = append(out, o)
	}
	return out
}

// str reads a string at obj[key] ("" when absent).
func (r *jsonReader) str(obj map[string]any, key, field string) string {
	v, present := obj[key]
	if !present || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		r.fail(field, v, "a string")
	}
	return s
}

// model is the report's model name: "model" as a string, or "model"."name".
func (r *jsonReader) model() (string, error) {
	var name string
	switch v := r.m["model"].(type) {
	case string:
		name = v
	case map[string]any:
		name = r.str(v, "name", "model.name")
	}
	if r.err != nil {
		return "", r.err
	}
	if name == "" {
		return "", fmt.Errorf("%s: field \"model\": got %s, expected the model's name (a string, or an object with \"name\")", r.path, describe(r.m["model"]))
	}
	return name, nil
}

// interval reads {estimate|mean, low, high, n} at obj as a value.
func (r *jsonReader) interval(obj map[string]any, field string, v CompareValue) CompareValue {
	for _, k := range []string{"estimate", "mean"} {
		if e, ok := r.num(obj, k, field+"."+k); ok {
			v.Estimate = &e
		}
	}
	if lo, ok := r.num(obj, "low", field+".low"); ok {
		v.Low = &lo
	}
	if hi, ok := r.num(obj, "high", field+".high"); ok {
		v.High = &hi
	}
	if n, ok := r.num(obj, "n", field+".n"); ok {
		v.N = int(n)
	}
	return v
}

// driftValues: the uncapped arm's capability (exact match, perplexity) and each arm's
// run-to-run / between-persona variance ratio.
func (r *jsonReader) driftValues() ([]CompareValue, error) {
	var out []CompareValue
	if c := r.obj(r.m, "capability", "capability"); c != nil {
		if x, ok := r.num(c, "exact_match_uncapped", "capability.exact_match_uncapped"); ok {
			q, _ := r.num(c, "questions", "capability.questions")
			out = append(out, CompareValue{Measure: CompareCapability, Name: "exact match", Estimate: &x, N: int(q), Table: true})
		}
		if x, ok := r.num(c, "perplexity_uncapped", "capability.perplexity_uncapped"); ok {
			t, _ := r.num(c, "held_out_tokens", "capability.held_out_tokens")
			out = append(out, CompareValue{Measure: CompareCapability, Name: "perplexity", Estimate: &x, N: int(t), Table: true})
		}
	}
	for i, v := range r.list(r.m, "variance", "variance") {
		f := fmt.Sprintf("variance[%d]", i)
		arm := r.str(v, "arm", f+".arm")
		val := CompareValue{Measure: CompareVarianceRatio, Name: "projection, " + arm, Table: arm == ArmUncapped}
		if undef, _ := v["ratio_undefined"].(bool); !undef {
			if x, ok := r.num(v, "ratio_run_to_persona", f+".ratio_run_to_persona"); ok {
				val.Estimate = &x
			}
		}
		if n, ok := r.num(v, "records", f+".records"); ok {
			val.N = int(n)
		}
		out = append(out, val)
	}
	return out, r.err
}

// varianceValues: each representation's run-to-run / between-persona ratio with its interval
// and finding (the layout of the issue: representations[] with name, ratio {estimate, low,
// high} and finding; a map keyed by representation is read too).
func (r *jsonReader) varianceValues() ([]CompareValue, error) {
	var out []CompareValue
	add := func(name string, rep map[string]any, field string) {
		v := CompareValue{Measure: CompareVarianceRatio, Name: name, Table: true}
		if ratio := r.obj(rep, "ratio", field+".ratio"); ratio != nil {
			v = r.interval(ratio, field+".ratio", v)
		}
		v.Finding = r.str(rep, "finding", field+".finding")
		out = append(out, v)
	}
	switch reps := r.m["representations"].(type) {
	case []any:
		for i, e := range r.list(r.m, "representations", "representations") {
			f := fmt.Sprintf("representations[%d]", i)
			name := r.str(e, "name", f+".name")
			if name == "" {
				name = r.str(e, "representation", f+".representation")
			}
			add(name, e, f)
		}
	case map[string]any:
		keys := make([]string, 0, len(reps))
		for k := range reps {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if o := r.obj(reps, k, "representations."+k); o != nil {
				add(k, o, "representations."+k)
			}
		}
	case nil:
	default:
		r.fail("representations", reps, "a list or an object")
	}
	return out, r.err
}

// commitmentValues: answer agreement across branches and joint consistency, with intervals.
func (r *jsonReader) commitmentValues() ([]CompareValue, error) {
	var out []CompareValue
	for _, k := range []string{"agreement", "joint_consistency"} {
		if o := r.obj(r.m, k, k); o != nil {
			v := r.interval(o, k, CompareValue{Measure: CompareCommitment, Name: strings.ReplaceAll(k, "_", " "), Table: true})
			if n, ok := r.num(o, "n", k+".n"); ok && n == 0 {
				// No question could be scored: the stored 0 is no measurement.
				v.Estimate, v.Low, v.High = nil, nil, nil
			}
			out = append(out, v)
		}
	}
	return out, r.err
}

// consistencyValues reads a consistency summary (package consistency) at "consistency":
// every overall cell; drift's uncapped arm goes to the table, and for other kinds every arm.
func (r *jsonReader) consistencyValues(kind string) []CompareValue {
	s := r.obj(r.m, "consistency", "consistency")
	if s == nil {
		return nil
	}
	var out []CompareValue
	for i, c := range r.list(s, "overall", "consistency.overall") {
		f := fmt.Sprintf("consistency.overall[%d]", i)
		arm, metric := r.str(c, "arm", f+".arm"), r.str(c, "metric", f+".metric")
		v := r.interval(c, f, CompareValue{Measure: CompareConsistency, Name: metricName(metric) + ", " + arm, Table: kind != KindDrift || arm == ArmUncapped})
		if u, ok := r.num(c, "unparseable", f+".unparseable"); ok {
			v.Unparseable = int(u)
		}
		out = append(out, v)
	}
	return out
}

// compareFindings contrasts, for each consistency measure shown in the table, the model with
// the highest exact-match capability against the one with the lowest.
func compareFindings(rows []CompareRow) []string {
	type capRow struct {
		row CompareRow
		cap float64
	}
	var caps []capRow
	for _, row := range rows {
		for _, v := range row.Values {
			if v.Measure == CompareCapability && v.Name == "exact match" && v.Estimate != nil {
				caps = append(caps, capRow{row, *v.Estimate})
				break
			}
		}
	}
	if len(caps) < 2 {
		return []string{fmt.Sprintf("Capability vs consistency: %d of %d models have a capability measure (a drift report with capability), 2 are needed for a contrast.", len(caps), len(rows))}
	}
	slices.SortStableFunc(caps, func(a, b capRow) int {
		switch {
		case a.cap < b.cap:
			return -1
		case a.cap > b.cap:
			return 1
		}
		return 0
	})
	lo, hi := caps[0], caps[len(caps)-1]
	if lo.cap == hi.cap {
		return []string{fmt.Sprintf("Capability vs consistency: every model has the same exact-match capability %.3g; no contrast.", lo.cap)}
	}
	var out []string
	for _, hv := range hi.row.Values {
		if hv.Measure != CompareConsistency || !hv.Table || hv.Estimate == nil {
			continue
		}
		for _, lv := range lo.row.Values {
			if lv.Measure != hv.Measure || lv.Name != hv.Name || lv.Estimate == nil {
				continue
			}
			rel := "undefined (the less capable model's consistency is 0)"
			if *lv.Estimate != 0 {
				rel = fmt.Sprintf("%+.1f%%", 100*(*hv.Estimate / *lv.Estimate - 1))
			}
			out = append(out, fmt.Sprintf("Capability vs consistency (%s): %s (exact match %.3g) %s vs %s (exact match %.3g) %s: relative change %s.",
				hv.Name, hi.row.Model, hi.cap, fmtValue(hv), lo.row.Model, lo.cap, fmtValue(lv), rel))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("Capability vs consistency: %s and %s share no consistency measure (run both with --judge).", hi.row.Model, lo.row.Model))
	}
	return out
}

// fmtValue writes an estimate with its interval when it has one.
func fmtValue(v CompareValue) string {
	if v.Estimate == nil {
		if v.Unparseable > 0 {
			return fmt.Sprintf("no parseable verdict (%d unparseable)", v.Unparseable)
		}
		return "n/a"
	}
	s := fmt.Sprintf("%.3g", *v.Estimate)
	if v.Low != nil && v.High != nil {
		s += fmt.Sprintf(" [%.3g, %.3g]", *v.Low, *v.High)
	}
	if v.Unparseable > 0 {
		s += fmt.Sprintf(" (%d unparseable)", v.Unparseable)
	}
	return s
}
