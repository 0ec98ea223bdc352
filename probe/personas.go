// Package probe captures activations and builds persona space: the persona data set (roles,
// default prompts, extraction questions), rollouts, role vectors, the Assistant Axis, PCA and
// calibration.
package probe

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// builtinData holds the built-in persona data set in the reference format (see README.md there).
//
//go:embed data/roles/*.json data/extraction_questions.jsonl
var builtinData embed.FS

const (
	builtinRolesDir      = "data/roles"
	builtinQuestionsPath = "data/extraction_questions.jsonl"
	builtinShownPrefix   = "builtin:"
)

// DefaultRoleName is the name of the role that holds the neutral default (Assistant) prompts; in a
// roles directory it is the file default.json, and no ordinary role may use the name.
const DefaultRoleName = "default"

// ModelNamePlaceholder is the text in a prompt that ExpandModelName replaces by the model's name.
const ModelNamePlaceholder = "{model_name}"

// Categories of the built-in roles, as written in the optional "category" field of a role file.
const (
	CategoryProfessional  = "professional"   // helpful professionals: doctor, lawyer, chef...
	CategoryFictional     = "fictional"      // fictional and mythical characters: pirate, dragon...
	CategoryDark          = "dark"           // dark and adversarial characters: con artist, villain...
	CategoryNonHuman      = "nonhuman"       // non-human and abstract entities: the ocean, time...
	CategoryEmotion       = "emotion"        // emotional states: grief, rage, euphoria...
	CategoryNearAssistant = "near_assistant" // roles close to the Assistant: tutor, concierge...
	CategoryDefault       = "default"        // the neutral default prompts
)

// Role is one character archetype: the system prompts that ask the model to play it.
type Role struct {
	// Name is the role's identifier: the file name without ".json" in a roles directory.
	Name string
	// Category groups roles (see the Category constants); optional, empty when the file has none.
	Category string
	// Prompts are the role's system prompts (the "pos" entries of "instruction"), in file order.
	// They may contain ModelNamePlaceholder.
	Prompts []string
	// Questions are optional role-specific questions (the file's "questions"); nil when absent.
	Questions []string
	// EvalPrompt is the optional judge rubric of the reference format ("eval_prompt"); it may
	// contain {question} and {answer} placeholders. Empty when absent.
	EvalPrompt string
}

// Question is one extraction question asked under every system prompt.
type Question struct {
	// ID is the question's identifier, unique within a data set (the "id" field).
	ID int
	// Text is the question as the user asks it (the "question" field).
	Text string
}

// Dataset is a complete persona data set: roles, the neutral default prompts and the shared
// extraction questions.
type Dataset struct {
	// Roles are the character roles, sorted by name, the default excluded.
	Roles []Role
	// Default holds the neutral default prompts (Name DefaultRoleName).
	Default Role
	// Questions are the extraction questions, in file order.
	Questions []Question
}

// roleFile is the JSON form of a role file in the reference format; fields other than these
// (description, generator, ...) are accepted and ignored.
type roleFile struct {
	Instruction *[]json.RawMessage `json:"instruction"`
	Questions   []string           `json:"questions"`
	EvalPrompt  string             `json:"eval_prompt"`
	Category    string             `json:"category"`
}

// instructionEntry is one element of a role file's "instruction" array.
type instructionEntry struct {
	Pos *string `json:"pos"`
}

// questionLine is one line of an extraction questions JSONL file.
type questionLine struct {
	Question *string `json:"question"`
	ID       *int    `json:"id"`
}

// BuiltinDataset returns the data set embedded in the binary: 70 roles in six categories with 5
// system prompts each, 5 neutral default prompts and 153 extraction questions. Each call returns
// a fresh copy that the caller may change.
func BuiltinDataset() (*Dataset, error) {
	roles, def, err := builtinRoles()
	if err != nil {
		return nil, err
	}
	qs, err := builtinQuestions()
	if err != nil {
		return nil, err
	}
	d := &Dataset{Roles: roles, Default: def, Questions: qs}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("probe: built-in data set: %w", err)
	}
	return d, nil
}

func builtinRoles() ([]Role, Role, error) {
	sub, err := fs.Sub(builtinData, builtinRolesDir)
	if err != nil {
		return nil, Role{}, fmt.Errorf("probe: built-in roles: %w", err)
	}
	return loadRolesFS(sub, builtinShownPrefix+builtinRolesDir)
}

func builtinQuestions() ([]Question, error) {
	data, err := builtinData.ReadFile(builtinQuestionsPath)
	if err != nil {
		return nil, fmt.Errorf("probe: built-in questions: %w", err)
	}
	return parseQuestions(data, builtinShownPrefix+builtinQuestionsPath)
}

// LoadRolesDir reads a directory of role files in the reference format: one <role>.json per
// role, {"instruction": [{"pos": "..."}, ...], "questions": [...]}, plus default.json with the
// neutral default prompts, which is required. Other fields ("description", "eval_prompt",
// "category", ...) are allowed; files not ending in .json, and hidden files, are ignored. Roles
// come back sorted by name. Errors name the file and what was expected there.
func LoadRolesDir(dir string) ([]Role, Role, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, Role{}, fmt.Errorf("probe: roles directory: %w", err)
	}
	if !info.IsDir() {
		return nil, Role{}, fmt.Errorf("probe: roles directory %s: not a directory", dir)
	}
	return loadRolesFS(os.DirFS(dir), dir)
}

// loadRolesFS reads role files from the root of fsys; shown is the directory name used in errors.
func loadRolesFS(fsys fs.FS, shown string) ([]Role, Role, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, Role{}, fmt.Errorf("probe: roles directory %s: %w", shown, err)
	}
	var roles []Role
	var def *Role
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		file := joinShown(shown, name)
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, Role{}, fmt.Errorf("probe: role file %s: %w", file, err)
		}
		roleName := strings.TrimSuffix(name, ".json")
		r, err := parseRole(data, roleName, file)
		if err != nil {
			return nil, Role{}, err
		}
		if roleName == DefaultRoleName {
			def = &r
			continue
		}
		roles = append(roles, r)
	}
	if def == nil {
		return nil, Role{}, fmt.Errorf("probe: roles directory %s: missing %s.json (expected the neutral default prompts, e.g. {\"instruction\": [{\"pos\": \"\"}, {\"pos\": \"You are an AI assistant.\"}]})",
			shown, DefaultRoleName)
	}
	if len(roles) == 0 {
		return nil, Role{}, fmt.Errorf("probe: roles directory %s: no role files besides %s.json (expected <role>.json files)",
			shown, DefaultRoleName)
	}
	sort.Slice(roles, func(i, j int) bool { return roles[i].Name < roles[j].Name })
	return roles, *def, nil
}

// joinShown joins a displayed directory and a file name, with the OS separator for real paths.
func joinShown(shown, name string) string {
	if strings.HasPrefix(shown, builtinShownPrefix) {
		return path.Join(shown, name)
	}
	return filepath.Join(shown, name)
}

// parseRole decodes one role file; file names it in errors. The default role may have an empty
// prompt (no system prompt at all); other roles may not.
func parseRole(data []byte, name, file string) (Role, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Role{}, fmt.Errorf("probe: role file %s: file is empty (expected a JSON object with an \"instruction\" array of {\"pos\": \"...\"})", file)
	}
	var rf roleFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return Role{}, fmt.Errorf("probe: role file %s: invalid JSON for a role file (expected an object with an \"instruction\" array of {\"pos\": \"...\"}): %w",
			file, describeJSONError(data, err))
	}
	if rf.Instruction == nil {
		return Role{}, fmt.Errorf("probe: role file %s: role %q has no prompts: missing \"instruction\" (expected an array of {\"pos\": \"...\"})", file, name)
	}
	if len(*rf.Instruction) == 0 {
		return Role{}, fmt.Errorf("probe: role file %s: role %q has no prompts: \"instruction\" is empty (expected at least one {\"pos\": \"...\"})", file, name)
	}
	r := Role{Name: name, Category: rf.Category, EvalPrompt: rf.EvalPrompt}
	for i, raw := range *rf.Instruction {
		var e instructionEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return Role{}, fmt.Errorf("probe: role file %s: instruction[%d]: expected an object {\"pos\": \"...\"}: %w", file, i, err)
		}
		if e.Pos == nil {
			return Role{}, fmt.Errorf("probe: role file %s: instruction[%d]: missing \"pos\" (expected {\"pos\": \"...\"})", file, i)
		}
		if name != DefaultRoleName && strings.TrimSpace(*e.Pos) == "" {
			return Role{}, fmt.Errorf("probe: role file %s: instruction[%d]: empty \"pos\" (only %s.json may hold an empty prompt)", file, i, DefaultRoleName)
		}
		r.Prompts = append(r.Prompts, *e.Pos)
	}
	for i, q := range rf.Questions {
		if strings.TrimSpace(q) == "" {
			return Role{}, fmt.Errorf("probe: role file %s: questions[%d]: empty question", file, i)
		}
	}
	if len(rf.Questions) > 0 {
		r.Questions = rf.Questions
	}
	return r, nil
}

// describeJSONError adds the line and column of a syntax error to err.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, se.Offset)
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		line, col := lineCol(data, te.Offset)
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	}
	return err
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	if offset < 0 {
		offset = 0
	}
	before := data[:offset]
	line := bytes.Count(before, []byte{'\n'}) + 1
	col := int(offset) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return line, col
}

// LoadQuestions reads an extraction questions file in JSONL: one {"question": "...", "id": N} per
// line; blank lines are skipped and other fields are ignored. A line without "id" gets its
// 0-based position among the questions. Errors name the file and the line number: a line that is
// not a JSON object, a missing or empty "question", a negative or duplicate id, an empty file.
func LoadQuestions(path string) ([]Question, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("probe: questions file: %w", err)
	}
	return parseQuestions(data, path)
}

// parseQuestions decodes JSONL questions; file names the source in errors.
func parseQuestions(data []byte, file string) ([]Question, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var qs []Question
	firstLine := map[int]int{} // id -> line it was first used on
	for i, raw := range bytes.Split(data, []byte{'\n'}) {
		lineNo := i + 1
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		if line[0] != '{' {
			return nil, fmt.Errorf("probe: questions file %s: line %d: not a JSON object (expected {\"question\": \"...\", \"id\": N})", file, lineNo)
		}
		var ql questionLine
		if err := json.Unmarshal(line, &ql); err != nil {
			return nil, fmt.Errorf("probe: questions file %s: line %d: malformed JSON (expected {\"question\": \"...\", \"id\": N}): %w", file, lineNo, err)
		}
		if ql.Question == nil {
			return nil, fmt.Errorf("probe: questions file %s: line %d: missing \"question\" (expected {\"question\": \"...\", \"id\": N})", file, lineNo)
		}
		if strings.TrimSpace(*ql.Question) == "" {
			return nil, fmt.Errorf("probe: questions file %s: line %d: empty \"question\"", file, lineNo)
		}
		id := len(qs)
		if ql.ID != nil {
			id = *ql.ID
		}
		if id < 0 {
			return nil, fmt.Errorf("probe: questions file %s: line %d: id %d is negative (expected an integer >= 0)", file, lineNo, id)
		}
		if prev, dup := firstLine[id]; dup {
			return nil, fmt.Errorf("probe: questions file %s: line %d: duplicate id %d (first used on line %d)", file, lineNo, id, prev)
		}
		firstLine[id] = lineNo
		qs = append(qs, Question{ID: id, Text: *ql.Question})
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("probe: questions file %s: no questions (expected JSONL lines {\"question\": \"...\", \"id\": N})", file)
	}
	return qs, nil
}

// LoadDataset loads a data set from a roles directory (reference format, see LoadRolesDir) and a
// questions file (JSONL, see LoadQuestions). An empty rolesDir takes the built-in roles and
// default prompts; an empty questionsPath takes the built-in questions. The result is validated.
func LoadDataset(rolesDir, questionsPath string) (*Dataset, error) {
	var d Dataset
	var err error
	if rolesDir == "" {
		d.Roles, d.Default, err = builtinRoles()
	} else {
		d.Roles, d.Default, err = LoadRolesDir(rolesDir)
	}
	if err != nil {
		return nil, err
	}
	if questionsPath == "" {
		d.Questions, err = builtinQuestions()
	} else {
		d.Questions, err = LoadQuestions(questionsPath)
	}
	if err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("probe: data set (roles %q, questions %q): %w", shownSource(rolesDir), shownSource(questionsPath), err)
	}
	return &d, nil
}

func shownSource(p string) string {
	if p == "" {
		return "built-in"
	}
	return p
}

// ExpandModelName replaces every ModelNamePlaceholder ("{model_name}") in prompt by modelName, as
// the reference pipeline does with the model's short name (e.g. "Qwen", "Llama").
func ExpandModelName(prompt, modelName string) string {
	return strings.ReplaceAll(prompt, ModelNamePlaceholder, modelName)
}

// Validate checks that the data set is usable: at least one role; role names non-empty, unique,
// not DefaultRoleName and usable as file names; every role and the default with at least one
// prompt, no duplicate prompt within a role, no empty prompt outside the default; role questions
// non-empty; at least one extraction question, each with non-empty text and a unique id >= 0.
func (d *Dataset) Validate() error {
	if d == nil {
		return errors.New("nil data set")
	}
	if len(d.Roles) == 0 {
		return errors.New("no roles (expected at least one role besides the default)")
	}
	seen := map[string]bool{}
	for i, r := range d.Roles {
		if err := validateRoleName(r.Name); err != nil {
			return fmt.Errorf("role %d: %w", i, err)
		}
		if seen[r.Name] {
			return fmt.Errorf("role %d: duplicate role name %q", i, r.Name)
		}
		seen[r.Name] = true
		if err := validateRole(r, false); err != nil {
			return err
		}
	}
	if err := validateRole(d.Default, true); err != nil {
		return fmt.Errorf("default prompts: %w", err)
	}
	if len(d.Questions) == 0 {
		return errors.New("no extraction questions")
	}
	ids := map[int]int{}
	for i, q := range d.Questions {
		if strings.TrimSpace(q.Text) == "" {
			return fmt.Errorf("question %d (id %d): empty text", i, q.ID)
		}
		if q.ID < 0 {
			return fmt.Errorf("question %d: id %d is negative", i, q.ID)
		}
		if prev, dup := ids[q.ID]; dup {
			return fmt.Errorf("question %d: duplicate id %d (also question %d)", i, q.ID, prev)
		}
		ids[q.ID] = i
	}
	return nil
}

func validateRoleName(name string) error {
	switch {
	case name == "":
		return errors.New("empty role name")
	case name == DefaultRoleName:
		return fmt.Errorf("role name %q is reserved for the default prompts", name)
	case name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, "."):
		return fmt.Errorf("role name %q cannot be a file name", name)
	}
	return nil
}

func validateRole(r Role, isDefault bool) error {
	if len(r.Prompts) == 0 {
		return fmt.Errorf("role %q has no prompts", r.Name)
	}
	seen := map[string]int{}
	for i, p := range r.Prompts {
		if !isDefault && strings.TrimSpace(p) == "" {
			return fmt.Errorf("role %q: prompt %d is empty", r.Name, i)
		}
		if prev, dup := seen[p]; dup {
			return fmt.Errorf("role %q: prompt %d duplicates prompt %d", r.Name, i, prev)
		}
		seen[p] = i
	}
	for i, q := range r.Questions {
		if strings.TrimSpace(q) == "" {
			return fmt.Errorf("role %q: question %d is empty", r.Name, i)
		}
	}
	return nil
}

// Subset returns a small deterministic subset, for demos and tests: up to roles roles spread over
// the categories (round robin over categories in order of first appearance, then by name; evenly
// spaced by name when some role has no category), the first prompts prompts of each selected role
// and of the default, and the first questions extraction questions (role-specific questions are
// cut to the same count). A count <= 0, or larger than what there is, keeps everything. The
// result shares no slices with d.
func (d *Dataset) Subset(roles, prompts, questions int) *Dataset {
	out := &Dataset{Default: cutRole(d.Default, prompts, questions)}
	for _, i := range pickRoles(d.Roles, roles) {
		out.Roles = append(out.Roles, cutRole(d.Roles[i], prompts, questions))
	}
	out.Questions = slices.Clone(d.Questions[:limit(len(d.Questions), questions)])
	return out
}

// limit is n when 0 < n < total, else total.
func limit(total, n int) int {
	if n <= 0 || n > total {
		return total
	}
	return n
}

func cutRole(r Role, prompts, questions int) Role {
	r.Prompts = slices.Clone(r.Prompts[:limit(len(r.Prompts), prompts)])
	if r.Questions != nil {
		r.Questions = slices.Clone(r.Questions[:limit(len(r.Questions), questions)])
	}
	return r
}

// pickRoles returns the indices of n roles, in increasing order.
func pickRoles(roles []Role, n int) []int {
	n = limit(len(roles), n)
	byCategory := map[string][]int{}
	var order []string
	for i, r := range roles {
		if r.Category == "" {
			return evenlySpaced(len(roles), n)
		}
		if _, ok := byCategory[r.Category]; !ok {
			order = append(order, r.Category)
		}
		byCategory[r.Category] = append(byCategory[r.Category], i)
	}
	for _, c := range order {
		idx := byCategory[c]
		sort.Slice(idx, func(a, b int) bool { return roles[idx[a]].Name < roles[idx[b]].Name })
	}
	var picked []int
	for round := 0; len(picked) < n; round++ {
		for _, c := range order {
			if idx := byCategory[c]; round < len(idx) && len(picked) < n {
				picked = append(picked, idx[round])
			}
		}
	}
	sort.Ints(picked)
	return picked
}

// evenlySpaced returns n indices spread evenly over [0, total).
func evenlySpaced(total, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i * total / n
	}
	return out
}

// marshalJSON encodes v without HTML escaping, with a trailing newline.
func marshalJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
