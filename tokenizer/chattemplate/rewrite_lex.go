package chattemplate

import (
	"fmt"
	"regexp"
	"strings"
)

// A minimal Jinja lexer for the source rewrite: it splits a template into
// text, comments and tags, and a tag's expression into tokens with their
// bracket depth. It only needs to find tag boundaries, brackets,
// separators and the if/else keywords; gonja does the real parsing.

// templateTagKind says what a piece of template source is.
type templateTagKind int

const (
	tagText     templateTagKind = iota // literal text (and {% raw %} blocks)
	tagComment                         // {# ... #}
	tagVariable                        // {{ ... }}
	tagBlock                           // {% ... %}
)

// templateTag is one piece of template source. For tags, open and close are
// the delimiters with their whitespace control ("{{-", "+%}") and inner is
// what stands between them; text is always the whole piece.
type templateTag struct {
	kind               templateTagKind
	text               string
	open, inner, close string
	line               int
}

// keyword is the statement name of a block tag ("if", "set", ...).
func (t templateTag) keyword() string {
	if t.kind != tagBlock {
		return ""
	}
	s := strings.TrimLeft(t.inner, " \t\r\n")
	end := 0
	for end < len(s) && isNameByte(s[end], end > 0) {
		end++
	}
	return s[:end]
}

var rawEndPattern = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)

// splitTemplateTags cuts a template source into pieces whose texts
// concatenate back to the source.
func splitTemplateTags(src string) ([]templateTag, error) {
	var tags []templateTag
	line := 1
	textStart := 0
	emitText := func(end int) {
		if end > textStart {
			tags = append(tags, templateTag{kind: tagText, text: src[textStart:end], line: line})
			line += strings.Count(src[textStart:end], "\n")
		}
	}
	i := 0
	for i < len(src)-1 {
		if src[i] != '{' || (src[i+1] != '{' && src[i+1] != '%' && src[i+1] != '#') {
			i++
			continue
		}
		emitText(i)
		switch src[i+1] {
		case '#':
			end := strings.Index(src[i+2:], "#}")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			end += i + 4
			tags = append(tags, templateTag{kind: tagComment, text: src[i:end], line: line})
			line += strings.Count(src[i:end], "\n")
			i = end
		default:
			kind, closeDelim := tagVariable, "}}"
			if src[i+1] == '%' {
				kind, closeDelim = tagBlock, "%}"
			}
			tag, end, err := scanTag(src, i, kind, closeDelim)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			tag.line = line
			if tag.keyword() == "raw" {
				loc := rawEndPattern.FindStringIndex(src[end:])
				if loc == nil {
					return nil, fmt.Errorf("line %d: {%% raw %%} without {%% endraw %%}", line)
				}
				end += loc[1]
				tag = templateTag{kind: tagText, text: src[i:end], line: line}
			}
			tags = append(tags, tag)
			line += strings.Count(src[i:end], "\n")
			i = end
		}
		textStart = i
	}
	emitText(len(src))
	return tags, nil
}

// scanTag reads the tag starting at src[start] and returns it with the
// index just past its end. The end delimiter counts only outside string
// literals and outside brackets, as in Jinja's lexer.
func scanTag(src string, start int, kind templateTagKind, closeDelim string) (templateTag, int, error) {
	openEnd := start + 2
	if openEnd < len(src) && (src[openEnd] == '-' || src[openEnd] == '+') {
		openEnd++
	}
	depth := 0
	for i := openEnd; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			end := skipString(src, i)
			if end < 0 {
				return templateTag{}, 0, fmt.Errorf("unterminated string in tag")
			}
			i = end - 1
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		case depth == 0 && strings.HasPrefix(src[i:], closeDelim):
			closeStart := i
			if closeStart > openEnd && (src[closeStart-1] == '-' || src[closeStart-1] == '+') {
				closeStart--
			}
			end := i + len(closeDelim)
			return templateTag{
				kind:  kind,
				text:  src[start:end],
				open:  src[start:openEnd],
				inner: src[openEnd:closeStart],
				close: src[closeStart:end],
			}, end, nil
		}
	}
	return templateTag{}, 0, fmt.Errorf("unterminated tag %q", abbreviateSource(src[start:]))
}

// skipString returns the index just past the string literal starting at
// src[i] (Python-style backslash escapes), or -1 when it is not closed.
func skipString(src string, i int) int {
	quote := src[i]
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case quote:
			return j + 1
		}
	}
	return -1
}

func abbreviateSource(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// exprToken is one token of a tag's expression: its text, its byte span in
// the tag's inner text and its bracket depth (brackets themselves have the
// depth of what surrounds them). name marks identifiers and keywords.
type exprToken struct {
	text       string
	start, end int
	depth      int
	name       bool
}

func (t exprToken) isOpen() bool {
	return !t.name && (t.text == "(" || t.text == "[" || t.text == "{")
}

func (t exprToken) isClose() bool {
	return !t.name && (t.text == ")" || t.text == "]" || t.text == "}")
}

func isNameByte(c byte, notFirst bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (notFirst && c >= '0' && c <= '9')
}

// lexJinjaExpr splits an expression into tokens. Unknown bytes become
// one-byte tokens, so lexing never fails; gonja reports real errors.
func lexJinjaExpr(s string) []exprToken {
	var toks []exprToken
	depth := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			end := skipString(s, i)
			if end < 0 {
				end = len(s)
			}
			toks = append(toks, exprToken{text: s[i:end], start: i, end: end, depth: depth})
			i = end
		case isNameByte(c, false):
			j := i + 1
			for j < len(s) && isNameByte(s[j], true) {
				j++
			}
			toks = append(toks, exprToken{text: s[i:j], start: i, end: j, depth: depth, name: true})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] == '.' || s[j] == '_' || (s[j] >= '0' && s[j] <= '9') || s[j] == 'e' || s[j] == 'E') {
				j++
			}
			toks = append(toks, exprToken{text: s[i:j], start: i, end: j, depth: depth})
			i = j
		case c == '(' || c == '[' || c == '{':
			toks = append(toks, exprToken{text: s[i : i+1], start: i, end: i + 1, depth: depth})
			depth++
			i++
		case c == ')' || c == ']' || c == '}':
			if depth > 0 {
				depth--
			}
			toks = append(toks, exprToken{text: s[i : i+1], start: i, end: i + 1, depth: depth})
			i++
		default:
			n := 1
			if i+1 < len(s) {
				switch s[i : i+2] {
				case "==", "!=", "<=", ">=", "//", "**":
					n = 2
				}
			}
			toks = append(toks, exprToken{text: s[i : i+n], start: i, end: i + n, depth: depth})
			i += n
		}
	}
	return toks
}
