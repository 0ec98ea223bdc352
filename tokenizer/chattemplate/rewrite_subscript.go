package chattemplate

import (
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Subscripts. gonja's X[i] indexes strings by byte, not by character, and
// its negative indexes are off by one (x[-1] fails on a one-element list,
// so messages[-1] does with a single message). Every subscript whose index
// is neither a slice nor a string literal (message['role'] is fine as it
// is) is rewritten into a filter call with Python's semantics:
//
//	message.content.split('</think>')[-1]
//
// becomes
//
//	[message.content.split('</think>')|_tether_getitem(-1)][0]
//
// The one-element list (rather than parentheses) keeps later attribute
// access, subscripts and method calls working: gonja cannot call a method
// on a parenthesised expression, "(x).strip()" fails. For the same reason a
// parenthesised expression followed by "." is written "[x][0]" too.

// subscriptFilterName is the filter the rewrite calls.
const subscriptFilterName = "_tether_getitem"

// jinjaKeywords are names that cannot end an operand.
var jinjaKeywords = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true, "if": true, "else": true,
	"for": true, "recursive": true, "set": true, "elif": true, "with": true, "import": true,
	"from": true, "as": true, "macro": true, "call": true, "filter": true, "include": true,
}

// rewriteSubscripts rewrites the subscripts of a tag's expression text;
// it returns the text unchanged when there is nothing to rewrite.
func rewriteSubscripts(src string) string {
	toks := lexJinjaExpr(src)
	if len(toks) == 0 {
		return src
	}
	out, changed := subscriptRun(toks, src)
	if !changed {
		return src
	}
	return src[:toks[0].start] + out + src[toks[len(toks)-1].end:]
}

// subscriptRun rewrites toks (one bracket level and everything nested) and
// returns the text from toks[0].start to the last token's end.
func subscriptRun(toks []exprToken, src string) (string, bool) {
	var pieces []string
	changed := false
	chainStart := -1     // index in pieces where the current operand began
	afterFilter := false // the current operand is a filter name (after "|")
	prevEndsOperand := false
	prevEnd := toks[0].start
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		lead := src[prevEnd:t.start]
		switch {
		case t.isOpen():
			closeAt := matchingClose(toks, i)
			if closeAt < 0 {
				pieces = append(pieces, src[prevEnd:toks[len(toks)-1].end])
				return strings.Join(pieces, ""), changed
			}
			inner, innerChanged := "", false
			if closeAt > i+1 {
				inner, innerChanged = subscriptRun(toks[i+1:closeAt], src)
				inner = src[t.end:toks[i+1].start] + inner + src[toks[closeAt-1].end:toks[closeAt].start]
			} else {
				inner = src[t.end:toks[closeAt].start]
			}
			changed = changed || innerChanged
			group := t.text + inner + toks[closeAt].text
			isIndex := t.text == "[" && prevEndsOperand && chainStart >= 0 && !afterFilter &&
				isPlainIndex(toks[i+1:closeAt])
			switch {
			case isIndex:
				operand := strings.Join(pieces[chainStart:], "")
				trimmed := strings.TrimLeft(operand, " \t\r\n")
				ws := operand[:len(operand)-len(trimmed)]
				pieces = append(pieces[:chainStart],
					ws+"["+trimmed+"|"+subscriptFilterName+"("+strings.TrimSpace(inner)+")][0]")
				changed = true
			case prevEndsOperand:
				// A call or a slice/string-key subscript: the operand goes on.
				pieces = append(pieces, lead+group)
			default:
				// A parenthesised expression or a literal starts an operand.
				chainStart = len(pieces)
				afterFilter = false
				if t.text == "(" && closeAt+1 < len(toks) && toks[closeAt+1].text == "." && !hasTopLevelComma(toks[i+1:closeAt]) {
					// gonja cannot call a method on "(expr)": use "[expr][0]".
					group = "[" + inner + "][0]"
					changed = true
				}
				pieces = append(pieces, lead+group)
			}
			prevEndsOperand = true
			prevEnd = toks[closeAt].end
			i = closeAt
			continue
		case t.name && !jinjaKeywords[t.text]:
			if i > 0 && toks[i-1].text == "." && prevEndsOperand {
				// attribute access continues the operand
			} else {
				chainStart = len(pieces)
				afterFilter = i > 0 && toks[i-1].text == "|"
			}
			prevEndsOperand = true
		case !t.name && (strings.HasPrefix(t.text, "'") || strings.HasPrefix(t.text, "\"") || (t.text[0] >= '0' && t.text[0] <= '9')):
			chainStart = len(pieces)
			afterFilter = false
			prevEndsOperand = true
		case t.text == ".":
			// keeps the operand open for the attribute name that follows
		default:
			chainStart = -1
			prevEndsOperand = false
		}
		pieces = append(pieces, lead+t.text)
		prevEnd = t.end
	}
	return strings.Join(pieces, ""), changed
}

// hasTopLevelComma reports whether a group's content is a tuple.
func hasTopLevelComma(toks []exprToken) bool {
	if len(toks) == 0 {
		return true // "()" is the empty tuple
	}
	for _, t := range toks {
		if t.depth == toks[0].depth && t.text == "," {
			return true
		}
	}
	return false
}

// isPlainIndex reports whether the content of [ ] is an index to rewrite:
// not empty, not a slice (no ":" at its level) and not a lone string
// literal (a dict key, which gonja handles).
func isPlainIndex(toks []exprToken) bool {
	if len(toks) == 0 {
		return false
	}
	depth := toks[0].depth
	for _, t := range toks {
		if t.depth == depth && t.text == ":" {
			return false
		}
	}
	if len(toks) == 1 && (strings.HasPrefix(toks[0].text, "'") || strings.HasPrefix(toks[0].text, "\"")) {
		return false
	}
	return true
}

// filterGetItem is the _tether_getitem filter: Python's x[key] as jinja2
// evaluates it. Lists take integer indexes (negative ones count from the
// end), strings are indexed by character, dicts by key; a missing item is
// undefined (rendered as nothing), and a string key falls back to an
// attribute, as in jinja2.
func filterGetItem(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(params.Args) != 1 {
		return exec.AsValue(nil)
	}
	key := params.Args[0]
	if key.IsError() {
		return key
	}
	if in.IsNil() || key.IsNil() {
		return exec.AsValue(nil)
	}
	if key.IsInteger() || key.IsBool() {
		idx := 0
		if key.IsBool() {
			if key.Bool() {
				idx = 1
			}
		} else {
			idx = key.Integer()
		}
		switch {
		case in.IsString():
			r := []rune(in.String())
			if idx < 0 {
				idx += len(r)
			}
			if idx < 0 || idx >= len(r) {
				return exec.AsValue(nil)
			}
			return exec.AsValue(string(r[idx]))
		case in.IsList():
			n := in.Len()
			if idx < 0 {
				idx += n
			}
			if idx < 0 || idx >= n {
				return exec.AsValue(nil)
			}
			return exec.ToValue(in.Index(idx))
		}
		item, found := in.GetItem(idx)
		if !found {
			return exec.AsValue(nil)
		}
		return item
	}
	if key.IsString() {
		item, found := in.GetItem(key.String())
		if !found {
			item, found = in.GetAttribute(key.String())
		}
		if !found {
			return exec.AsValue(nil)
		}
		return item
	}
	return exec.AsValue(nil)
}
