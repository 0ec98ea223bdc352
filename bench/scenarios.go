package bench

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
	"strings"
)

// Scenario is one scripted multi-turn conversation of the drift benchmark:
// the user turns are replayed in order and the assistant turns regenerated.
type Scenario struct {
	// ID names the scenario in reports: the transcript's "id" field, or its
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
	// DomainCustom is the domain of a user transcript without one.
	DomainCustom = "custom"
)

//go:embed scenarios/*.json
var builtinScenarioFS embed.FS

// transcriptFile is the transcript format of the assistant-axis reference
// project: persona, topic, domain and the conversation as role/content
// messages. Other fields (model, projections, steering settings) are ignored.
type transcriptFile struct {
	ID           string              `json:"id"`
	Persona      string              `json:"persona"`
	Topic        string              `json:"topic"`
	Domain       string              `json:"domain"`
	Conversation []transcriptMessage `json:"conversation"`
}

// transcriptMessage is one message of a transcript.
type transcriptMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

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

// LoadScenariosDir reads every *.json file of dir (sorted by name) in the
// transcript format: an object with "persona", "topic", "domain" and
// "conversation": [{"role": "user"|"assistant"|"system", "content": ...}],
// or an array of such objects. The user turns are kept in order; assistant
// and system messages are dropped (assistant turns are regenerated). Errors
// name the file and the field.
func LoadScenariosDir(dir string) ([]Scenario, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("bench: scenarios: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bench: scenarios: %s: expected a directory of *.json transcripts", dir)
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
		return nil, fmt.Errorf("bench: scenarios %s: no *.json transcript files", where)
	}
	var out []Scenario
	seen := map[string]string{}
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("bench: scenarios: %s: %w", filepath.Join(where, name), err)
		}
		file := filepath.Join(where, name)
		scs, err := parseTranscripts(data, strings.TrimSuffix(path.Base(name), ".json"))
		if err != nil {
			return nil, fmt.Errorf("bench: scenarios: %s: %w", file, err)
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

// parseTranscripts decodes one file: an object or an array of objects.
func parseTranscripts(data []byte, base string) ([]Scenario, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("empty file: expected a transcript object or an array of them")
	}
	if data[0] == '[' {
		var list []json.RawMessage
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("expected an array of transcript objects: %w", err)
		}
		if len(list) == 0 {
			return nil, errors.New("empty array: expected at least one transcript")
		}
		var out []Scenario
		for i, raw := range list {
			s, err := parseTranscript(raw, fmt.Sprintf("%s#%d", base, i))
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := parseTranscript(data, base)
	if err != nil {
		return nil, err
	}
	return []Scenario{s}, nil
}

// parseTranscript decodes one transcript object; defaultID is used when it
// has no "id".
func parseTranscript(data []byte, defaultID string) (Scenario, error) {
	var t transcriptFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&t); err != nil {
		return Scenario{}, fmt.Errorf("expected a transcript object with \"conversation\": %w", err)
	}
	if t.Conversation == nil {
		return Scenario{}, errors.New("field \"conversation\": missing: expected a list of {\"role\", \"content\"} messages")
	}
	if len(t.Conversation) == 0 {
		return Scenario{}, errors.New("field \"conversation\": empty: expected at least one user message")
	}
	s := Scenario{ID: strings.TrimSpace(t.ID), Domain: strings.TrimSpace(t.Domain),
		Persona: strings.TrimSpace(t.Persona), Topic: strings.TrimSpace(t.Topic)}
	if s.ID == "" {
		s.ID = defaultID
	}
	if s.Domain == "" {
		s.Domain = DomainCustom
	}
	if s.Persona == "" {
		s.Persona = s.ID
	}
	for i, msg := range t.Conversation {
		switch msg.Role {
		case "user":
			if strings.TrimSpace(msg.Content) == "" {
				return Scenario{}, fmt.Errorf("field \"conversation[%d].content\": empty user message", i)
			}
			s.UserTurns = append(s.UserTurns, msg.Content)
		case "assistant", "system":
			// Regenerated (assistant) or not part of the scripted user side.
		default:
			return Scenario{}, fmt.Errorf("field \"conversation[%d].role\": %q: expected \"user\", \"assistant\" or \"system\"", i, msg.Role)
		}
	}
	if len(s.UserTurns) == 0 {
		return Scenario{}, errors.New("field \"conversation\": no message with role \"user\"")
	}
	return s, nil
}
