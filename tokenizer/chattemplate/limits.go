package chattemplate

import (
	"errors"
	"fmt"
	"io"

	controlStructures "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// A chat template is untrusted input, and gonja runs it with no limits: a
// macro that calls itself forever overflows the Go stack, which is a fatal
// error that no recover can catch, and a loop over range(10**9) runs (and
// allocates) for as long as it likes. Every render therefore carries a
// budget, checked at the points where a template can make work:
//
//   - nested calls (macro calls, caller() of a {% call %} block, loop() of a
//     recursive for loop, self.block(), include) may go maxTemplateCallDepth
//     deep. jinja2 under Python's default recursion limit of 1000 frames
//     stops a little before 200 nested macro calls, so templates that
//     transformers renders render here, and the ones that make Python raise
//     RecursionError fail here too, with an error instead of a crash;
//   - each executed statement, loop iteration and item a loop walks over is
//     a step, and a render may take maxTemplateSteps of them;
//   - range() gives at most maxTemplateRange numbers, as in the sandbox
//     transformers renders with (jinja2's MAX_RANGE);
//   - the output may grow to maxTemplateOutput bytes.
//
// The limits are counts, not a clock, so a template fails or renders the
// same on every machine. The per-render state sits in the render's context
// under budgetVar, where the statement wrappers installed at parse time
// (guardParser) find it.
const (
	maxTemplateCallDepth = 200
	maxTemplateSteps     = 1_000_000
	maxTemplateRange     = 100_000
	maxTemplateOutput    = 64 << 20
)

// budgetVar is the context variable holding the render's *renderBudget.
const budgetVar = "__tether_render_budget"

// countItemsFilter is the filter wrapped around the iterable of every for
// loop: it charges one step per item before gonja walks them.
const countItemsFilter = "__tether_count_items"

// renderBudget is what one render may still spend. It is used by one
// goroutine (gonja renders sequentially).
type renderBudget struct {
	depth, steps, output int
	// err is the first limit hit. It is sticky: gonja drops some errors
	// (self.block() ignores its body's), so Render reports this one
	// whatever gonja returns.
	err error
}

// fail records the first limit error and returns it.
func (b *renderBudget) fail(line int, format string, args ...any) error {
	if b.err == nil {
		b.err = fmt.Errorf("line %d: %s", line, fmt.Sprintf(format, args...))
	}
	return b.err
}

// step charges n steps for work at line.
func (b *renderBudget) step(n, line int) error {
	if b.err != nil {
		return b.err
	}
	b.steps += n
	if b.steps > maxTemplateSteps {
		return b.fail(line, "the template does too much work: more than %d steps (statements, loop iterations and items looped over); is there a loop that never ends?", maxTemplateSteps)
	}
	return nil
}

// enter goes one call deeper for a call of what at line; the caller must
// call leave when the call returns.
func (b *renderBudget) enter(what string, line int) error {
	if err := b.step(1, line); err != nil {
		return err
	}
	b.depth++
	if b.depth > maxTemplateCallDepth {
		return b.fail(line, "recursion too deep: more than %d nested calls (at %s); jinja2 stops at about the same depth with RecursionError", maxTemplateCallDepth, what)
	}
	return nil
}

// leave returns from a call entered with enter.
func (b *renderBudget) leave() { b.depth-- }

// budgetOf finds the render's budget in a context. A template that assigns
// budgetVar itself gets an error rather than an unlimited render.
func budgetOf(ctx *exec.Context) (*renderBudget, error) {
	v, _ := ctx.Get(budgetVar)
	b, ok := v.(*renderBudget)
	if !ok {
		return nil, fmt.Errorf("the template variable %s is reserved", budgetVar)
	}
	return b, nil
}

// limitWriter is the render's output: it fails once the output would pass
// maxTemplateOutput bytes.
type limitWriter struct {
	w      io.Writer
	budget *renderBudget
}

// Write implements io.Writer.
func (l *limitWriter) Write(p []byte) (int, error) {
	if l.budget.output+len(p) > maxTemplateOutput {
		if l.budget.err == nil {
			l.budget.err = fmt.Errorf("the output passed %d bytes; is there a loop that never ends?", maxTemplateOutput)
		}
		return 0, l.budget.err
	}
	l.budget.output += len(p)
	return l.w.Write(p)
}

// guardedStatements returns gonja's statements ({% for %}, {% macro %}, ...)
// with every one wrapped by guardParser.
func guardedStatements() (*exec.ControlStructureSet, error) {
	set := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{}).Update(controlStructures.All)
	for _, name := range []string{
		"autoescape", "block", "extends", "filter", "for", "from", "if", "import", "include",
		"macro", "raw", "set", "with", "do", "break", "continue", "trans", "call",
	} {
		p, ok := set.Get(name)
		if !ok {
			return nil, fmt.Errorf("gonja has no %q statement", name)
		}
		if err := set.Replace(name, guardParser(name, p)); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// guardParser wraps a statement's parser: the statement it returns charges
// a step each time it runs (an include also counts as a call), and the
// bodies that run as calls (macro, call block, recursive loop, block) or
// once per item (loop) are wrapped in a callGuard.
func guardParser(name string, inner parser.ControlStructureParser) parser.ControlStructureParser {
	return func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		cs, err := inner(p, args)
		if err != nil {
			return nil, err
		}
		switch c := cs.(type) {
		case *controlStructures.ForControlStructure:
			at := c.ObjectEvaluator.Position()
			c.ObjectEvaluator = &nodes.FilteredExpression{
				Expression: c.ObjectEvaluator,
				Filters: []*nodes.FilterCall{{
					Token: at,
					Name:  countItemsFilter,
					Args:  []nodes.Expression{&nodes.Integer{Location: at, Val: lineOf(at)}},
				}},
			}
			what := ""
			if c.Recursive {
				what = "loop() of a recursive for loop"
			}
			c.BodyWrapper = guardBody(c.BodyWrapper, what)
		case *controlStructures.MacroControlStructure:
			c.Macro.Wrapper = guardBody(c.Macro.Wrapper, fmt.Sprintf("macro %q", c.Macro.Name))
		case *controlStructures.CallControlStructure:
			c.Body = guardBody(c.Body, "caller()")
		case *controlStructures.BlockControlStructure:
			for blockName, w := range p.Template.Blocks {
				if !isGuarded(w) {
					p.Template.Blocks[blockName] = guardBody(w, fmt.Sprintf("block %q", blockName))
				}
			}
		}
		ecs, ok := cs.(exec.ControlStructure)
		if !ok {
			return cs, nil
		}
		call := ""
		if name == "include" {
			call = "include"
		}
		return &guardedStatement{inner: ecs, call: call}, nil
	}
}

// guardedStatement is a statement that charges the budget when it runs.
type guardedStatement struct {
	inner exec.ControlStructure
	// call names the statement when running it is a call (include), "" if
	// it only costs a step.
	call string
}

// Position implements nodes.Node.
func (g *guardedStatement) Position() *tokens.Token { return g.inner.Position() }

// String implements nodes.Node.
func (g *guardedStatement) String() string { return g.inner.String() }

// Execute implements exec.ControlStructure.
func (g *guardedStatement) Execute(r *exec.Renderer, tag *nodes.ControlStructureBlock) error {
	return charge(r, g.call, lineOf(g.Position()), func() error { return g.inner.Execute(r, tag) })
}

// charge charges the render's budget, one step when call is "" or else one
// call deeper for as long as run runs, and then runs run.
func charge(r *exec.Renderer, call string, line int, run func() error) error {
	b, err := budgetOf(r.Environment.Context)
	if err != nil {
		return err
	}
	if call == "" {
		if err := b.step(1, line); err != nil {
			return err
		}
		return run()
	}
	if err := b.enter(call, line); err != nil {
		return err
	}
	defer b.leave()
	return run()
}

// callGuard is the one statement of a wrapped body: it charges the budget,
// one call deeper when the body runs as a call, and then renders the body
// in the same renderer (so a {% set %} in it behaves as before).
type callGuard struct {
	body *nodes.Wrapper
	// call names what runs the body as a call; "" for a loop body, which
	// only costs a step per iteration.
	call string
}

// lineOf is a token's line, 0 when there is no token.
func lineOf(t *tokens.Token) int {
	if t == nil {
		return 0
	}
	return t.Line
}

// guardBody wraps a body in a callGuard.
func guardBody(body *nodes.Wrapper, call string) *nodes.Wrapper {
	if body == nil {
		return nil
	}
	return &nodes.Wrapper{
		Location: body.Location,
		Nodes: []nodes.Node{&nodes.ControlStructureBlock{
			Location:         body.Location,
			Name:             "tether-guard",
			ControlStructure: &callGuard{body: body, call: call},
		}},
		EndTag: body.EndTag,
		Trim:   body.Trim,
		LStrip: body.LStrip,
	}
}

// isGuarded tells whether a body was already wrapped by guardBody.
func isGuarded(w *nodes.Wrapper) bool {
	if w == nil || len(w.Nodes) != 1 {
		return false
	}
	block, ok := w.Nodes[0].(*nodes.ControlStructureBlock)
	if !ok {
		return false
	}
	_, ok = block.ControlStructure.(*callGuard)
	return ok
}

// Position implements nodes.Node.
func (g *callGuard) Position() *tokens.Token { return g.body.Location }

// String implements nodes.Node.
func (g *callGuard) String() string { return g.body.String() }

// Execute implements exec.ControlStructure.
func (g *callGuard) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	return charge(r, g.call, lineOf(g.Position()), func() error { return nodes.Walk(r, g.body) })
}

// filterCountItems is countItemsFilter: it charges one step per item of the
// value a for loop is about to walk, and returns the value unchanged. Its
// argument is the loop's line.
func filterCountItems(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	b, err := budgetOf(e.Environment.Context)
	if err != nil {
		return exec.AsValue(err)
	}
	n := 0
	if in.IsIterable() {
		n = in.Len()
	}
	line := 0
	if len(params.Args) == 1 && params.Args[0].IsInteger() {
		line = params.Args[0].Integer()
	}
	if err := b.step(n, line); err != nil {
		return exec.AsValue(err)
	}
	return in
}

// boundedRange is the template global range(): jinja2's sandbox range,
// which refuses to make more than maxTemplateRange numbers. It returns a
// list (gonja's own range feeds a channel from a goroutine, which leaks
// when a loop stops early).
func boundedRange(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	args := make([]int, len(params.Args))
	for i, a := range params.Args {
		if !a.IsInteger() {
			return nil, errors.New("range: expected signature is [start, ]stop[, step] where all arguments are integers")
		}
		args[i] = a.Integer()
	}
	start, stop, step := 0, 0, 1
	switch len(args) {
	case 1:
		stop = args[0]
	case 2:
		start, stop = args[0], args[1]
	case 3:
		start, stop, step = args[0], args[1], args[2]
	default:
		return nil, errors.New("range: expected signature is [start, ]stop[, step] where all arguments are integers")
	}
	if len(params.KwArgs) != 0 {
		return nil, errors.New("range: takes no keyword arguments")
	}
	if step == 0 {
		return nil, errors.New("range: step cannot be 0")
	}
	// The count, in unsigned arithmetic so that extreme bounds do not
	// overflow.
	var n uint64
	if step > 0 && stop > start {
		n = (uint64(stop)-uint64(start)-1)/uint64(step) + 1
	} else if step < 0 && start > stop {
		n = (uint64(start)-uint64(stop)-1)/(-uint64(step)) + 1
	}
	if n > maxTemplateRange {
		return nil, fmt.Errorf("range too big: %d numbers, more than %d (the sandbox transformers renders with refuses it too)", n, maxTemplateRange)
	}
	out := make([]int, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}
