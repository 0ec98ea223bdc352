// Package personas holds the personas given to a model under study: a persona set format (JSON),
// its loader, the built-in set of 22 personas each written as three anchors carrying the same
// facts (a sparse attribute list, first-person journal entries, a short document about the
// person), and the built-in Likert questionnaire with its answer parser.
//
// A persona set file is
//
//	{"format": "tether-personas/1",
//	 "personas": [{"id": "marta-baker", "name": "Marta Lindqvist",
//	               "facts": {"age": "52", ...},
//	               "anchors": {"sparse": "...", "journal": "...", "document": "..."}}]}
//
// Every persona needs an id (lower-case letters, digits and '-'), a name and a sparse anchor
// (its system prompt); the rich anchors are optional. Facts are free metadata (string values).
package personas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Format is the value of a persona set file's "format" field.
const Format = "tether-personas/1"

// Anchor forms: the kinds of text that give the model a persona.
const (
	// Sparse is a 3 to 5 sentence attribute list ("You are X, a 52-year-old baker...").
	Sparse = "sparse"
	// Journal is first-person journal entries written by the person.
	Journal = "journal"
	// Document is a short third-person document about the person.
	Document = "document"
)

// Forms lists the anchor forms in their canonical order.
var Forms = []string{Sparse, Journal, Document}

// Persona is one persona of a set.
type Persona struct {
	// ID names the persona in reports and run directories.
	ID string `json:"id"`
	// Name is the person's name.
	Name string `json:"name"`
	// Facts are the underlying facts every anchor states (free metadata).
	Facts map[string]string `json:"facts,omitempty"`
	// Anchors are the persona's texts by form (Sparse is required).
	Anchors map[string]string `json:"anchors"`
}

// Anchor is the text of the persona in form, and whether it has one.
func (p Persona) Anchor(form string) (string, bool) {
	a, ok := p.Anchors[form]
	return a, ok && a != ""
}

// Set is a persona set file's content.
type Set struct {
	// Format is Format.
	Format string `json:"format"`
	// Personas in file order.
	Personas []Persona `json:"personas"`
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// Parse reads a persona set from data; name (a file name) is used in errors, which name the
// persona (by index and id) and the field that is wrong and what was expected.
func Parse(data []byte, name string) (*Set, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Set
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("personas: %s: %w (expected a JSON object with \"format\" and \"personas\")", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("personas: %s: data after the JSON object", name)
	}
	if s.Format != Format {
		return nil, fmt.Errorf("personas: %s: field \"format\" is %q: expected %q", name, s.Format, Format)
	}
	if len(s.Personas) == 0 {
		return nil, fmt.Errorf("personas: %s: field \"personas\" is empty: expected at least one persona", name)
	}
	seen := map[string]int{}
	for i, p := range s.Personas {
		where := fmt.Sprintf("personas: %s: persona %d (%q)", name, i, p.ID)
		if !idPattern.MatchString(p.ID) {
			return nil, fmt.Errorf("%s: field \"id\" is %q: expected lower-case letters, digits and '-'", where, p.ID)
		}
		if j, dup := seen[p.ID]; dup {
			return nil, fmt.Errorf("%s: field \"id\": the id is also persona %d's: expected unique ids", where, j)
		}
		seen[p.ID] = i
		if strings.TrimSpace(p.Name) == "" {
			return nil, fmt.Errorf("%s: field \"name\" is empty: expected the person's name", where)
		}
		for form, text := range p.Anchors {
			if !slices.Contains(Forms, form) {
				return nil, fmt.Errorf("%s: field \"anchors\": unknown form %q: expected one of %s", where, form, strings.Join(Forms, ", "))
			}
			if strings.TrimSpace(text) == "" {
				return nil, fmt.Errorf("%s: field \"anchors.%s\" is empty: expected the anchor's text (or leave the form out)", where, form)
			}
		}
		if _, ok := p.Anchor(Sparse); !ok {
			return nil, fmt.Errorf("%s: field \"anchors.sparse\" is missing: expected the persona's 3 to 5 sentence system prompt", where)
		}
	}
	return &s, nil
}

// Load reads a persona set file (see Parse).
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("personas: %w", err)
	}
	return Parse(data, path)
}

//go:embed builtin/personas.json
var builtinPersonas []byte

// BuiltinFile names the built-in set in errors and reports.
const BuiltinFile = "personas/builtin/personas.json"

// Builtin is the built-in persona set: 22 varied, invented people, each with all three anchor
// forms stating the same facts.
func Builtin() (*Set, error) { return Parse(builtinPersonas, BuiltinFile) }
