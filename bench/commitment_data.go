package bench

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"os"
	"strings"
)

//go:embed commitdata/*.txt
var commitData embed.FS

// Subjects of the commitment game.
const (
	SubjectObject    = "object"
	SubjectCharacter = "character"
)

// CommitmentReveal is the last question of every branch: what the secret was, in one word or
// name (SubjectObject asks for a word, SubjectCharacter for a name).
func CommitmentReveal(subject string) string {
	if subject == SubjectCharacter {
		return "What was it? Answer with one name."
	}
	return "What was it? Answer with one word."
}

// BuiltinCommitmentQuestions returns the built-in yes/no questions of a subject
// (bench/commitdata/<subject>.txt).
func BuiltinCommitmentQuestions(subject string) ([]string, error) {
	if subject != SubjectObject && subject != SubjectCharacter {
		return nil, fmt.Errorf("bench: commitment: subject %q: expected %q or %q", subject, SubjectObject, SubjectCharacter)
	}
	data, err := commitData.ReadFile("commitdata/" + subject + ".txt")
	if err != nil {
		return nil, fmt.Errorf("bench: commitment: built-in questions: %w", err)
	}
	return parseLines(data, "built-in "+subject+" questions")
}

// LoadCommitmentQuestions reads a questions file: one yes/no question per line, blank lines and
// lines starting with '#' ignored.
func LoadCommitmentQuestions(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: commitment: questions: %w", err)
	}
	return parseLines(data, path)
}

// BuiltinCommitmentOpenings returns the built-in game openings with {subject} replaced.
func BuiltinCommitmentOpenings(subject string) ([]string, error) {
	data, err := commitData.ReadFile("commitdata/openings.txt")
	if err != nil {
		return nil, fmt.Errorf("bench: commitment: built-in openings: %w", err)
	}
	lines, err := parseLines(data, "built-in openings")
	if err != nil {
		return nil, err
	}
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, "{subject}", subject)
	}
	return lines, nil
}

// parseLines returns the non-blank, non-comment lines of data; what names the source in errors.
func parseLines(data []byte, what string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: commitment: %s: %w", what, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: commitment: %s: no lines (expected one entry per line; '#' starts a comment)", what)
	}
	return out, nil
}
