package chattemplate

import (
	"fmt"
	"strings"
)

// Source-level rewrite of Jinja constructs that gonja v2 does not parse into
// equivalent ones it does. It applies to every chat template, not to any
// model in particular.
//
// Conditional expressions. Jinja allows "X if C else D" anywhere an
// expression may stand: inside parentheses, list and dict literals, call
// arguments and subscripts, and chained ("A if B else C if D else E").
// gonja accepts it only as the whole expression of {{ ... }} or of
// {% set name = ... %}, unchained. So every other occurrence is hoisted into
// a statement of its own placed just before the tag that uses it:
//
//	{{ 'a' + (p if loop.first else "") }}
//
// becomes
//
//	{%+ set _tether_cond_1 = p if loop.first else "" %}{{ 'a' + _tether_cond_1 }}
//
// A conditional without else gets "else" an undefined name, as in Jinja.
// Nested conditionals are hoisted innermost first. Conditionals in an
// {% elif %} are hoisted before the {% if %} that opens the chain (nothing
// between the two can change the variables they read). The hoisted statement
// carries the whitespace control of the tag it precedes ("{%-" for "{{-" and
// "{%-", "{%+" for a plain "{{" so that lstrip_blocks does not eat indentation
// that jinja2 would print, "{%" for a plain "{%"), and ends right where the
// tag starts, so trim_blocks has no newline to remove: the output is
// unchanged. The one difference: the hoisted conditional is evaluated even
// where the original expression would have short-circuited past it.
//
// Subscripts are rewritten too, see template_rewrite_subscript.go.
//
// transformers' {% generation %} ... {% endgeneration %} block (which marks
// assistant text for training masks) becomes {% if true %} ... {% endif %}.
//
// Text, comments and {% raw %} blocks are kept byte for byte.

// rewriteTemplate applies the rewrite to a whole template source.
func rewriteTemplate(source string) (string, error) {
	tags, err := splitTemplateTags(source)
	if err != nil {
		return "", err
	}
	rw := &templateRewriter{}
	// out holds the rewritten pieces; ifOpeners the index in out of the
	// piece of each open {% if %} (for hoisting out of {% elif %}).
	var out []string
	var ifOpeners []int
	for _, tag := range tags {
		if tag.kind != tagVariable && tag.kind != tagBlock {
			out = append(out, tag.text)
			continue
		}
		keyword := tag.keyword()
		switch keyword {
		case "generation", "endgeneration":
			// transformers' {% generation %} block only marks assistant text
			// for masks; rendering, it is its body. "{% if true %}" keeps
			// the tag's whitespace behaviour.
			replacement := map[string]string{"generation": "if true", "endgeneration": "endif"}[keyword]
			tag.inner = strings.Replace(tag.inner, keyword, replacement, 1)
			keyword = map[string]string{"generation": "if", "endgeneration": "endif"}[keyword]
		}
		inner, hoists, err := rw.rewriteTag(tag, keyword)
		if err != nil {
			return "", fmt.Errorf("line %d: %w", tag.line, err)
		}
		inner = rewriteSubscripts(inner)
		for i, h := range hoists {
			hoists[i] = rewriteSubscripts(h)
		}
		text := tag.open + inner + tag.close
		switch keyword {
		case "if":
			ifOpeners = append(ifOpeners, len(out))
		case "endif":
			if len(ifOpeners) > 0 {
				ifOpeners = ifOpeners[:len(ifOpeners)-1]
			}
		}
		if len(hoists) == 0 {
			out = append(out, text)
			continue
		}
		if keyword == "elif" {
			if len(ifOpeners) == 0 {
				return "", fmt.Errorf("line %d: elif without if", tag.line)
			}
			at := ifOpeners[len(ifOpeners)-1]
			out[at] = hoistText(hoists, out[at]) + out[at]
			out = append(out, text)
			continue
		}
		out = append(out, hoistText(hoists, text)+text)
	}
	return strings.Join(out, ""), nil
}

// hoistText renders hoisted set statements to put before the tag text,
// with whitespace control matching that tag (see the comment at the top).
func hoistText(hoists []string, before string) string {
	open := "{%"
	switch {
	case strings.HasPrefix(before, "{{-"), strings.HasPrefix(before, "{%-"):
		open = "{%-"
	case strings.HasPrefix(before, "{{"), strings.HasPrefix(before, "{%+"):
		open = "{%+"
	}
	var b strings.Builder
	for _, h := range hoists {
		b.WriteString(open)
		b.WriteString(" set ")
		b.WriteString(h)
		b.WriteString(" %}")
	}
	return b.String()
}

// templateRewriter numbers the temporary variables of one template.
type templateRewriter struct {
	next int
}

// rewriteTag rewrites the expression inside one tag and returns the new
// inner text and the set statements (without delimiters) to hoist before it.
func (rw *templateRewriter) rewriteTag(tag templateTag, keyword string) (string, []string, error) {
	toks := lexJinjaExpr(tag.inner)
	if len(toks) == 0 {
		return tag.inner, nil, nil
	}
	var hoists []string
	start, topLevelAllowed := 0, false
	switch {
	case tag.kind == tagVariable:
		topLevelAllowed = true
	case keyword == "set":
		// {% set target = expr %}: the conditional may stand at the top of expr.
		for i, t := range toks {
			if t.depth == 0 && t.text == "=" {
				start, topLevelAllowed = i+1, true
				break
			}
		}
	case keyword == "raw", keyword == "endraw":
		return tag.inner, nil, nil
	}
	var b strings.Builder
	b.WriteString(tag.inner[:spanStart(toks, start, tag.inner)])
	text, err := rw.rewriteRegion(toks[start:], tag.inner, topLevelAllowed, keyword == "set", &hoists)
	if err != nil {
		return "", nil, err
	}
	b.WriteString(text)
	b.WriteString(tag.inner[toks[len(toks)-1].end:])
	if len(hoists) == 0 && b.String() == tag.inner {
		// Nothing changed: keep the tag exactly as written.
		return tag.inner, nil, nil
	}
	return b.String(), hoists, nil
}

// spanStart is where token i begins in src; past the last token, where
// the last one ends.
func spanStart(toks []exprToken, i int, src string) int {
	switch {
	case i < len(toks):
		return toks[i].start
	case len(toks) > 0:
		return toks[len(toks)-1].end
	}
	return len(src)
}

// rewriteRegion rewrites a run of tokens (all at the same or deeper depth
// than toks[0]) and returns its new text. With topLevelAllowed, a simple
// conditional at the region's own level is left for gonja (given an else
// when needElse: gonja's set requires one), a chained one has its tail
// hoisted; otherwise top-level "if" (a for loop's filter) is left alone.
func (rw *templateRewriter) rewriteRegion(toks []exprToken, src string, topLevelAllowed, needElse bool, hoists *[]string) (string, error) {
	if len(toks) == 0 {
		return "", nil
	}
	if topLevelAllowed {
		x, c, d, hasElse, ok := splitConditional(toks)
		if ok && !hasElse && needElse {
			// gonja's {% set %} requires the else: Jinja's missing else
			// gives undefined.
			xs, cs, err := rw.rewriteValueAndCondition(x, c, src, hoists)
			if err != nil {
				return "", err
			}
			return joinTokens(xs, " if ", cs, " else _tether_undefined"), nil
		}
		if ok && d != nil && hasTopLevelIf(d) {
			xs, cs, err := rw.rewriteValueAndCondition(x, c, src, hoists)
			if err != nil {
				return "", err
			}
			name, err := rw.hoistConditional(d, src, hoists)
			if err != nil {
				return "", err
			}
			return joinTokens(xs, " if ", cs, " else ", name), nil
		}
	}
	return rw.rewriteGroups(toks, src, hoists)
}

// rewriteValueAndCondition rewrites the value x and the condition c of a
// conditional "x if c else ...".
func (rw *templateRewriter) rewriteValueAndCondition(x, c []exprToken, src string, hoists *[]string) (xs, cs string, err error) {
	if xs, err = rw.rewriteGroups(x, src, hoists); err != nil {
		return "", "", err
	}
	if cs, err = rw.rewriteGroups(c, src, hoists); err != nil {
		return "", "", err
	}
	return xs, cs, nil
}

// rewriteGroups copies a token run, rewriting every bracket group in it.
func (rw *templateRewriter) rewriteGroups(toks []exprToken, src string, hoists *[]string) (string, error) {
	if len(toks) == 0 {
		return "", nil
	}
	var b strings.Builder
	pos := toks[0].start
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if !t.isOpen() {
			continue
		}
		closeAt := matchingClose(toks, i)
		if closeAt < 0 {
			// Unbalanced: leave the rest for gonja to report.
			break
		}
		b.WriteString(src[pos:t.end])
		inner, err := rw.rewriteGroupContent(toks[i+1:closeAt], src, hoists)
		if err != nil {
			return "", err
		}
		b.WriteString(inner)
		pos = toks[closeAt].start
		i = closeAt
	}
	b.WriteString(src[pos:toks[len(toks)-1].end])
	return b.String(), nil
}

// rewriteGroupContent rewrites what stands between a pair of brackets:
// elements separated by ",", ":" or "=" (keyword arguments); an element with
// a conditional of its own is hoisted into a temporary variable.
func (rw *templateRewriter) rewriteGroupContent(toks []exprToken, src string, hoists *[]string) (string, error) {
	if len(toks) == 0 {
		return "", nil
	}
	var b strings.Builder
	pos := toks[0].start
	depth := toks[0].depth
	elemStart := 0
	flush := func(end int) error {
		elem := toks[elemStart:end]
		if len(elem) == 0 {
			return nil
		}
		b.WriteString(src[pos:elem[0].start])
		var text string
		var err error
		if hasTopLevelIf(elem) {
			text, err = rw.hoistConditional(elem, src, hoists)
		} else {
			text, err = rw.rewriteGroups(elem, src, hoists)
		}
		if err != nil {
			return err
		}
		b.WriteString(text)
		pos = elem[len(elem)-1].end
		return nil
	}
	for i, t := range toks {
		if t.depth == depth && (t.text == "," || t.text == ":" || t.text == "=") {
			if err := flush(i); err != nil {
				return "", err
			}
			elemStart = i + 1
		}
	}
	if err := flush(len(toks)); err != nil {
		return "", err
	}
	b.WriteString(src[pos:toks[len(toks)-1].end])
	return b.String(), nil
}

// hoistConditional turns "X if C [else D]" into a new temporary variable
// and records the set statement that defines it.
func (rw *templateRewriter) hoistConditional(toks []exprToken, src string, hoists *[]string) (string, error) {
	x, c, d, hasElse, ok := splitConditional(toks)
	if !ok {
		return "", fmt.Errorf("malformed conditional expression %q", src[toks[0].start:toks[len(toks)-1].end])
	}
	xs, err := rw.rewriteGroups(x, src, hoists)
	if err != nil {
		return "", err
	}
	cs, err := rw.rewriteGroups(c, src, hoists)
	if err != nil {
		return "", err
	}
	ds := "_tether_undefined"
	if hasElse {
		if hasTopLevelIf(d) {
			ds, err = rw.hoistConditional(d, src, hoists)
		} else {
			ds, err = rw.rewriteGroups(d, src, hoists)
		}
		if err != nil {
			return "", err
		}
	}
	rw.next++
	name := fmt.Sprintf("_tether_cond_%d", rw.next)
	*hoists = append(*hoists, joinTokens(name, " = ", xs, " if ", cs, " else ", ds))
	return name, nil
}

// splitConditional splits "X if C else D" at its own level. ok is false
// without a top-level "if"; hasElse is false for "X if C".
func splitConditional(toks []exprToken) (x, c, d []exprToken, hasElse, ok bool) {
	if len(toks) == 0 {
		return nil, nil, nil, false, false
	}
	depth := toks[0].depth
	ifAt, elseAt := -1, -1
	for i, t := range toks {
		if t.depth != depth || !t.name {
			continue
		}
		if t.text == "if" && ifAt < 0 {
			ifAt = i
		} else if t.text == "else" && ifAt >= 0 && elseAt < 0 {
			elseAt = i
		}
	}
	if ifAt <= 0 || ifAt == len(toks)-1 {
		return nil, nil, nil, false, false
	}
	if elseAt < 0 {
		return toks[:ifAt], toks[ifAt+1:], nil, false, true
	}
	if elseAt == ifAt+1 || elseAt == len(toks)-1 {
		return nil, nil, nil, false, false
	}
	return toks[:ifAt], toks[ifAt+1 : elseAt], toks[elseAt+1:], true, true
}

// hasTopLevelIf reports whether a token run has "if" at its own level.
func hasTopLevelIf(toks []exprToken) bool {
	if len(toks) == 0 {
		return false
	}
	depth := toks[0].depth
	for _, t := range toks {
		if t.depth == depth && t.name && t.text == "if" {
			return true
		}
	}
	return false
}

// joinTokens concatenates rewritten pieces.
func joinTokens(parts ...string) string { return strings.Join(parts, "") }

// matchingClose finds the index of the bracket closing toks[open].
func matchingClose(toks []exprToken, open int) int {
	depth := toks[open].depth
	for j := open + 1; j < len(toks); j++ {
		if toks[j].depth == depth && toks[j].isClose() {
			return j
		}
	}
	return -1
}
