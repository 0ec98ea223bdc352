package conversation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"tether/tokenizer"
)

// hiHello is the conversation most cases below spell in their own way.
var hiHello = []tokenizer.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "hello"}}

// TestParseForms reads the same conversation written in every accepted form:
// the messages must be the same, and the metadata what the file says.
func TestParseForms(t *testing.T) {
	tests := []struct {
		name, body string
		want       []tokenizer.Message
		id, domain string
	}{
		{"list", `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`, hiHello, "", ""},
		{"messages object", `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`, hiHello, "", ""},
		{"reference transcript", `{"persona":"p","model":"ignored","projections":[1,2],"conversation":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`, hiHello, "", ""},
		{"metadata trimmed", `{"id":" c1 ","domain":"coding ","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`, hiHello, "c1", "coding"},
		{"extra message fields", `[{"role":"user","content":"hi","name":"x"},{"role":"assistant","content":"hello","tool_calls":[]}]`, hiHello, "", ""},
		{"other roles read", `[{"role":"tool","content":"42"}]`, []tokenizer.Message{{Role: "tool", Content: "42"}}, "", ""},
		{"empty content", `[{"role":"user","content":""}]`, []tokenizer.Message{{Role: "user", Content: ""}}, "", ""},
		{"surrounding space", " \n" + `[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]` + "\n", hiHello, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := Parse([]byte(tc.body), "f.json")
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 {
				t.Fatalf("%d conversations, want 1", len(cs))
			}
			c := cs[0]
			if !reflect.DeepEqual(c.Messages, tc.want) {
				t.Errorf("messages %+v, want %+v", c.Messages, tc.want)
			}
			if c.ID != tc.id || c.Domain != tc.domain || c.Index != -1 || c.File != "f.json" {
				t.Errorf("metadata %+v", c)
			}
		})
	}
}

// TestParseList reads a file holding a list of conversation objects.
func TestParseList(t *testing.T) {
	body := `[{"id":"a","messages":[{"role":"user","content":"one"}]},
	          {"persona":"p","topic":"t","conversation":[{"role":"user","content":"two"},{"role":"assistant","content":""}]}]`
	cs, err := Parse([]byte(body), "f.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("%d conversations, want 2", len(cs))
	}
	if cs[0].ID != "a" || cs[0].Index != 0 || len(cs[0].Messages) != 1 || cs[0].Messages[0].Content != "one" {
		t.Errorf("conversation 0: %+v", cs[0])
	}
	if cs[1].Persona != "p" || cs[1].Topic != "t" || cs[1].Index != 1 || len(cs[1].Messages) != 2 {
		t.Errorf("conversation 1: %+v", cs[1])
	}
	if got, want := cs[1].Field(1, "content"), "[1].conversation[1].content"; got != want {
		t.Errorf("Field = %q, want %q", got, want)
	}
}

// TestParseErrors: each error names the file and, for a message, its index
// and the field's path as the file spells it.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"empty file", "  ", []string{"empty file"}},
		{"not JSON", "hello", []string{"not JSON", "expected a JSON list"}},
		{"JSON string", `"hi"`, []string{"a JSON string", "expected a JSON list"}},
		{"broken JSON", `[{"role":`, []string{"not valid JSON"}},
		{"empty array", `[]`, []string{"empty array"}},
		{"missing messages", `{"persona":"p"}`, []string{`"messages": missing`, `"conversation"`}},
		{"empty messages", `{"messages":[]}`, []string{`"messages": empty`}},
		{"empty conversation", `{"conversation":[]}`, []string{`"conversation": empty`}},
		{"both keys", `{"messages":[{"role":"user","content":"a"}],"conversation":[{"role":"user","content":"a"}]}`, []string{`both "messages" and "conversation"`}},
		{"messages not a list", `{"messages":"hello"}`, []string{`field "messages"`, "expected a list", "got a JSON string"}},
		{"metadata not a string", `{"id":3,"messages":[{"role":"user","content":"a"}]}`, []string{`field "id"`, "expected a string", "number"}},
		{"missing role", `[{"role":"user","content":"a"},{"content":"b"}]`, []string{"message 1", `field "[1].role"`, "missing"}},
		{"empty role", `{"messages":[{"role":"","content":"b"}]}`, []string{"message 0", `field "messages[0].role"`, "missing or empty"}},
		{"missing content", `{"conversation":[{"role":"user"}]}`, []string{"message 0", `field "conversation[0].content"`, "missing"}},
		{"null content", `[{"role":"user","content":null}]`, []string{"message 0", `field "[0].content"`, "missing"}},
		{"content not a string", `[{"role":"user","content":[{"type":"text"}]}]`, []string{"message 0", `field "[0].content"`, "expected a string", "array"}},
		{"message not an object", `[{"role":"user","content":"a"},7]`, []string{"message 1", "expected an object"}},
		{"list entry", `[{"messages":[{"role":"user","content":"a"}]},{"messages":[{"role":"user"}]}]`, []string{"conversation 1", "message 0", `field "[1].messages[0].content"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.body), "dir/f.json")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "dir/f.json", "conversation: ") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestCheck: each rule refuses the conversation that breaks it, naming the
// file, the message and the field, and passes the one that keeps it.
func TestCheck(t *testing.T) {
	const good = `{"messages":[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]}`
	chat := Rules{Need: RoleUser, Purpose: "to replay"}
	tests := []struct {
		name, body string
		rules      Rules
		want       []string // nil: no error
	}{
		{"good chat", good, chat, nil},
		{"good project", good, Rules{Need: RoleAssistant, Purpose: "to project", SystemFirst: true, NonEmptyNeed: true}, nil},
		{"no rules", `[{"role":"assistant","content":""}]`, Rules{}, nil},
		{"other role", `[{"role":"user","content":"a"},{"role":"robot","content":"b"}]`, chat, []string{"message 1", `field "[1].role"`, `role "robot"`}},
		{"tool role", `[{"role":"tool","content":"a"}]`, Rules{}, []string{"message 0", `role "tool"`}},
		{"late system allowed", `[{"role":"user","content":"a"},{"role":"system","content":"s"}]`, chat, nil},
		{"late system refused", `[{"role":"user","content":"a"},{"role":"system","content":"s"}]`, Rules{SystemFirst: true}, []string{"message 1", `field "[1].role"`, "only come first"}},
		{"need missing", `[{"role":"system","content":"s"},{"role":"assistant","content":"b"}]`, chat, []string{"no user message to replay"}},
		{"empty need allowed", `[{"role":"user","content":" "}]`, chat, nil},
		{"empty need refused", `{"conversation":[{"role":"user","content":"a"},{"role":"user","content":" \n"}]}`, Rules{Need: RoleUser, NonEmptyNeed: true}, []string{"message 1", `field "conversation[1].content"`, "empty user message"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := Parse([]byte(tc.body), "f.json")
			if err != nil {
				t.Fatal(err)
			}
			err = cs[0].Check(tc.rules)
			if tc.want == nil {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, "f.json") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestCount counts messages by role.
func TestCount(t *testing.T) {
	cs, err := Parse([]byte(`[{"role":"system","content":"s"},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}]`), "f.json")
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0]
	if c.Count(RoleUser) != 2 || c.Count(RoleAssistant) != 1 || c.Count(RoleSystem) != 1 || c.Count("tool") != 0 {
		t.Errorf("counts user %d assistant %d system %d", c.Count(RoleUser), c.Count(RoleAssistant), c.Count(RoleSystem))
	}
}

// TestReadOne reads a one-conversation file and refuses a file of several,
// a missing file, and names the file each time; ReadChecked applies rules.
func TestReadOne(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	two := filepath.Join(dir, "two.json")
	if err := os.WriteFile(one, []byte(`[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(two, []byte(`[{"messages":[{"role":"user","content":"a"}]},{"messages":[{"role":"user","content":"b"}]}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadOne(one)
	if err != nil || !reflect.DeepEqual(c.Messages, hiHello) || c.File != one {
		t.Fatalf("ReadOne = %+v, %v", c, err)
	}
	if _, err := ReadOne(two); err == nil || !strings.Contains(err.Error(), "holds 2 conversations") || !strings.Contains(err.Error(), two) {
		t.Errorf("two conversations: error %v", err)
	}
	if _, err := ReadChecked(one, Rules{Need: RoleSystem, Purpose: "to test"}); err == nil || !strings.Contains(err.Error(), one) || !strings.Contains(err.Error(), "no system message to test") {
		t.Errorf("ReadChecked: error %v", err)
	}
	if c, err := ReadChecked(one, Rules{Need: RoleUser}); err != nil || len(c.Messages) != 2 {
		t.Errorf("ReadChecked = %+v, %v", c, err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := ReadOne(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: error %v", err)
	}
}

// FuzzParse: Parse never panics; what it reads has a non-empty role on every
// message, and writing it back in the canonical {"messages": [...]} form and
// reading that gives the same messages and metadata.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]`,
		`{"id":"x","domain":"d","persona":"p","topic":"t","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`,
		`{"conversation":[{"role":"user","content":"\u00e9\n"}]}`,
		`[{"messages":[{"role":"user","content":"a"}]},{"conversation":[{"role":"user","content":"b"}]}]`,
		`[{"role":"user"}]`, `{"messages":3}`, `[]`, `null`, `[1]`, `{"messages":[],"conversation":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cs, err := Parse(data, "fuzz.json")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(cs) == 0 {
			t.Fatal("no error and no conversation")
		}
		for _, c := range cs {
			if len(c.Messages) == 0 {
				t.Fatal("a conversation without messages")
			}
			type msg struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			}
			canon := struct {
				ID       string `json:"id"`
				Domain   string `json:"domain"`
				Persona  string `json:"persona"`
				Topic    string `json:"topic"`
				Messages []msg  `json:"messages"`
			}{ID: c.ID, Domain: c.Domain, Persona: c.Persona, Topic: c.Topic}
			for _, m := range c.Messages {
				if m.Role == "" {
					t.Fatal("a message with an empty role")
				}
				canon.Messages = append(canon.Messages, msg{m.Role, m.Content})
			}
			data, err := json.Marshal(canon)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(data, "canon.json")
			if err != nil {
				t.Fatalf("canonical form %s: %v", data, err)
			}
			a := again[0]
			if len(again) != 1 || !reflect.DeepEqual(a.Messages, c.Messages) || a.ID != c.ID || a.Domain != c.Domain || a.Persona != c.Persona || a.Topic != c.Topic {
				t.Fatalf("round trip of %s changed the conversation: %+v vs %+v", data, again, c)
			}
		}
	})
}
