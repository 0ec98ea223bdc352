package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuiltinScenarios: four domains, at least five conversations each, at least eight
// non-empty user turns each, unique ids and personas/topics filled in.
func TestBuiltinScenarios(t *testing.T) {
	scs, err := BuiltinScenarios()
	if err != nil {
		t.Fatal(err)
	}
	perDomain := map[string]int{}
	ids := map[string]bool{}
	for _, s := range scs {
		perDomain[s.Domain]++
		if ids[s.ID] {
			t.Errorf("duplicate id %q", s.ID)
		}
		ids[s.ID] = true
		if s.Persona == s.ID || s.Persona == "" || s.Topic == "" {
			t.Errorf("%s: persona %q topic %q: expected both written", s.ID, s.Persona, s.Topic)
		}
		if len(s.UserTurns) < 8 {
			t.Errorf("%s: %d user turns, want >= 8", s.ID, len(s.UserTurns))
		}
		for i, u := range s.UserTurns {
			if strings.TrimSpace(u) == "" {
				t.Errorf("%s: turn %d empty", s.ID, i)
			}
		}
		if !strings.HasPrefix(s.ID, s.Domain+"-") {
			t.Errorf("%s: domain %q does not match its id", s.ID, s.Domain)
		}
	}
	for _, d := range []string{DomainCoding, DomainWriting, DomainEmotional, DomainPhilosophical} {
		if perDomain[d] < 5 {
			t.Errorf("domain %s: %d conversations, want >= 5", d, perDomain[d])
		}
	}
	if len(perDomain) != 4 {
		t.Errorf("domains %v, want exactly the four built-in ones", perDomain)
	}
	if info := scs[0].Info(3); info.Turns != 3 || info.ID != scs[0].ID {
		t.Errorf("Info(3) = %+v", info)
	}
	if info := scs[0].Info(0); info.Turns != len(scs[0].UserTurns) {
		t.Errorf("Info(0) = %+v", info)
	}
}

// TestLoadScenariosDir covers the conversation format (reference transcripts): objects and arrays, assistant turns
// dropped, defaults, and errors that name the file and the field.
func TestLoadScenariosDir(t *testing.T) {
	good := `{"persona": "a tired parent", "topic": "sleep", "domain": "emotional", "model": "x",
	  "conversation": [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"},
	  {"role": "assistant", "content": "hello"}, {"role": "user", "content": "I can't sleep"}]}`
	arr := `[{"id": "a", "conversation": [{"role": "user", "content": "one"}]},
	         {"conversation": [{"role": "user", "content": "two"}, {"role": "assistant", "content": ""}]}]`
	dir := t.TempDir()
	write := func(dir, name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dir, "b.json", good)
	write(dir, "a.json", arr)
	write(dir, "notes.txt", "ignored")
	scs, err := LoadScenariosDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 3 {
		t.Fatalf("%d scenarios, want 3: %+v", len(scs), scs)
	}
	if scs[0].ID != "a" || scs[0].Domain != DomainCustom || scs[0].Persona != "a" || len(scs[0].UserTurns) != 1 {
		t.Errorf("array entry 0: %+v", scs[0])
	}
	if scs[1].ID != "a#1" || scs[1].UserTurns[0] != "two" {
		t.Errorf("array entry 1: %+v", scs[1])
	}
	b := scs[2]
	if b.ID != "b" || b.Domain != "emotional" || b.Persona != "a tired parent" || b.Topic != "sleep" ||
		len(b.UserTurns) != 2 || b.UserTurns[1] != "I can't sleep" {
		t.Errorf("object: %+v", b)
	}

	for _, tc := range []struct {
		name, text, want string
	}{
		{"empty conversation", `{"persona": "p", "conversation": []}`, `"conversation": empty`},
		{"missing conversation", `{"persona": "p"}`, `"messages": missing`},
		{"no user", `{"conversation": [{"role": "assistant", "content": "x"}]}`, `no user message`},
		{"bad role", `{"conversation": [{"role": "bot", "content": "x"}]}`, `"conversation[0].role"`},
		{"empty user", `{"conversation": [{"role": "user", "content": " "}]}`, `"conversation[0].content"`},
		{"not json", `{"conversation": [`, `not valid JSON`},
		{"wrong type", `{"conversation": "hello"}`, `field "conversation": expected a list`},
		{"empty array", `[]`, `empty array`},
		{"empty file", ``, `empty file`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			write(d, "x.json", tc.text)
			_, err := LoadScenariosDir(d)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "x.json") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want the file name and %q", err, tc.want)
			}
		})
	}
	t.Run("duplicate id", func(t *testing.T) {
		d := t.TempDir()
		write(d, "x.json", `{"id": "same", "conversation": [{"role": "user", "content": "a"}]}`)
		write(d, "y.json", `{"id": "same", "conversation": [{"role": "user", "content": "b"}]}`)
		if _, err := LoadScenariosDir(d); err == nil || !strings.Contains(err.Error(), `"same"`) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("no files", func(t *testing.T) {
		if _, err := LoadScenariosDir(t.TempDir()); err == nil {
			t.Error("no error")
		}
	})
	t.Run("not a directory", func(t *testing.T) {
		if _, err := LoadScenariosDir(filepath.Join(dir, "b.json")); err == nil {
			t.Error("no error")
		}
	})
}
