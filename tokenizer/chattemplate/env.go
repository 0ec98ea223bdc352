package chattemplate

import (
	"fmt"
	"sync"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// The Jinja environment of chat templates mirrors transformers'
// _compile_jinja_template: trim_blocks and lstrip_blocks on, no trailing
// newline kept, the loopcontrols extension ({% break %}, {% continue %}:
// gonja has them built in), a tojson filter that behaves like Python's
// json.dumps(ensure_ascii=False, ...), and the globals raise_exception and
// strftime_now (added per render, see Template.variables). Its
// statements are wrapped to bound recursion and work, and range() is
// bounded like the sandbox's (see limits.go).
//
// It is built once, as a private copy of gonja's builtins, so that nothing
// here changes gonja's global default environment.
var (
	chatEnvOnce sync.Once
	chatEnv     *exec.Environment
	chatEnvErr  error
)

// chatTemplateConfig returns gonja's lexer/parser settings for chat templates.
func chatTemplateConfig() *config.Config {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	cfg.KeepTrailingNewline = false
	cfg.StrictUndefined = false
	cfg.AutoEscape = false
	return cfg
}

// chatEnvironment returns the shared environment, building it on first use.
func chatEnvironment() (*exec.Environment, error) {
	chatEnvOnce.Do(func() {
		filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
		if err := filters.Replace("tojson", filterPyJSON); err != nil {
			chatEnvErr = fmt.Errorf("chattemplate: environment: %w", err)
			return
		}
		for name, fn := range map[string]exec.FilterFunction{"reverse": filterReverseList, "wordcount": filterWordcountPy} {
			if err := filters.Replace(name, fn); err != nil {
				chatEnvErr = fmt.Errorf("chattemplate: environment: %w", err)
				return
			}
		}
		for name, fn := range map[string]exec.FilterFunction{subscriptFilterName: filterGetItem, countItemsFilter: filterCountItems} {
			if err := filters.Register(name, fn); err != nil {
				chatEnvErr = fmt.Errorf("chattemplate: environment: %w", err)
				return
			}
		}
		tests := exec.NewTestSet(map[string]exec.TestFunction{}).Update(builtins.Tests)
		for name, fn := range map[string]exec.TestFunction{"true": testIsTrue, "false": testIsFalse} {
			if err := tests.Replace(name, fn); err != nil {
				chatEnvErr = fmt.Errorf("chattemplate: environment: %w", err)
				return
			}
		}
		statements, err := guardedStatements()
		if err != nil {
			chatEnvErr = fmt.Errorf("chattemplate: environment: %w", err)
			return
		}
		globals := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
		globals.Set("range", boundedRange)
		methods := builtins.Methods
		methods.Str = chatStrMethods()
		methods.Dict = chatDictMethods()
		chatEnv = &exec.Environment{
			Context:           globals,
			Filters:           filters,
			Tests:             tests,
			ControlStructures: statements,
			Methods:           methods,
		}
	})
	return chatEnv, chatEnvErr
}

// newGonjaTemplate parses one template in the chat-template environment.
func newGonjaTemplate(id string, loader loaders.Loader) (*exec.Template, error) {
	env, err := chatEnvironment()
	if err != nil {
		return nil, err
	}
	return exec.NewTemplate(id, chatTemplateConfig(), loader, env)
}

// filterPyJSON is transformers' tojson filter:
// tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
// calling json.dumps with those arguments (no HTML escaping, unlike Jinja's
// own tojson). Arguments may be given by position or by name.
func filterPyJSON(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	names := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	args := map[string]*exec.Value{}
	if len(params.Args) > len(names) {
		return exec.AsValue(fmt.Errorf("tojson: takes at most %d arguments, got %d", len(names), len(params.Args)))
	}
	for i, a := range params.Args {
		args[names[i]] = a
	}
	for k, v := range params.KwArgs {
		known := false
		for _, n := range names {
			known = known || n == k
		}
		if !known {
			return exec.AsValue(fmt.Errorf("tojson: unexpected keyword argument %q", k))
		}
		if _, dup := args[k]; dup {
			return exec.AsValue(fmt.Errorf("tojson: got multiple values for argument %q", k))
		}
		args[k] = v
	}
	var indent *string
	if v, ok := args["indent"]; ok && !v.IsNil() {
		var s string
		switch {
		case v.IsString():
			s = v.String()
		case v.IsInteger():
			for i := 0; i < v.Integer(); i++ {
				s += " "
			}
		default:
			return exec.AsValue(fmt.Errorf("tojson: indent must be an integer or a string, not %s", v.String()))
		}
		indent = &s
	}
	o := newPyJSONOptions(indent)
	if v, ok := args["ensure_ascii"]; ok {
		o.ensureASCII = v.IsTrue()
	}
	if v, ok := args["sort_keys"]; ok {
		o.sortKeys = v.IsTrue()
	}
	if v, ok := args["separators"]; ok && !v.IsNil() {
		if !v.IsList() || v.Len() != 2 {
			return exec.AsValue(fmt.Errorf("tojson: separators must be a pair of strings, not %s", v.String()))
		}
		o.itemSep = v.Index(0).String()
		o.keySep = v.Index(1).String()
	}
	var data any
	if in.Val.IsValid() {
		data = in.Val.Interface()
	}
	s, err := pyJSONDumps(data, o)
	if err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(s)
}
