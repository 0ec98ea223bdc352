package probe

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// writeFiles writes name -> content under dir and returns dir.
func writeFiles(t *testing.T, dir string, files map[string]string) string {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodDefault = `{"instruction": [{"pos": ""}, {"pos": "You are an AI assistant."}]}`

func TestBuiltinDatasetMeetsCounts(t *testing.T) {
	d, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Roles) < 64 {
		t.Errorf("built-in roles: got %d, want at least 64", len(d.Roles))
	}
	if len(d.Questions) < 120 {
		t.Errorf("built-in questions: got %d, want at least 120", len(d.Questions))
	}

	// The default prompts the method prescribes, written out independently of the data file.
	wantDefaults := []string{"", "You are an AI assistant.", "You are a helpful assistant.",
		"You are {model_name}, a helpful AI assistant."}
	if len(d.Default.Prompts) != 5 {
		t.Errorf("default prompts: got %d, want 5", len(d.Default.Prompts))
	}
	for _, w := range wantDefaults {
		if !slices.Contains(d.Default.Prompts, w) {
			t.Errorf("default prompts lack %q", w)
		}
	}
	if d.Default.Name != DefaultRoleName || d.Default.Category != CategoryDefault {
		t.Errorf("default role: name %q category %q", d.Default.Name, d.Default.Category)
	}

	perCategory := map[string]int{}
	allPrompts := map[string]string{}
	withPlaceholder := 0
	for _, r := range d.Roles {
		if len(r.Prompts) != 5 {
			t.Errorf("role %q: %d prompts, want 5", r.Name, len(r.Prompts))
		}
		if !slices.Contains(builtinCategories(), r.Category) {
			t.Errorf("role %q: category %q is not one of %v", r.Name, r.Category, builtinCategories())
		}
		perCategory[r.Category]++
		for _, p := range r.Prompts {
			if !strings.HasPrefix(p, "You are") {
				t.Errorf("role %q: prompt is not second person %q", r.Name, p)
			}
			if other, dup := allPrompts[p]; dup {
				t.Errorf("prompt %q appears in roles %q and %q", p, other, r.Name)
			}
			allPrompts[p] = r.Name
			if strings.Contains(p, ModelNamePlaceholder) {
				withPlaceholder++
			}
			if strings.Contains(p, "{") && !strings.Contains(p, ModelNamePlaceholder) {
				t.Errorf("role %q: prompt has a stray brace: %q", r.Name, p)
			}
		}
	}
	for _, c := range builtinCategories() {
		if perCategory[c] < 6 {
			t.Errorf("category %q: %d roles, want at least 6", c, perCategory[c])
		}
	}
	if withPlaceholder < 10 {
		t.Errorf("only %d role prompts use %s, want some (at least 10)", withPlaceholder, ModelNamePlaceholder)
	}

	// Roles the issue names explicitly, one or more per category.
	for _, name := range []string{"doctor", "lawyer", "teacher", "software_engineer", "therapist",
		"librarian", "accountant", "chef", "pirate", "wizard", "dragon", "vampire", "knight", "oracle",
		"trickster_god", "con_artist", "cult_leader", "nihilist", "saboteur", "manipulator", "villain",
		"ocean", "black_hole", "ancient_tree", "sentient_city", "concept_of_time", "virus",
		"ghost_in_the_machine", "grief", "rage", "euphoria", "anxiety", "loneliness", "jealousy",
		"customer_service_agent", "tutor", "concierge"} {
		if !slices.ContainsFunc(d.Roles, func(r Role) bool { return r.Name == name }) {
			t.Errorf("built-in set lacks role %q", name)
		}
	}

	texts := map[string]bool{}
	for i, q := range d.Questions {
		if q.ID != i {
			t.Errorf("question %d has id %d, want ids 0..n-1 in order", i, q.ID)
		}
		if texts[strings.ToLower(q.Text)] {
			t.Errorf("duplicate question %q", q.Text)
		}
		texts[strings.ToLower(q.Text)] = true
	}
	if !slices.IsSortedFunc(d.Roles, func(a, b Role) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("roles are not sorted by name")
	}
}

func TestBuiltinDatasetIsAFreshCopy(t *testing.T) {
	a, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	a.Roles[0].Prompts[0] = "changed"
	a.Questions[0].Text = "changed"
	b, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	if b.Roles[0].Prompts[0] == "changed" || b.Questions[0].Text == "changed" {
		t.Error("BuiltinDataset shares state between calls")
	}
}

func TestLoadRolesDirReadsReferenceFormat(t *testing.T) {
	dir := writeFiles(t, t.TempDir(), map[string]string{
		"default.json": `{"instruction": [{"pos": ""}, {"pos": "You are {model_name}."}]}`,
		// A file shaped like the reference project's, with fields tether does not use.
		"pirate.json": `{
  "description": "A pirate.",
  "instruction": [{"pos": "You are a pirate."}, {"pos": "Be a pirate, {model_name}.", "neg": "ignored"}],
  "questions": ["Where is the treasure?"],
  "eval_prompt": "Score {question} / {answer}",
  "generator": {"model": "x"}
}`,
		"ocean.json":       `{"instruction": [{"pos": "You are the ocean."}], "category": "nonhuman"}`,
		"README.md":        "not a role",
		".hidden.json":     "{not json",
		"sub/nested.json":  "{not json either",
		"Zebra Crab.json":  `{"instruction": [{"pos": "You are a crab."}]}`,
		"notes.json.bak":   "ignored",
		"another-one.json": `{"instruction": [{"pos": "You are \u00e9l\u00e8ve."}]}`,
	})
	roles, def, err := LoadRolesDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Role{
		{Name: "Zebra Crab", Prompts: []string{"You are a crab."}},
		{Name: "another-one", Prompts: []string{"You are élève."}},
		{Name: "ocean", Category: "nonhuman", Prompts: []string{"You are the ocean."}},
		{Name: "pirate", Prompts: []string{"You are a pirate.", "Be a pirate, {model_name}."},
			Questions: []string{"Where is the treasure?"}, EvalPrompt: "Score {question} / {answer}"},
	}
	if !reflect.DeepEqual(roles, want) {
		t.Errorf("roles:\n got %#v\nwant %#v", roles, want)
	}
	wantDef := Role{Name: DefaultRoleName, Prompts: []string{"", "You are {model_name}."}}
	if !reflect.DeepEqual(def, wantDef) {
		t.Errorf("default: got %#v, want %#v", def, wantDef)
	}
}

func TestLoadRolesDirErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"malformed json", map[string]string{"default.json": goodDefault, "pirate.json": "{\n  \"instruction\": [\n    {\"pos\": \"x\"},,\n  ]\n}"},
			[]string{"pirate.json", "invalid JSON", "line 3"}},
		{"top level array", map[string]string{"default.json": goodDefault, "pirate.json": `[{"pos": "x"}]`},
			[]string{"pirate.json", "expected an object"}},
		{"empty file", map[string]string{"default.json": goodDefault, "pirate.json": "  \n"},
			[]string{"pirate.json", "file is empty"}},
		{"no instruction", map[string]string{"default.json": goodDefault, "pirate.json": `{"questions": ["q"]}`},
			[]string{"pirate.json", `role "pirate" has no prompts`, `missing "instruction"`}},
		{"empty role", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": []}`},
			[]string{"pirate.json", `role "pirate" has no prompts`, "is empty"}},
		{"entry without pos", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": [{"pos": "a"}, {"neg": "b"}]}`},
			[]string{"pirate.json", "instruction[1]", `missing "pos"`}},
		{"pos not a string", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": [{"pos": 3}]}`},
			[]string{"pirate.json", "instruction[0]", `{"pos": "..."}`}},
		{"entry not an object", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": ["You are a pirate."]}`},
			[]string{"pirate.json", "instruction[0]", "expected an object"}},
		{"empty prompt in a role", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": [{"pos": "  "}]}`},
			[]string{"pirate.json", "instruction[0]", `empty "pos"`}},
		{"empty role question", map[string]string{"default.json": goodDefault, "pirate.json": `{"instruction": [{"pos": "a"}], "questions": ["ok", ""]}`},
			[]string{"pirate.json", "questions[1]", "empty question"}},
		{"missing default", map[string]string{"pirate.json": `{"instruction": [{"pos": "a"}]}`},
			[]string{"missing default.json", "neutral default prompts"}},
		{"bad default", map[string]string{"default.json": `{"instruction": [{"text": ""}]}`, "pirate.json": `{"instruction": [{"pos": "a"}]}`},
			[]string{"default.json", "instruction[0]", `missing "pos"`}},
		{"only default", map[string]string{"default.json": goodDefault},
			[]string{"no role files besides default.json"}},
		{"no files at all", map[string]string{"README.md": "x"},
			[]string{"missing default.json"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), tc.files)
			_, _, err := LoadRolesDir(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, dir) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("directory does not exist", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		if _, _, err := LoadRolesDir(missing); err == nil || !strings.Contains(err.Error(), "nope") {
			t.Errorf("error %v does not name the directory", err)
		}
	})
	t.Run("path is a file", func(t *testing.T) {
		dir := writeFiles(t, t.TempDir(), map[string]string{"default.json": goodDefault})
		file := filepath.Join(dir, "default.json")
		if _, _, err := LoadRolesDir(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("error %v, want not a directory", err)
		}
	})
}

func TestLoadQuestions(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Question
	}{
		{"reference lines", "{\"question\": \"Who are you?\", \"id\": 0}\n{\"question\": \"Why?\", \"id\": 1}\n",
			[]Question{{0, "Who are you?"}, {1, "Why?"}}},
		{"no trailing newline, blank lines, CRLF", "\n{\"question\": \"A\", \"id\": 7}\r\n\r\n  {\"id\": 3, \"question\": \"B\"}  ",
			[]Question{{7, "A"}, {3, "B"}}},
		{"byte order mark and extra fields", "\xef\xbb\xbf{\"question\": \"A\", \"id\": 2, \"topic\": \"x\"}\n",
			[]Question{{2, "A"}}},
		{"missing ids take the position", "{\"question\": \"A\"}\n{\"question\": \"B\"}\n",
			[]Question{{0, "A"}, {1, "B"}}},
		{"unicode and escapes", `{"question": "Qu'est-ce que c'est ? \"x\" \u2603", "id": 0}`,
			[]Question{{0, "Qu'est-ce que c'est ? \"x\" ☃"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "q.jsonl")
			writeFiles(t, filepath.Dir(p), map[string]string{"q.jsonl": tc.content})
			got, err := LoadQuestions(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLoadQuestionsErrors(t *testing.T) {
	good := `{"question": "fine", "id": 0}` + "\n"
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{"not json", good + `{"question": "ok", "id": 1}` + "\nthis is not json\n", []string{"line 3", "not a JSON object"}},
		{"broken json", good + `{"question": "unterminated, "id": 1}` + "\n", []string{"line 2", "malformed JSON"}},
		{"array line", good + "\n" + `["question"]` + "\n", []string{"line 3", "not a JSON object"}},
		{"missing question", good + `{"text": "x", "id": 1}` + "\n", []string{"line 2", `missing "question"`}},
		{"question not a string", good + `{"question": 5, "id": 1}` + "\n", []string{"line 2", "malformed JSON"}},
		{"empty question", good + `{"question": "   ", "id": 1}` + "\n", []string{"line 2", `empty "question"`}},
		{"id not an integer", good + `{"question": "x", "id": 1.5}` + "\n", []string{"line 2", "malformed JSON"}},
		{"negative id", good + `{"question": "x", "id": -1}` + "\n", []string{"line 2", "negative"}},
		{"duplicate id", good + `{"question": "x", "id": 4}` + "\n" + `{"question": "y", "id": 4}` + "\n",
			[]string{"line 3", "duplicate id 4", "first used on line 2"}},
		{"implicit id collides", `{"question": "x", "id": 1}` + "\n" + `{"question": "y"}` + "\n",
			[]string{"line 2", "duplicate id 1", "line 1"}},
		{"empty file", "", []string{"no questions"}},
		{"blank lines only", "\n \n\t\n", []string{"no questions"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), map[string]string{"q.jsonl": tc.content})
			p := filepath.Join(dir, "q.jsonl")
			_, err := LoadQuestions(p)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range append(tc.want, p) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("file does not exist", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "missing.jsonl")
		if _, err := LoadQuestions(p); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
			t.Errorf("error %v does not name the file", err)
		}
	})
}

// TestRoundTrip writes the built-in set in the reference format, checks the files' shape with
// generic JSON decoding, and loads them back unchanged.
func TestRoundTrip(t *testing.T) {
	d, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	// Exercise the optional fields too.
	d.Roles[0].Questions = []string{"What do you do all day?", "What is <hard> & why?"}
	d.Roles[0].EvalPrompt = "Rate {question} against {answer}."

	tmp := t.TempDir()
	rolesDir := filepath.Join(tmp, "roles", "instructions")
	qPath := filepath.Join(tmp, "extraction_questions.jsonl")
	if err := d.WriteReference(rolesDir, qPath); err != nil {
		t.Fatal(err)
	}

	entries, err := os.ReadDir(rolesDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(d.Roles)+1 {
		t.Errorf("wrote %d role files, want %d", len(entries), len(d.Roles)+1)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(rolesDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var generic map[string]any
		if err := json.Unmarshal(data, &generic); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		instr, ok := generic["instruction"].([]any)
		if !ok || len(instr) == 0 {
			t.Fatalf("%s: no instruction array", e.Name())
		}
		for _, it := range instr {
			m, ok := it.(map[string]any)
			if _, isString := m["pos"].(string); !ok || !isString || len(m) != 1 {
				t.Errorf("%s: instruction entry %v is not {\"pos\": string}", e.Name(), it)
			}
		}
	}
	qData, err := os.ReadFile(qPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(qData), "\n"), "\n")
	if len(lines) != len(d.Questions) {
		t.Errorf("questions file has %d lines, want %d", len(lines), len(d.Questions))
	}
	for i, l := range lines {
		var generic map[string]any
		if err := json.Unmarshal([]byte(l), &generic); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if _, ok := generic["question"].(string); !ok || generic["id"] != float64(d.Questions[i].ID) || len(generic) != 2 {
			t.Errorf("line %d is not {\"question\": string, \"id\": %d}: %s", i+1, d.Questions[i].ID, l)
		}
	}

	back, err := LoadDataset(rolesDir, qPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, d) {
		t.Error("data set read back differs from the one written")
		for i := range min(len(back.Roles), len(d.Roles)) {
			if !reflect.DeepEqual(back.Roles[i], d.Roles[i]) {
				t.Errorf("first difference: role %d: got %#v, want %#v", i, back.Roles[i], d.Roles[i])
				break
			}
		}
	}
}

func TestLoadDataset(t *testing.T) {
	builtin, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	all, err := LoadDataset("", "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, builtin) {
		t.Error(`LoadDataset("", "") differs from BuiltinDataset()`)
	}

	dir := writeFiles(t, t.TempDir(), map[string]string{
		"roles/default.json": goodDefault,
		"roles/pirate.json":  `{"instruction": [{"pos": "You are a pirate."}]}`,
		"q.jsonl":            `{"question": "Ahoy?", "id": 9}` + "\n",
	})
	rolesDir, qPath := filepath.Join(dir, "roles"), filepath.Join(dir, "q.jsonl")

	userRoles, err := LoadDataset(rolesDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(userRoles.Roles) != 1 || userRoles.Roles[0].Name != "pirate" || !reflect.DeepEqual(userRoles.Questions, builtin.Questions) {
		t.Errorf("user roles with built-in questions: got %d roles, %d questions", len(userRoles.Roles), len(userRoles.Questions))
	}
	userQuestions, err := LoadDataset("", qPath)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(userQuestions.Roles, builtin.Roles) || !reflect.DeepEqual(userQuestions.Questions, []Question{{9, "Ahoy?"}}) {
		t.Error("built-in roles with user questions: wrong content")
	}
	if _, err := LoadDataset(filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("missing roles dir: no error")
	}
	if _, err := LoadDataset("", filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Error("missing questions file: no error")
	}
}

func TestExpandModelName(t *testing.T) {
	tests := []struct{ prompt, model, want string }{
		{"You are {model_name}, a helpful AI assistant.", "Qwen", "You are Qwen, a helpful AI assistant."},
		{"{model_name} and {model_name}", "Llama", "Llama and Llama"},
		{"No placeholder here.", "Gemma", "No placeholder here."},
		{"", "Gemma", ""},
		{"{model_name}", "", ""},
		{"{model name} {MODEL_NAME} {{model_name}}", "X", "{model name} {MODEL_NAME} {X}"},
	}
	for _, tc := range tests {
		if got := ExpandModelName(tc.prompt, tc.model); got != tc.want {
			t.Errorf("ExpandModelName(%q, %q) = %q, want %q", tc.prompt, tc.model, got, tc.want)
		}
	}
}

func TestSubset(t *testing.T) {
	d, err := BuiltinDataset()
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := BuiltinDataset()

	s := d.Subset(6, 2, 10)
	if len(s.Roles) != 6 || len(s.Questions) != 10 || len(s.Default.Prompts) != 2 {
		t.Fatalf("Subset(6, 2, 10): %d roles, %d questions, %d default prompts", len(s.Roles), len(s.Questions), len(s.Default.Prompts))
	}
	cats := map[string]bool{}
	for _, r := range s.Roles {
		cats[r.Category] = true
		if len(r.Prompts) != 2 {
			t.Errorf("role %q: %d prompts, want 2", r.Name, len(r.Prompts))
		}
		i := slices.IndexFunc(d.Roles, func(o Role) bool { return o.Name == r.Name })
		if i < 0 || !slices.Equal(r.Prompts, d.Roles[i].Prompts[:2]) {
			t.Errorf("role %q: prompts are not the role's first two", r.Name)
		}
	}
	if len(cats) != len(builtinCategories()) {
		t.Errorf("6 roles cover %d categories, want all %d", len(cats), len(builtinCategories()))
	}
	if !slices.Equal(s.Questions, d.Questions[:10]) {
		t.Error("questions are not the first 10")
	}
	if err := s.Validate(); err != nil {
		t.Errorf("subset is not valid: %v", err)
	}
	if again := d.Subset(6, 2, 10); !reflect.DeepEqual(again, s) {
		t.Error("Subset is not deterministic")
	}

	// No aliasing: changing the subset leaves the source alone.
	s.Roles[0].Prompts[0] = "changed"
	s.Questions[0].Text = "changed"
	s.Default.Prompts[0] = "changed"
	if !reflect.DeepEqual(d, orig) {
		t.Error("changing a subset changed the data set it came from")
	}

	for _, n := range []int{0, -1, 1000} {
		if all := d.Subset(n, n, n); !reflect.DeepEqual(all, d) {
			t.Errorf("Subset(%d, %d, %d) is not the whole set", n, n, n)
		}
	}

	// Roles without categories: evenly spaced by position.
	plain := &Dataset{Default: Role{Name: DefaultRoleName, Prompts: []string{""}}, Questions: []Question{{0, "q"}}}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		plain.Roles = append(plain.Roles, Role{Name: name, Prompts: []string{"You are " + name}})
	}
	var names []string
	for _, r := range plain.Subset(4, 0, 0).Roles {
		names = append(names, r.Name)
	}
	if want := []string{"a", "c", "e", "g"}; !slices.Equal(names, want) {
		t.Errorf("evenly spaced subset: got %v, want %v", names, want)
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Dataset {
		return &Dataset{
			Roles: []Role{
				{Name: "pirate", Prompts: []string{"You are a pirate."}},
				{Name: "ocean", Prompts: []string{"You are the ocean."}, Questions: []string{"How deep?"}},
			},
			Default:   Role{Name: DefaultRoleName, Prompts: []string{"", "You are an AI assistant."}},
			Questions: []Question{{0, "Who are you?"}, {5, "Why?"}},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid data set: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Dataset)
		want   string
	}{
		{"no roles", func(d *Dataset) { d.Roles = nil }, "no roles"},
		{"empty name", func(d *Dataset) { d.Roles[0].Name = "" }, "empty role name"},
		{"duplicate name", func(d *Dataset) { d.Roles[1].Name = "pirate" }, `duplicate role name "pirate"`},
		{"reserved name", func(d *Dataset) { d.Roles[0].Name = DefaultRoleName }, "reserved"},
		{"path in name", func(d *Dataset) { d.Roles[0].Name = "../evil" }, "cannot be a file name"},
		{"role without prompts", func(d *Dataset) { d.Roles[0].Prompts = nil }, `role "pirate" has no prompts`},
		{"empty prompt", func(d *Dataset) { d.Roles[0].Prompts = []string{"x", " "} }, `role "pirate": prompt 1 is empty`},
		{"duplicate prompt", func(d *Dataset) { d.Roles[0].Prompts = []string{"x", "x"} }, "prompt 1 duplicates prompt 0"},
		{"empty role question", func(d *Dataset) { d.Roles[1].Questions = []string{""} }, `role "ocean": question 0 is empty`},
		{"default without prompts", func(d *Dataset) { d.Default.Prompts = nil }, "default prompts"},
		{"no questions", func(d *Dataset) { d.Questions = nil }, "no extraction questions"},
		{"duplicate id", func(d *Dataset) { d.Questions[1].ID = 0 }, "duplicate id 0"},
		{"negative id", func(d *Dataset) { d.Questions[1].ID = -3 }, "negative"},
		{"empty question", func(d *Dataset) { d.Questions[0].Text = "" }, "empty text"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.change(d)
			err := d.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	var nilSet *Dataset
	if err := nilSet.Validate(); err == nil {
		t.Error("nil data set: no error")
	}
}

// builtinCategories lists the categories of the built-in roles (CategoryDefault excluded).
func builtinCategories() []string {
	return []string{CategoryProfessional, CategoryFictional, CategoryDark, CategoryNonHuman,
		CategoryEmotion, CategoryNearAssistant}
}
