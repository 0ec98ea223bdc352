package personas

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// QuestionnaireFormat is the value of a questionnaire file's "format" field.
const QuestionnaireFormat = "tether-questionnaire/1"

// Item is one questionnaire statement.
type Item struct {
	// ID names the item in reports.
	ID string `json:"id"`
	// Text is the statement the persona rates.
	Text string `json:"text"`
}

// Questionnaire is a set of statements rated on a numeric scale (annotation-style: one number
// per answer).
type Questionnaire struct {
	// Format is QuestionnaireFormat.
	Format string `json:"format"`
	// ScaleMin and ScaleMax bound the scale (1 and 7 for the built-in Likert scale).
	ScaleMin int `json:"scale_min"`
	ScaleMax int `json:"scale_max"`
	// Instruction follows each statement in the question.
	Instruction string `json:"instruction"`
	// Items in order.
	Items []Item `json:"items"`
}

// Question is the user turn that asks item it.
func (q *Questionnaire) Question(it Item) string {
	return fmt.Sprintf("How much do you agree with this statement: \"%s\" %s", it.Text, q.Instruction)
}

//go:embed builtin/questionnaire.json
var builtinQuestionnaire []byte

// BuiltinQuestionnaireFile names the built-in questionnaire in errors and reports.
const BuiltinQuestionnaireFile = "personas/builtin/questionnaire.json"

// BuiltinQuestionnaire is the built-in questionnaire: 22 statements about temperament, values
// and habits, rated 1 (strongly disagree) to 7 (strongly agree).
func BuiltinQuestionnaire() (*Questionnaire, error) {
	return ParseQuestionnaire(builtinQuestionnaire, BuiltinQuestionnaireFile)
}

// ParseQuestionnaire reads a questionnaire; errors name the file, the item and the field.
func ParseQuestionnaire(data []byte, name string) (*Questionnaire, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var q Questionnaire
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("personas: %s: %w", name, err)
	}
	if q.Format != QuestionnaireFormat {
		return nil, fmt.Errorf("personas: %s: field \"format\" is %q: expected %q", name, q.Format, QuestionnaireFormat)
	}
	if q.ScaleMin >= q.ScaleMax || q.ScaleMin < 0 || q.ScaleMax > 9 {
		return nil, fmt.Errorf("personas: %s: fields \"scale_min\" %d and \"scale_max\" %d: expected single digits with scale_min < scale_max", name, q.ScaleMin, q.ScaleMax)
	}
	if len(q.Items) == 0 {
		return nil, fmt.Errorf("personas: %s: field \"items\" is empty: expected at least one item", name)
	}
	seen := map[string]bool{}
	for i, it := range q.Items {
		if !idPattern.MatchString(it.ID) || seen[it.ID] {
			return nil, fmt.Errorf("personas: %s: item %d: field \"id\" is %q: expected a unique id of lower-case letters, digits and '-'", name, i, it.ID)
		}
		seen[it.ID] = true
		if strings.TrimSpace(it.Text) == "" {
			return nil, fmt.Errorf("personas: %s: item %d (%q): field \"text\" is empty: expected the statement", name, i, it.ID)
		}
	}
	return &q, nil
}

// numberPattern finds whole numbers (not part of a longer run of digits or a decimal), and
// whether another number follows as an alternative ("4-5", "4 or 5", "4/5").
var (
	numberPattern = regexp.MustCompile(`(^|[^0-9.,])([0-9]+)([.,][0-9]+)?`)
	rangeAfter    = regexp.MustCompile(`^\s*(-|–|to|or|/)\s*[0-9]`)
	scaleAfter    = regexp.MustCompile(`^\s*(/|out of|of)\s*([0-9]+)`)
)

// ParseAnswer extracts the rating from an answer: the first whole number in the text. It never
// guesses: the answer is unparseable (ok false, with the reason) when the text has no number,
// the first number is a decimal, outside [ScaleMin, ScaleMax], or given as a choice or range
// ("4-5", "4 or 5"). "5/7" and "5 out of 7" are read as 5 when the second number is ScaleMax.
func (q *Questionnaire) ParseAnswer(text string) (value int, ok bool, reason string) {
	m := numberPattern.FindStringSubmatchIndex(text)
	if m == nil {
		return 0, false, "no number in the answer"
	}
	if m[6] >= 0 {
		return 0, false, fmt.Sprintf("the first number %q is not a whole number", text[m[4]:m[7]])
	}
	v, err := strconv.Atoi(text[m[4]:m[5]])
	if err != nil || v < q.ScaleMin || v > q.ScaleMax {
		return 0, false, fmt.Sprintf("the first number %q is outside the scale %d to %d", text[m[4]:m[5]], q.ScaleMin, q.ScaleMax)
	}
	rest := text[m[5]:]
	if s := scaleAfter.FindStringSubmatch(rest); s != nil {
		if s[2] != strconv.Itoa(q.ScaleMax) {
			return 0, false, fmt.Sprintf("the number %d is given out of %s, not out of %d", v, s[2], q.ScaleMax)
		}
		return v, true, ""
	}
	if rangeAfter.MatchString(rest) {
		return 0, false, fmt.Sprintf("the number %d is given as a choice or range", v)
	}
	return v, true, ""
}
