package probe

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// roleFileOut is the JSON written for one role by WriteReference.
type roleFileOut struct {
	Instruction []instructionOut `json:"instruction"`
	Questions   []string         `json:"questions,omitempty"`
	EvalPrompt  string           `json:"eval_prompt,omitempty"`
	Category    string           `json:"category,omitempty"`
}

type instructionOut struct {
	Pos string `json:"pos"`
}

type questionOut struct {
	Question string `json:"question"`
	ID       int    `json:"id"`
}

// WriteReference writes the data set in the reference format: rolesDir/<role>.json for every
// role, rolesDir/default.json, and the questions as JSONL at questionsPath. Directories are
// created as needed and existing files of the same names are replaced. LoadDataset reads the
// result back unchanged.
func (d *Dataset) WriteReference(rolesDir, questionsPath string) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("probe: write data set: %w", err)
	}
	if err := os.MkdirAll(rolesDir, 0o755); err != nil {
		return fmt.Errorf("probe: write data set: %w", err)
	}
	def := d.Default
	def.Name = DefaultRoleName
	for _, r := range append([]Role{def}, d.Roles...) {
		out := roleFileOut{Questions: r.Questions, EvalPrompt: r.EvalPrompt, Category: r.Category}
		for _, p := range r.Prompts {
			out.Instruction = append(out.Instruction, instructionOut{Pos: p})
		}
		data, err := marshalJSON(out, "  ")
		if err != nil {
			return fmt.Errorf("probe: write role %q: %w", r.Name, err)
		}
		file := filepath.Join(rolesDir, r.Name+".json")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			return fmt.Errorf("probe: write role file %s: %w", file, err)
		}
	}
	var buf bytes.Buffer
	for _, q := range d.Questions {
		line, err := marshalJSON(questionOut{Question: q.Text, ID: q.ID}, "")
		if err != nil {
			return fmt.Errorf("probe: write question %d: %w", q.ID, err)
		}
		buf.Write(line)
	}
	if dir := filepath.Dir(questionsPath); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("probe: write questions file %s: %w", questionsPath, err)
		}
	}
	if err := os.WriteFile(questionsPath, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("probe: write questions file %s: %w", questionsPath, err)
	}
	return nil
}
