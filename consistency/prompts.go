package consistency

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

//go:embed prompts/*.txt
var defaultPromptFS embed.FS

// Prompt files: the judge prompt templates and the diagnostic questions, by file name.
const (
	PromptToLineFile = "prompt_to_line.txt"
	LineToLineFile   = "line_to_line.txt"
	QAPromptFile     = "qa_prompt.txt"
	QAAnswersFile    = "qa_answers.txt"
	QuestionsFile    = "questions.txt"
)

// Placeholders are what each template may contain ({name} is replaced by the value); the
// ones marked required must appear.
//
//	{persona}          the persona prompt (every template, required)
//	{line}             the line judged (prompt_to_line, line_to_line; required)
//	{user}             the user message the line answers (prompt_to_line, line_to_line)
//	{earlier_lines}    the persona's earlier lines, numbered, oldest first (line_to_line; required)
//	{question}         the diagnostic question (qa_prompt, qa_answers; required)
//	{answer}           the answer judged (qa_prompt, qa_answers; required)
//	{earlier_answers}  the earlier answers to the same question, numbered (qa_answers; required)
var placeholders = map[string]struct{ required, optional []string }{
	PromptToLineFile: {[]string{"persona", "line"}, []string{"user"}},
	LineToLineFile:   {[]string{"persona", "line", "earlier_lines"}, []string{"user"}},
	QAPromptFile:     {[]string{"persona", "question", "answer"}, nil},
	QAAnswersFile:    {[]string{"persona", "question", "answer", "earlier_answers"}, nil},
}

// Prompts are the judge's prompt templates and the diagnostic questions.
type Prompts struct {
	PromptToLine, LineToLine, QAPrompt, QAAnswers string
	// Questions are the diagnostic questions asked about the persona.
	Questions []string
	// Source names where each file came from ("built-in" or a path), by file name.
	Source map[string]string
}

// DefaultPrompts returns the built-in prompts (consistency/prompts/*.txt).
func DefaultPrompts() (*Prompts, error) {
	return LoadPrompts("")
}

// LoadPrompts returns the built-in prompts with every file of dir that has one of their names
// (PromptToLineFile, ..., QuestionsFile) in its place; dir "" gives the built-in ones. Any other
// *.txt file in dir, a template without a required placeholder or with an unknown one, and a
// questions file without a question are errors naming the file.
func LoadPrompts(dir string) (*Prompts, error) {
	texts := map[string]string{}
	src := map[string]string{}
	names := []string{PromptToLineFile, LineToLineFile, QAPromptFile, QAAnswersFile, QuestionsFile}
	for _, n := range names {
		b, err := defaultPromptFS.ReadFile("prompts/" + n)
		if err != nil {
			return nil, fmt.Errorf("consistency: built-in prompt %s: %w", n, err)
		}
		texts[n], src[n] = string(b), "built-in"
	}
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("consistency: judge prompts: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".txt") {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if !slices.Contains(names, e.Name()) {
				return nil, fmt.Errorf("consistency: judge prompts: %s: unknown file (expected one of %s)", path, strings.Join(names, ", "))
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("consistency: judge prompts: %w", err)
			}
			texts[e.Name()], src[e.Name()] = string(b), path
		}
	}
	for n, ph := range placeholders {
		if err := checkTemplate(texts[n], ph.required, ph.optional); err != nil {
			return nil, fmt.Errorf("consistency: judge prompt %s: %w", where(src[n], n), err)
		}
	}
	qs := parseQuestions(texts[QuestionsFile])
	if len(qs) == 0 {
		return nil, fmt.Errorf("consistency: %s: no question (one per line; # starts a comment line)", where(src[QuestionsFile], QuestionsFile))
	}
	return &Prompts{
		PromptToLine: texts[PromptToLineFile], LineToLine: texts[LineToLineFile],
		QAPrompt: texts[QAPromptFile], QAAnswers: texts[QAAnswersFile],
		Questions: qs, Source: src,
	}, nil
}

// where names a prompt file's source for errors.
func where(src, name string) string {
	if src == "built-in" {
		return "built-in " + name
	}
	return src
}

var placeholderRE = regexp.MustCompile(`\{([a-z_]+)\}`)

// checkTemplate reports a missing required placeholder or an unknown one.
func checkTemplate(text string, required, optional []string) error {
	var errs []error
	for _, r := range required {
		if !strings.Contains(text, "{"+r+"}") {
			errs = append(errs, fmt.Errorf("missing placeholder {%s}", r))
		}
	}
	for _, m := range placeholderRE.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(required, m[1]) && !slices.Contains(optional, m[1]) {
			errs = append(errs, fmt.Errorf("unknown placeholder {%s} (allowed: {%s})", m[1], strings.Join(append(slices.Clone(required), optional...), "}, {")))
		}
	}
	return errors.Join(errs...)
}

// parseQuestions reads one question per non-empty line, skipping lines starting with #.
func parseQuestions(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// fill replaces every {name} of vals in tmpl, in one pass (a value holding "{line}" is not
// replaced again).
func fill(tmpl string, vals map[string]string) string {
	var pairs []string
	for k, v := range vals {
		pairs = append(pairs, "{"+k+"}", v)
	}
	return strings.NewReplacer(pairs...).Replace(tmpl)
}

// SHA256 is the hex sha256 of the four templates and the questions, to tell runs judged with
// different prompts apart.
func (p *Prompts) SHA256() string {
	h := sha256.New()
	for _, t := range []string{p.PromptToLine, p.LineToLine, p.QAPrompt, p.QAAnswers} {
		fmt.Fprintf(h, "%d:%s", len(t), t)
	}
	for _, q := range p.Questions {
		fmt.Fprintf(h, "%d:%s", len(q), q)
	}
	return hex.EncodeToString(h.Sum(nil))
}
