package chattemplate

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// pyRepr formats plain Go data as Python's repr() does, for printing dicts
// and lists inside templates: strings quoted with ' (or " when the string
// holds ' but no "), None/True/False, lists in [..], maps in {..} with
// sorted keys.
func pyRepr(v any) string {
	rv := reflect.ValueOf(v)
	for rv.IsValid() && (rv.Kind() == reflect.Interface || rv.Kind() == reflect.Pointer) {
		if rv.IsNil() {
			return "None"
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return "None"
	}
	if rv.CanInterface() {
		if m, ok := rv.Interface().(templateMessage); ok {
			return m.String()
		}
	}
	switch rv.Kind() {
	case reflect.String:
		return pyStringRepr(rv.String())
	case reflect.Bool:
		if rv.Bool() {
			return "True"
		}
		return "False"
	case reflect.Float32, reflect.Float64:
		return pyFloatRepr(rv.Float())
	case reflect.Slice, reflect.Array:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = pyRepr(rv.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := rv.MapKeys()
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, pyRepr(k.Interface())+": "+pyRepr(rv.MapIndex(k).Interface()))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(rv.Interface())
}

// pyStringRepr quotes a string as Python's repr() does.
func pyStringRepr(s string) string {
	quote := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, "\"") {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == rune(quote):
			b.WriteByte('\\')
			b.WriteByte(quote)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}
