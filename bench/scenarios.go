package bench

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"tether/conversation"
)

// Scenario is one scripted multi-turn conversation of the drift benchmark:
// the user turns are replayed in order and the assistant turns regenerated.
type Scenario struct {
	// ID names the scenario in reports: the conversation file's "id" field, or its
	// file name without extension (with "#N" for the Nth entry of a file
	// holding an array).
	ID string
	// Domain groups scenarios in the report: coding, writing, emotional,
	// philosophical for the built-in set, or a user's own (default "custom").
	Domain string
	// Persona describes the simulated user; the variance decomposition
	// groups by it (default: the scenario ID, one persona per scenario).
	Persona string
	// Topic is what the conversation is about.
	Topic string
	// UserTurns are the scripted user messages, in order.
	UserTurns []string
}

// Info returns the scenario's entry for report.json, with turns user turns
// (0 or more than len(UserTurns) means all of them).
func (s Scenario) Info(turns int) ScenarioInfo {
	n := len(s.UserTurns)
	if turns > 0 && turns < n {
		n = turns
	}
	return ScenarioInfo{ID: s.ID, Domain: s.Domain, Persona: s.Persona, Topic: s.Topic, Turns: n}
}

// Built-in domains.
const (
	DomainCoding        = "coding"
	DomainWriting       = "writing"
	DomainEmotional     = "emotional"
	DomainPhilosophical = "philosophical"
	// DomainCustom is the domain of a user's conversation file without one.
	DomainCustom = "custom"
)

//go:embed scenarios/*.json
var builtinScenarioFS embed.FS

// BuiltinScenarios returns the scenarios shipped with tether: four domains
// (coding help, creative writing, emotional support, philosophical and
// meta-reflective talk about the model's own nature), five conversations
// each, eight user turns each, sorted by ID.
func BuiltinScenarios() ([]Scenario, error) {
	sub, err := fs.Sub(builtinScenarioFS, "scenarios")
	if err != nil {
		return nil, fmt.Errorf("bench: built-in scenarios: %w", err)
	}
	return loadScenariosFS(sub, "built-in scenarios")
}

// LoadScenariosDir reads every *.json file of dir (sorted by name): each a
// conversation file (package conversation: {"id", "persona", "topic",
// "domain", "messages": [{"role": "user"|"assistant"|"system", "content":
// ...}]}, "conversation" as a synonym of "messages" as in the reference
// project's transcripts, or a list of such objects). The user turns are kept
// in order; assistant and system messages are dropped (assistant turns are
// regenerated). Errors name the file, the message and the field.
func LoadScenariosDir(dir string) ([]Scenario, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: scenarios: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bench: scenarios: %s: expected a directory of *.json conversation files", dir)
	}
	return loadScenariosFS(os.DirFS(dir), dir)
}

// loadScenariosFS reads the *.json files at the root of fsys; where names
// the source in errors.
func loadScenariosFS(fsys fs.FS, where string) ([]Scenario, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("bench: scenarios %s: %w", where, err)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("bench: scenarios %s: no *.json conversation files", where)
	}
	var out []Scenario
	seen := map[string]string{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("bench: scenarios: %s: %w", filepath.Join(where, name), err)
		}
		file := filepath.Join(where, name)
		scs, err := parseScenarios(data, file, strings.TrimSuffix(path.Base(name), ".json"))
		if err != nil {
			return nil, fmt.Errorf("bench: scenarios: %w", err)
		}
		for _, s := range scs {
			if prev, dup := seen[s.ID]; dup {
				return nil, fmt.Errorf("bench: scenarios: %s: id %q: already used by %s", file, s.ID, prev)
			}
			seen[s.ID] = file
			out = append(out, s)
		}
	}
	return out, nil
}

// parseScenarios reads the conversations of one file as scenarios; base is
// the file's name without extension, the ID of a conversation without "id"
// ("base#N" for the Nth of a list).
func parseScenarios(data []byte, file, base string) ([]Scenario, error) {
	cs, err := conversation.Parse(data, file)
	if err != nil {
		return nil, err
	}
	out := make([]Scenario, len(cs))
	for i, c := range cs {
		id := base
		if c.Index >= 0 {
			id = fmt.Sprintf("%s#%d", base, c.Index)
		}
		if out[i], err = scenario(c, id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scenario makes a conversation a scenario: its user turns, and defaults
// for what the file leaves out (ID defaultID, domain DomainCustom, persona
// the ID).
func scenario(c conversation.Conversation, defaultID string) (Scenario, error) {
	if err := c.Check(conversation.Rules{Need: conversation.RoleUser, Purpose: "to script", NonEmptyNeed: true}); err != nil {
		return Scenario{}, err
	}
	s := Scenario{ID: c.ID, Domain: c.Domain, Persona: c.Persona, Topic: c.Topic}
	if s.ID == "" {
		s.ID = defaultID
	}
	if s.Domain == "" {
		s.Domain = DomainCustom
	}
	if s.Persona == "" {
		s.Persona = s.ID
	}
	for _, m := range c.Messages {
		if m.Role == conversation.RoleUser { // assistant turns are regenerated, system ones not scripted
			s.UserTurns = append(s.UserTurns, m.Content)
		}
	}
	return s, nil
}
