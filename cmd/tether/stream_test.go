package main

import (
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/model"
)

// TestTextStreamSkipsSpecialTokens: the streamed text equals the decoded
// Result.Text (special tokens skipped), so `generate` and `generate --json`
// print the same text for the same ids.
func TestTextStreamSkipsSpecialTokens(t *testing.T) {
	dir := writePersonaTestModel(t)
	m := testmodels.OpenWith(t, dir, model.Options{NoWeights: true})
	ids := []int{'H', 'i', personaTestModel.BOS, ' ', 't', personaTestModel.EOS, 'o'}
	want, err := m.Tokenizer.Decode(ids, true)
	if err != nil {
		t.Fatal(err)
	}
	if withSpecial, _ := m.Tokenizer.Decode(ids, false); withSpecial == want {
		t.Fatalf("the test tokenizer shows no special token in %v (%q)", ids, want)
	}
	var out strings.Builder
	s := newTextStreamTo(&out, m.Tokenizer, nil)
	for _, id := range ids {
		s.push(id)
	}
	s.finish()
	if got := strings.TrimSuffix(out.String(), "\n"); got != want {
		t.Errorf("streamed %q, Result.Text would be %q", got, want)
	}
}
