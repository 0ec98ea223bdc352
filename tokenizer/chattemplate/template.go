package chattemplate

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"

	"tether/tokenizer"
)

// Options are the variables a chat template is rendered with besides the
// messages, like the keyword arguments of transformers' apply_chat_template.
type Options struct {
	// AddGenerationPrompt asks the template to end with the opening of an
	// assistant turn (add_generation_prompt).
	AddGenerationPrompt bool
	// BOSToken and EOSToken are passed as bos_token and eos_token.
	BOSToken, EOSToken string
	// EnableThinking is passed as enable_thinking (Qwen 3) when not nil; nil
	// leaves the variable undefined, so the template's default applies.
	EnableThinking *bool
	// Extra holds further template variables (tools, documents, date_string,
	// pad_token, custom ones...). A key here overrides the variables above.
	// Values are plain Go data: string, bool, numbers, nil, []any,
	// map[string]any (rendered by tojson with keys sorted) and the like.
	Extra map[string]any
	// Now is the clock behind strftime_now; nil means time.Now. Tests inject
	// a fixed instant to make templates that print the date reproducible.
	Now func() time.Time
}

// Template is a parsed Jinja chat template, ready to render
// conversations the way transformers' apply_chat_template does. It is safe
// for concurrent use.
//
// Rendering uses gonja (a Go Jinja engine) in an environment set up like
// transformers' (trim_blocks, lstrip_blocks, loop controls, tojson as
// json.dumps, raise_exception, strftime_now). Where gonja differs from
// jinja2 in ways chat templates meet, the template is rewritten at parse
// time (nested "x if c else y", subscripts, methods on parenthesised
// expressions: see rewriteTemplate) or a builtin is replaced (str.strip,
// split, replace, startswith/endswith, dict.items order, reverse,
// wordcount, "is true"/"is false"). Known remaining differences, none of
// which the supported models' templates rely on:
//   - None and undefined are the same to gonja: None is not "defined",
//     prints as "" (jinja2: "None") and is replaced by default();
//   - there are no tuples: a tuple prints as a list;
//   - ** on integers gives a float (2**3 prints 8.0);
//   - an empty dict literal {} is true, and dictsort gives [] for one;
//   - // truncates towards zero (-7 // 2 is -3, Python says -4);
//   - printf-style "%s" % x on strings fails with an error;
//   - a conditional expression hoisted by the rewrite is evaluated even
//     where the original would have short-circuited past it.
//
// Go maps passed in Options.Extra are seen with their keys sorted
// (Python dicts keep insertion order); messages keep role, content.
type Template struct {
	name      string
	file      string
	source    string
	rewritten string
	tmpl      *exec.Template
}

// Error is returned by Render when the template itself calls
// raise_exception(message), e.g. Gemma's "Conversation roles must
// alternate ...".
type Error struct {
	// Template is the name the template was created with.
	Template string
	// File is the file the template was read from; "" when not known.
	File string
	// Message is the argument the template passed to raise_exception.
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("%s: raise_exception: %s", templateWhere(e.Template, e.File), e.Message)
}

// templateWhere names a template in errors: its name, and its file when
// known.
func templateWhere(name, file string) string {
	if file == "" {
		return fmt.Sprintf("chat template %q", name)
	}
	return fmt.Sprintf("chat template %q in %s", name, file)
}

// New parses a chat template once. name identifies it in errors
// (for example "default" or "tool_use"). Jinja constructs that the gonja
// engine does not parse are first rewritten into equivalent ones it does
// (see rewriteTemplate).
func New(source string, name string) (*Template, error) {
	return NewFile(source, name, "")
}

// NewFile is New for a template read from file
// (tokenizer_config.json, chat_template.jinja, ...), which its errors
// name besides the template's name and the line in the template.
func NewFile(source, name, file string) (tmpl *Template, err error) {
	where := templateWhere(name, file)
	defer func() {
		if r := recover(); r != nil {
			tmpl, err = nil, fmt.Errorf("%s: %s: %v", where, internalPanicText, r)
		}
	}()
	rewritten, err := rewriteTemplate(source)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	loader, err := loaders.NewFileSystemLoader("")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	const rootID = "chat_template"
	shifted, err := loaders.NewShiftedLoader(rootID, strings.NewReader(rewritten), loader)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	parsed, err := newGonjaTemplate(rootID, shifted)
	if err != nil {
		return nil, fmt.Errorf("%s: syntax error: %s", where, parseErrorText(err))
	}
	return &Template{name: name, file: file, source: source, rewritten: rewritten, tmpl: parsed}, nil
}

// Name is the name the template was created with.
func (t *Template) Name() string { return t.name }

// File is the file the template was read from, "" when not known.
func (t *Template) File() string { return t.file }

// Source is the template text as given to New.
func (t *Template) Source() string { return t.source }

// Render turns a conversation into the prompt text. An error that the
// template raises with raise_exception is returned as a *Error.
// Rendering is bounded (see maxTemplateCallDepth and the limits next to
// it): a template that recurses too deep or works too long fails with an
// error that names the template, its file and the line.
func (t *Template) Render(messages []tokenizer.Message, opts Options) (out string, err error) {
	defer func() {
		// gonja should not panic, but a template is untrusted input: turn
		// any panic inside the engine into an error.
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("%s: %s: %v", templateWhere(t.name, t.file), internalPanicText, r)
		}
	}()
	state := &renderState{now: opts.Now}
	if state.now == nil {
		state.now = time.Now
	}
	budget := &renderBudget{}
	vars := t.variables(messages, opts, state)
	vars[budgetVar] = budget
	var b strings.Builder
	err = t.tmpl.Execute(&limitWriter{w: &b, budget: budget}, exec.NewContext(vars))
	switch {
	case budget.err != nil:
		return "", fmt.Errorf("%s: %w", templateWhere(t.name, t.file), budget.err)
	case state.raised != nil:
		return "", &Error{Template: t.name, File: t.file, Message: *state.raised}
	case err != nil:
		return "", fmt.Errorf("%s: %w", templateWhere(t.name, t.file), cleanRenderError(err))
	}
	return b.String(), nil
}

// variables builds the template's global variables for one render.
func (t *Template) variables(messages []tokenizer.Message, opts Options, state *renderState) map[string]any {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		msgs[i] = templateMessage{"role": m.Role, "content": m.Content}
	}
	vars := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"bos_token":             opts.BOSToken,
		"eos_token":             opts.EOSToken,
		"tools":                 nil,
		"documents":             nil,
		"raise_exception":       state.raiseException,
		"strftime_now":          state.strftimeNow,
	}
	if opts.EnableThinking != nil {
		vars["enable_thinking"] = *opts.EnableThinking
	}
	for k, v := range opts.Extra {
		vars[k] = v
	}
	return vars
}

// templateMessage is a message as the template sees it: a dict. Its own
// type lets printing, tojson and items() keep Python's key order (role,
// content) where a plain Go map would sort its keys.
type templateMessage map[string]any

// keys lists the message's keys: role and content first, then any others
// sorted.
func (m templateMessage) keys() []string {
	keys := make([]string, 0, len(m))
	var rest []string
	for _, k := range []string{"role", "content"} {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	for k := range m {
		if k != "role" && k != "content" {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

// String prints the message as Python prints a dict.
func (m templateMessage) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range m.keys() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(pyRepr(k))
		b.WriteString(": ")
		b.WriteString(pyRepr(m[k]))
	}
	b.WriteByte('}')
	return b.String()
}

// internalPanicText marks errors from a panic inside the template engine
// (a bug there, turned into an error instead of crashing the caller).
const internalPanicText = "internal error in the template engine (panic)"

// renderState holds what the per-render global functions share.
type renderState struct {
	now    func() time.Time
	raised *string
}

// raiseException is the template global raise_exception(message): it
// records the message and stops rendering with an error.
func (s *renderState) raiseException(args *exec.VarArgs) (*exec.Value, error) {
	parts := make([]string, 0, len(args.Args))
	for _, a := range args.Args {
		parts = append(parts, a.String())
	}
	message := strings.Join(parts, " ")
	if s.raised == nil {
		s.raised = &message
	}
	return nil, errors.New("raise_exception: " + message)
}

// strftimeNow is the template global strftime_now(format).
func (s *renderState) strftimeNow(args *exec.VarArgs) (*exec.Value, error) {
	if len(args.Args) != 1 || !args.Args[0].IsString() || len(args.KwArgs) != 0 {
		return nil, errors.New("strftime_now expects one string argument, the format")
	}
	return exec.AsValue(templateStrftime(s.now(), args.Args[0].String())), nil
}

// parseErrorText shortens gonja's parse errors, which quote the whole
// template source, to the part that says what and where.
func parseErrorText(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, "': "); i >= 0 && strings.HasPrefix(msg, "failed to parse template '") {
		return msg[i+3:]
	}
	return msg
}

// countFilterNoise matches what gonja wraps around an error in a for loop's
// iterable because of the item-counting filter the limits put there (see
// guardParser), which the template's author never wrote.
var countFilterNoise = regexp.MustCompile(`(?s)unable to evaluate filter &\{<Token\[[^\]]*\] Val='.*?' Pos=\d+ Line=\d+ Col=\d+> ` + countItemsFilter + ` \[[^\]]*\] map\[\]\}: (?:invalid call to filter '` + countItemsFilter + `': )?`)

// cleanRenderError drops gonja's generic wrapping prefix and the traces of
// the item-counting filter.
func cleanRenderError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "unable to execute template: ")
	return errors.New(countFilterNoise.ReplaceAllString(msg, ""))
}
