package bench

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"tether/personas"
)

// syntheticAnswers plants answers for 12 personas x 3 forms x 4 items x 3 seeds: ratings
// persona-driven, every fifth answer without a number, vectors with noise.
func syntheticAnswers() ([]VarianceAnswer, int) {
	rng := rand.New(rand.NewPCG(9, 9))
	var out []VarianceAnswer
	failures := 0
	n := 0
	for p := range 12 {
		for _, f := range personas.Forms {
			for i := range 4 {
				for s := range 3 {
					a := VarianceAnswer{Persona: fmt.Sprintf("p%02d", p), Anchor: f, Item: fmt.Sprintf("q%d", i), Seed: uint64(s + 1), Tokens: 3}
					if n%5 == 0 {
						a.Answer, a.ParseError = "maybe", "no number in the answer"
						failures++
					} else {
						v := 1 + (p+i+s)%7
						a.Answer, a.Rating = fmt.Sprint(v), &v
					}
					n++
					a.Activation = []float32{float32(p) + float32(rng.NormFloat64()), float32(rng.NormFloat64())}
					a.Text = []float32{float32(i) + float32(rng.NormFloat64()), float32(p)}
					proj := float64(a.Activation[0])
					a.Projection = &proj
					out = append(out, a)
				}
			}
		}
	}
	return out, failures
}

// TestVarianceReportCounts: parse failures and skipped anchors are counted, the questionnaire
// representation holds exactly the parsed answers, every representation has by-anchor entries
// and the anchor contrast, and report.json matches the schema.
func TestVarianceReportCounts(t *testing.T) {
	answers, failures := syntheticAnswers()
	man := VarianceManifest{Settings: VarianceSettings{
		Seeds: []uint64{1, 2, 3}, Temperature: 0.7, TopP: 0.9, MaxTokens: 4, Layer: 1, Forms: personas.Forms,
		Personas: []string{"p00"}, PersonasSource: "x.json", PersonasSHA256: strings.Repeat("a", 64), Items: []string{"q0"}, Bootstrap: 100,
	}}
	skipped := []SkippedAnchor{{Persona: "p99", Anchor: personas.Journal, PromptTokens: 600, Context: 512}}
	rep, err := BuildVarianceReport("m", man, answers, skipped, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if rep.ParseFailures.Failures != failures || rep.ParseFailures.Answers != len(answers) || rep.SkippedCount != 1 {
		t.Errorf("parse failures %+v (want %d of %d), skipped %d", rep.ParseFailures, failures, len(answers), rep.SkippedCount)
	}
	var byAnchor int
	for _, c := range rep.ParseFailures.ByAnchor {
		byAnchor += c
	}
	if byAnchor != failures {
		t.Errorf("failures by anchor sum to %d, want %d", byAnchor, failures)
	}
	if q := rep.Representations[RepQuestionnaire]; q.Observations != len(answers)-failures || q.Dimensions != 1 {
		t.Errorf("questionnaire: %d observations, %d dimensions", q.Observations, q.Dimensions)
	}
	for _, name := range []string{RepActivation, RepText, RepQuestionnaire} {
		r := rep.Representations[name]
		if len(r.ByAnchor) != 3 || r.AnchorContrast == nil {
			t.Errorf("%s: %d anchors, contrast %v", name, len(r.ByAnchor), r.AnchorContrast)
		}
	}
	if rep.Representations[RepActivation].Projection == nil {
		t.Error("no axis projection")
	}
	data, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateVarianceReportJSON(data); err != nil {
		t.Fatal(err)
	}
	md := RenderVarianceMarkdown(rep)
	for _, want := range []string{fmt.Sprintf("%d of %d answers had no readable rating", failures, len(answers)), "p99 / journal", "| questionnaire | sparse |", "## Anchor richness"} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// A broken report is refused by the schema.
	var tree map[string]any
	_ = json.Unmarshal(data, &tree)
	delete(tree["representations"].(map[string]any), "text")
	bad, _ := json.Marshal(tree)
	if err := ValidateVarianceReportJSON(bad); err == nil || !strings.Contains(err.Error(), "text") {
		t.Errorf("a report without the text representation: %v", err)
	}
}
