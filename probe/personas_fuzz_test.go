package probe

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadQuestions feeds arbitrary bytes to LoadQuestions: it must never panic, and whatever it
// accepts must be a valid question list (non-empty texts, unique non-negative ids, one question
// per non-blank line).
func FuzzLoadQuestions(f *testing.F) {
	builtin, err := builtinData.ReadFile(builtinQuestionsPath)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(builtin[:400]),
		`{"question": "Who are you?", "id": 0}`,
		"{\"question\": \"a\"}\n{\"question\": \"b\", \"id\": 0}\n",
		"\xef\xbb\xbf{\"question\": \"x\", \"id\": 3}\r\n\r\n",
		`{"question": "x", "id": 1e3}`,
		`{"question": "x", "id": 99999999999999999999999}`,
		`{"question": null, "id": null}`,
		"{\"question\": \"\\ud800\"}",
		"[1,2]\n{}",
		"",
		"\n\n",
	} {
		f.Add([]byte(seed))
	}
	path := filepath.Join(f.TempDir(), "q.jsonl")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		qs, err := LoadQuestions(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		d := &Dataset{
			Roles:     []Role{{Name: "r", Prompts: []string{"You are r."}}},
			Default:   Role{Name: DefaultRoleName, Prompts: []string{""}},
			Questions: qs,
		}
		if err := d.Validate(); err != nil {
			t.Errorf("accepted questions are invalid: %v", err)
		}
		nonBlank := 0
		for _, line := range strings.Split(strings.TrimPrefix(string(data), "\xef\xbb\xbf"), "\n") {
			if strings.TrimSpace(line) != "" {
				nonBlank++
			}
		}
		if nonBlank != len(qs) {
			t.Errorf("%d non-blank lines gave %d questions", nonBlank, len(qs))
		}
	})
}

// FuzzParseRole feeds arbitrary bytes to the role file parser: it must never panic, and a role it
// accepts has at least one non-empty prompt.
func FuzzParseRole(f *testing.F) {
	for _, seed := range []string{
		`{"instruction": [{"pos": "You are a pirate."}], "questions": ["q"]}`,
		`{"instruction": [{"pos": ""}]}`,
		`{"instruction": []}`,
		`{"instruction": [null, 3, "x", {"pos": 1}]}`,
		`{"instruction": null}`,
		`[]`,
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRole(data, "role", "role.json")
		if err != nil {
			if !strings.Contains(err.Error(), "role.json") {
				t.Errorf("error %q does not name the file", err)
			}
			return
		}
		if len(r.Prompts) == 0 {
			t.Error("accepted a role without prompts")
		}
		for _, p := range r.Prompts {
			if strings.TrimSpace(p) == "" {
				t.Error("accepted an empty prompt in an ordinary role")
			}
		}
	})
}
