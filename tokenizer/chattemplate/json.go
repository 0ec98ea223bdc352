package chattemplate

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// pyJSONOptions are the arguments of Python's json.dumps that transformers'
// tojson filter exposes.
type pyJSONOptions struct {
	ensureASCII bool
	indent      *string // nil: one line; otherwise the text of one level
	itemSep     string
	keySep      string
	sortKeys    bool
}

// newPyJSONOptions returns json.dumps' defaults for the given indent: item
// separator ", " on one line and "," when indenting, key separator ": ".
func newPyJSONOptions(indent *string) pyJSONOptions {
	o := pyJSONOptions{indent: indent, itemSep: ", ", keySep: ": "}
	if indent != nil {
		o.itemSep = ","
	}
	return o
}

// pyJSONDumps serialises v as Python's json.dumps does with the given
// options. v is plain Go data (as gonja hands it over): nil, bool, numbers,
// strings, json.Number, slices, arrays, maps (keys sorted, since a Go map
// has no order) and gonja's ordered exec.Dict.
func pyJSONDumps(v any, o pyJSONOptions) (string, error) {
	var b strings.Builder
	if err := o.write(&b, reflect.ValueOf(v), 0); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (o pyJSONOptions) newline(b *strings.Builder, depth int) {
	if o.indent == nil {
		return
	}
	b.WriteByte('\n')
	for i := 0; i < depth; i++ {
		b.WriteString(*o.indent)
	}
}

func (o pyJSONOptions) write(b *strings.Builder, v reflect.Value, depth int) error {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		if gv, ok := v.Interface().(*exec.Value); ok {
			v = gv.Val
			continue
		}
		if d, ok := v.Interface().(*exec.Dict); ok {
			return o.writeDict(b, d, depth)
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		b.WriteString("null")
		return nil
	}
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case templateMessage:
			return o.writeMessage(b, x, depth)
		case json.Number:
			b.WriteString(x.String())
			return nil
		case exec.Dict:
			return o.writeDict(b, &x, depth)
		case exec.Value:
			return o.write(b, x.Val, depth)
		}
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString(pyFloatRepr(v.Float()))
	case reflect.String:
		o.writeString(b, v.String())
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			o.newline(b, depth+1)
			if err := o.write(b, v.Index(i), depth+1); err != nil {
				return err
			}
		}
		o.newline(b, depth)
		b.WriteByte(']')
	case reflect.Map:
		keys := v.MapKeys()
		type entry struct {
			key string
			val reflect.Value
		}
		entries := make([]entry, 0, len(keys))
		for _, k := range keys {
			ks, err := pyJSONKey(k)
			if err != nil {
				return err
			}
			entries = append(entries, entry{ks, v.MapIndex(k)})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
		return o.writeMembers(b, depth, len(entries), func(i int) (string, reflect.Value, error) {
			return entries[i].key, entries[i].val, nil
		})
	default:
		return fmt.Errorf("tojson: object of type %s is not JSON serializable", v.Type())
	}
	return nil
}

// writeMessage writes a message dict in its own key order.
func (o pyJSONOptions) writeMessage(b *strings.Builder, m templateMessage, depth int) error {
	keys := m.keys()
	if o.sortKeys {
		sort.Strings(keys)
	}
	return o.writeMembers(b, depth, len(keys), func(i int) (string, reflect.Value, error) {
		return keys[i], reflect.ValueOf(m[keys[i]]), nil
	})
}

// writeDict writes gonja's ordered dict (a dict literal in the template).
func (o pyJSONOptions) writeDict(b *strings.Builder, d *exec.Dict, depth int) error {
	pairs := append([]*exec.Pair(nil), d.Pairs...)
	if o.sortKeys {
		sort.SliceStable(pairs, func(i, j int) bool { return pairs[i].Key.String() < pairs[j].Key.String() })
	}
	return o.writeMembers(b, depth, len(pairs), func(i int) (string, reflect.Value, error) {
		ks, err := pyJSONKey(pairs[i].Key.Val)
		return ks, reflect.ValueOf(pairs[i].Value), err
	})
}

// writeMembers writes an object of n members ("{}" when n is 0); member
// returns the i-th key and value, in output order.
func (o pyJSONOptions) writeMembers(b *strings.Builder, depth, n int, member func(i int) (string, reflect.Value, error)) error {
	if n == 0 {
		b.WriteString("{}")
		return nil
	}
	b.WriteByte('{')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(o.itemSep)
		}
		o.newline(b, depth+1)
		key, val, err := member(i)
		if err != nil {
			return err
		}
		o.writeString(b, key)
		b.WriteString(o.keySep)
		if err := o.write(b, val, depth+1); err != nil {
			return err
		}
	}
	o.newline(b, depth)
	b.WriteByte('}')
	return nil
}

// pyJSONKey turns a map key into the string json.dumps writes for it.
func pyJSONKey(k reflect.Value) (string, error) {
	for k.IsValid() && k.Kind() == reflect.Interface {
		k = k.Elem()
	}
	if !k.IsValid() {
		return "null", nil
	}
	switch k.Kind() {
	case reflect.String:
		return k.String(), nil
	case reflect.Bool:
		if k.Bool() {
			return "true", nil
		}
		return "false", nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(k.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return pyFloatRepr(k.Float()), nil
	}
	return "", fmt.Errorf("tojson: keys must be str, int, float, bool or None, not %s", k.Type())
}

// writeString writes a JSON string literal escaped as Python's json module
// does: \" \\ \n \r \t \b \f, other control characters as \u00XX, and with
// ensure_ascii every non-ASCII character as \uXXXX (surrogate pairs above
// U+FFFF). Invalid UTF-8 bytes become U+FFFD.
func (o pyJSONOptions) writeString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				fmt.Fprintf(b, `\u%04x`, r)
			case r < 0x7f || !o.ensureASCII:
				b.WriteRune(r)
			case r <= 0xffff:
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				hi, lo := utf16.EncodeRune(r)
				fmt.Fprintf(b, `\u%04x\u%04x`, hi, lo)
			}
		}
	}
	b.WriteByte('"')
}

// pyFloatRepr formats a float as Python's float.__repr__ (and so json.dumps)
// does: the shortest round-tripping digits, always with a '.' or an
// exponent, exponent written e+XX / e-XX, and Infinity / NaN as json.dumps
// writes them.
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-4 || abs >= 1e16) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e-05 / e+16 like Python; only the mantissa's ".0" differs:
		// Python writes 1e-05, Go writes 1e-05 too.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
