package personas

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// sentenceEnd counts sentences by their terminal punctuation.
var sentenceEnd = regexp.MustCompile(`[.!?](\s|$)`)

func TestBuiltinSet(t *testing.T) {
	s, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Personas) < 20 {
		t.Fatalf("%d built-in personas, want at least 20", len(s.Personas))
	}
	names := map[string]bool{}
	for _, p := range s.Personas {
		if names[p.Name] {
			t.Errorf("%s: name %q used twice", p.ID, p.Name)
		}
		names[p.Name] = true
		for _, f := range Forms {
			if _, ok := p.Anchor(f); !ok {
				t.Errorf("%s: no %s anchor", p.ID, f)
			}
		}
		sparse, _ := p.Anchor(Sparse)
		if n := len(sentenceEnd.FindAllString(sparse, -1)); n < 3 || n > 5 {
			t.Errorf("%s: sparse anchor has %d sentences, want 3 to 5", p.ID, n)
		}
		for _, f := range []string{Journal, Document} {
			a, _ := p.Anchor(f)
			if n := len(strings.Fields(a)); n < 100 || n > 300 {
				t.Errorf("%s: %s anchor has %d words, want 100 to 300", p.ID, f, n)
			}
		}
		// The same facts: the sparse and document forms state the name and the age; the
		// journal, written by the person, is signed by a first-person voice.
		for _, f := range []string{Sparse, Document} {
			a, _ := p.Anchor(f)
			if !strings.Contains(a, p.Name) || !strings.Contains(a, p.Facts["age"]) {
				t.Errorf("%s: %s anchor lacks the name %q or the age %q", p.ID, f, p.Name, p.Facts["age"])
			}
		}
		j, _ := p.Anchor(Journal)
		if !regexp.MustCompile(`\b(I|my|me)\b`).MatchString(j) {
			t.Errorf("%s: journal anchor is not in the first person", p.ID)
		}
		if len(p.Facts) < 4 {
			t.Errorf("%s: %d facts, want at least 4", p.ID, len(p.Facts))
		}
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	good := `{"id":"a","name":"A","anchors":{"sparse":"You are A. You are kind. You are old."}}`
	cases := []struct {
		name, data string
		want       []string
	}{
		{"not json", `{`, []string{"set.json", "JSON"}},
		{"format", `{"format":"x","personas":[` + good + `]}`, []string{"set.json", `"format"`, Format}},
		{"empty", `{"format":"tether-personas/1","personas":[]}`, []string{`"personas" is empty`}},
		{"bad id", `{"format":"tether-personas/1","personas":[{"id":"A B","name":"A","anchors":{"sparse":"x"}}]}`, []string{"persona 0", `"id"`, "lower-case"}},
		{"dup id", `{"format":"tether-personas/1","personas":[` + good + `,` + good + `]}`, []string{"persona 1", "unique"}},
		{"no name", `{"format":"tether-personas/1","personas":[{"id":"a","name":" ","anchors":{"sparse":"x"}}]}`, []string{`"name"`}},
		{"unknown form", `{"format":"tether-personas/1","personas":[{"id":"a","name":"A","anchors":{"sparse":"x","diary":"y"}}]}`, []string{`"diary"`, "sparse, journal, document"}},
		{"empty anchor", `{"format":"tether-personas/1","personas":[{"id":"a","name":"A","anchors":{"sparse":"x","journal":""}}]}`, []string{`anchors.journal`}},
		{"no sparse", `{"format":"tether-personas/1","personas":[{"id":"a","name":"A","anchors":{"journal":"y"}}]}`, []string{`anchors.sparse`, "missing"}},
		{"unknown field", `{"format":"tether-personas/1","personas":[{"id":"a","name":"A","age":3,"anchors":{"sparse":"x"}}]}`, []string{`"age"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.data), "set.json")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := Parse([]byte(`{"format":"tether-personas/1","personas":[`+good+`]}`), "set.json"); err != nil {
		t.Errorf("a valid set: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(builtinPersonas)
	f.Add([]byte(`{"format":"tether-personas/1","personas":[{"id":"a","name":"A","anchors":{"sparse":"x"}}]}`))
	f.Add([]byte(`{"personas":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		// A set that parses round-trips and keeps its invariants.
		seen := map[string]bool{}
		for _, p := range s.Personas {
			if seen[p.ID] || !idPattern.MatchString(p.ID) {
				t.Fatalf("accepted a bad or repeated id %q", p.ID)
			}
			seen[p.ID] = true
			if _, ok := p.Anchor(Sparse); !ok {
				t.Fatalf("accepted persona %q without a sparse anchor", p.ID)
			}
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again, "again.json"); err != nil {
			t.Fatalf("a parsed set does not parse again: %v", err)
		}
	})
}

func TestBuiltinQuestionnaire(t *testing.T) {
	q, err := BuiltinQuestionnaire()
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Items) < 20 || q.ScaleMin != 1 || q.ScaleMax != 7 {
		t.Fatalf("%d items on %d..%d, want at least 20 on 1..7", len(q.Items), q.ScaleMin, q.ScaleMax)
	}
	if s := q.Question(q.Items[0]); !strings.Contains(s, q.Items[0].Text) || !strings.Contains(s, "1 (strongly disagree) to 7") {
		t.Errorf("question %q lacks the statement or the scale", s)
	}
}

func TestParseAnswer(t *testing.T) {
	q := &Questionnaire{ScaleMin: 1, ScaleMax: 7}
	cases := []struct {
		text string
		want int
		ok   bool
	}{
		{"5", 5, true},
		{"I'd say 6. I like people.", 6, true},
		{"  7 - strongly agree", 7, true},
		{"3/7", 3, true},
		{"4 out of 7, mostly", 4, true},
		{"1", 1, true},
		{"6, I have worked 30 years", 6, true},
		{"", 0, false},
		{"Strongly agree!", 0, false},
		{"seven", 0, false},
		{"8", 0, false},
		{"0", 0, false},
		{"4.5", 0, false},
		{"4-5", 0, false},
		{"4 or 5", 0, false},
		{"3/5", 0, false},
		{"12", 0, false},
		{"In 1990 I moved. 5", 0, false},
	}
	for _, c := range cases {
		v, ok, reason := q.ParseAnswer(c.text)
		if ok != c.ok || v != c.want {
			t.Errorf("ParseAnswer(%q) = %d, %v (%s), want %d, %v", c.text, v, ok, reason, c.want, c.ok)
		}
		if !ok && reason == "" {
			t.Errorf("ParseAnswer(%q): failure without a reason", c.text)
		}
	}
}
