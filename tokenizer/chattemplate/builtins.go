package chattemplate

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
)

// Corrections to gonja's builtins where they differ from Python and jinja2 in
// ways chat templates run into. Each replaces one builtin in the private
// chat-template environment only.

// gonja's built-in str methods (all delegated to, except the overrides).
var gonjaStrMethodNames = []string{
	"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find",
	"format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "islower",
	"isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
	"partition", "removeprefix", "removesuffix", "replace", "rfind", "rjust", "rpartition", "rsplit",
	"rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill",
}

// gonja's built-in dict methods.
var gonjaDictMethodNames = []string{"keys", "values", "items", "get", "pop", "setdefault", "update", "copy", "clear"}

// chatStrMethods: gonja's str methods, with strip/lstrip/rstrip, split/rsplit
// (gonja defaults their argument to the rune ' ' and then rejects it, so the
// argument-less Python forms fail), replace (gonja requires the count) and
// startswith/endswith (gonja's ”.endswith(' ') is true).
func chatStrMethods() *exec.MethodSet[string] {
	m := map[string]exec.Method[string]{}
	for _, name := range gonjaStrMethodNames {
		if fn, ok := builtins.Methods.Str.Get(name); ok {
			m[name] = fn
		}
	}
	m["strip"] = pyStripMethod(true, true)
	m["lstrip"] = pyStripMethod(true, false)
	m["rstrip"] = pyStripMethod(false, true)
	m["split"] = pySplitMethod(false)
	m["rsplit"] = pySplitMethod(true)
	m["replace"] = pyReplaceMethod
	m["startswith"] = pyAffixMethod("startswith", strings.HasPrefix)
	m["endswith"] = pyAffixMethod("endswith", strings.HasSuffix)
	return exec.NewMethodSet(m)
}

// chatDictMethods: gonja's dict methods, with keys/values/items in the
// dict's own order for messages (role, content), as Python dicts keep
// insertion order, and sorted for other Go maps.
func chatDictMethods() *exec.MethodSet[map[string]any] {
	m := map[string]exec.Method[map[string]any]{}
	for _, name := range gonjaDictMethodNames {
		if fn, ok := builtins.Methods.Dict.Get(name); ok {
			m[name] = fn
		}
	}
	m["keys"] = func(self map[string]any, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
		if err := noArguments("keys", args); err != nil {
			return nil, err
		}
		keys := orderedKeys(selfValue, self)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = k
		}
		return out, nil
	}
	m["values"] = func(self map[string]any, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
		if err := noArguments("values", args); err != nil {
			return nil, err
		}
		keys := orderedKeys(selfValue, self)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = self[k]
		}
		return out, nil
	}
	m["items"] = func(self map[string]any, selfValue *exec.Value, args *exec.VarArgs) (any, error) {
		if err := noArguments("items", args); err != nil {
			return nil, err
		}
		keys := orderedKeys(selfValue, self)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = []any{k, self[k]}
		}
		return out, nil
	}
	return exec.NewMethodSet(m)
}

func noArguments(method string, args *exec.VarArgs) error {
	if len(args.Args) != 0 || len(args.KwArgs) != 0 {
		return fmt.Errorf("%s() takes no arguments", method)
	}
	return nil
}

// orderedKeys lists a dict's keys: a message's in its fixed order, others
// sorted.
func orderedKeys(selfValue *exec.Value, self map[string]any) []string {
	if selfValue != nil && selfValue.Val.IsValid() && selfValue.Val.CanInterface() {
		if msg, ok := selfValue.Val.Interface().(templateMessage); ok {
			return msg.keys()
		}
	}
	keys := make([]string, 0, len(self))
	for k := range self {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// methodArgs binds a Python method's positional and keyword arguments to
// its parameter names; missing ones are nil.
func methodArgs(method string, args *exec.VarArgs, names ...string) ([]*exec.Value, error) {
	if len(args.Args) > len(names) {
		return nil, fmt.Errorf("%s() takes at most %d arguments (%d given)", method, len(names), len(args.Args))
	}
	out := make([]*exec.Value, len(names))
	copy(out, args.Args)
	for k, v := range args.KwArgs {
		i := -1
		for j, n := range names {
			if n == k {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%s() got an unexpected keyword argument %q", method, k)
		}
		if out[i] != nil {
			return nil, fmt.Errorf("%s() got multiple values for argument %q", method, k)
		}
		out[i] = v
	}
	return out, nil
}

// optionalString reads an argument that may be absent or None.
func optionalString(method, name string, v *exec.Value) (string, bool, error) {
	if v == nil || v.IsNil() {
		return "", false, nil
	}
	if !v.IsString() {
		return "", false, fmt.Errorf("%s() argument %q must be str or None, not %s", method, name, v.String())
	}
	return v.String(), true, nil
}

// isPySpace reports whether Python's str.isspace() holds for r.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// pyStripMethod is str.strip/lstrip/rstrip(chars=None).
func pyStripMethod(left, right bool) exec.Method[string] {
	name := map[[2]bool]string{{true, true}: "strip", {true, false}: "lstrip", {false, true}: "rstrip"}[[2]bool{left, right}]
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		a, err := methodArgs(name, args, "chars")
		if err != nil {
			return nil, err
		}
		chars, given, err := optionalString(name, "chars", a[0])
		if err != nil {
			return nil, err
		}
		cut := isPySpace
		if given {
			cut = func(r rune) bool { return strings.ContainsRune(chars, r) }
		}
		s := self
		if left {
			s = strings.TrimLeftFunc(s, cut)
		}
		if right {
			s = strings.TrimRightFunc(s, cut)
		}
		return s, nil
	}
}

// pySplitMethod is str.split / str.rsplit(sep=None, maxsplit=-1).
func pySplitMethod(fromRight bool) exec.Method[string] {
	name := "split"
	if fromRight {
		name = "rsplit"
	}
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		a, err := methodArgs(name, args, "sep", "maxsplit")
		if err != nil {
			return nil, err
		}
		sep, given, err := optionalString(name, "sep", a[0])
		if err != nil {
			return nil, err
		}
		maxsplit := -1
		if a[1] != nil {
			if !a[1].IsInteger() {
				return nil, fmt.Errorf("%s() argument \"maxsplit\" must be an integer, not %s", name, a[1].String())
			}
			maxsplit = a[1].Integer()
		}
		var parts []string
		switch {
		case !given:
			parts = pySplitWhitespace(self, maxsplit, fromRight)
		case sep == "":
			return nil, errors.New(name + "(): empty separator")
		case fromRight:
			parts = pyRSplitSep(self, sep, maxsplit)
		default:
			parts = strings.SplitN(self, sep, maxsplitToN(maxsplit))
		}
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	}
}

func maxsplitToN(maxsplit int) int {
	if maxsplit < 0 {
		return -1
	}
	return maxsplit + 1
}

// pyRSplitSep is str.rsplit(sep, maxsplit) with a separator.
func pyRSplitSep(s, sep string, maxsplit int) []string {
	if maxsplit < 0 {
		return strings.Split(s, sep)
	}
	var rev []string
	for maxsplit > 0 {
		i := strings.LastIndex(s, sep)
		if i < 0 {
			break
		}
		rev = append(rev, s[i+len(sep):])
		s = s[:i]
		maxsplit--
	}
	out := []string{s}
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

// pySplitWhitespace is str.split() / str.rsplit() without a separator: runs
// of whitespace separate, empty strings are dropped, and after maxsplit
// splits the rest is kept (stripped only on the side splitting began).
func pySplitWhitespace(s string, maxsplit int, fromRight bool) []string {
	if maxsplit < 0 {
		return strings.FieldsFunc(s, isPySpace)
	}
	var out []string
	if !fromRight {
		for {
			s = strings.TrimLeftFunc(s, isPySpace)
			if s == "" {
				return out
			}
			if maxsplit == 0 {
				return append(out, s)
			}
			end := strings.IndexFunc(s, isPySpace)
			if end < 0 {
				return append(out, s)
			}
			out = append(out, s[:end])
			s = s[end:]
			maxsplit--
		}
	}
	var rev []string
	for {
		s = strings.TrimRightFunc(s, isPySpace)
		if s == "" {
			break
		}
		if maxsplit == 0 {
			rev = append(rev, s)
			break
		}
		start := strings.LastIndexFunc(s, isPySpace)
		if start < 0 {
			rev = append(rev, s)
			break
		}
		_, size := decodeLastRune(s[:start+1])
		rev = append(rev, s[start+size:])
		s = s[:start]
		maxsplit--
	}
	for i := len(rev) - 1; i >= 0; i-- {
		out = append(out, rev[i])
	}
	return out
}

func decodeLastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xC0 != 0x80 {
			r := []rune(s[i:])
			if len(r) > 0 {
				return r[0], len(s) - i
			}
		}
	}
	return 0, 1
}

// pyAffixMethod is str.startswith / str.endswith(affix, start=None,
// end=None); affix may be a string or a list/tuple of strings. start and
// end count characters, negative ones from the end, as in Python slicing.
func pyAffixMethod(name string, has func(s, affix string) bool) exec.Method[string] {
	return func(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
		a, err := methodArgs(name, args, "affix", "start", "end")
		if err != nil {
			return nil, err
		}
		if a[0] == nil {
			return nil, fmt.Errorf("%s() takes at least 1 argument", name)
		}
		var affixes []string
		switch {
		case a[0].IsString():
			affixes = []string{a[0].String()}
		case a[0].IsList():
			for i := 0; i < a[0].Len(); i++ {
				item := a[0].Index(i)
				if !item.IsString() {
					return nil, fmt.Errorf("%s() tuple items must be str, not %s", name, item.String())
				}
				affixes = append(affixes, item.String())
			}
		default:
			return nil, fmt.Errorf("%s() first arg must be str or a tuple of str, not %s", name, a[0].String())
		}
		r := []rune(self)
		start, end := 0, len(r)
		bound := func(v *exec.Value, dflt int) (int, error) {
			if v == nil || v.IsNil() {
				return dflt, nil
			}
			if !v.IsInteger() {
				return 0, fmt.Errorf("%s() slice indices must be integers or None", name)
			}
			i := v.Integer()
			if i < 0 {
				i += len(r)
			}
			return min(max(i, 0), len(r)), nil
		}
		if start, err = bound(a[1], 0); err != nil {
			return nil, err
		}
		if end, err = bound(a[2], len(r)); err != nil {
			return nil, err
		}
		if start > end {
			return false, nil
		}
		s := string(r[start:end])
		for _, affix := range affixes {
			if has(s, affix) {
				return true, nil
			}
		}
		return false, nil
	}
}

// pyReplaceMethod is str.replace(old, new, count=-1).
func pyReplaceMethod(self string, _ *exec.Value, args *exec.VarArgs) (any, error) {
	a, err := methodArgs("replace", args, "old", "new", "count")
	if err != nil {
		return nil, err
	}
	if a[0] == nil || a[1] == nil || !a[0].IsString() || !a[1].IsString() {
		return nil, errors.New("replace() takes two strings, old and new")
	}
	count := -1
	if a[2] != nil {
		if !a[2].IsInteger() {
			return nil, errors.New("replace() argument \"count\" must be an integer")
		}
		count = a[2].Integer()
	}
	return strings.Replace(self, a[0].String(), a[1].String(), count), nil
}

// filterReverseList is jinja2's reverse filter: a string reversed by
// characters, any other iterable as a list in reverse order (gonja's sorts
// lists before reversing them).
func filterReverseList(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(params.Args) != 0 || len(params.KwArgs) != 0 {
		return exec.AsValue(errors.New("reverse: takes no arguments"))
	}
	if in.IsString() {
		r := []rune(in.String())
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return exec.AsValue(string(r))
	}
	if in.IsList() {
		n := in.Len()
		out := make([]any, n)
		for i := 0; i < n; i++ {
			out[n-1-i] = in.Index(i).Interface()
		}
		return exec.AsValue(out)
	}
	if in.IsDict() {
		m, _ := in.ToGoSimpleType(false).(map[string]any)
		keys := orderedKeys(in, m)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[len(keys)-1-i] = k
		}
		return exec.AsValue(out)
	}
	return exec.AsValue(fmt.Errorf("reverse: cannot reverse %s", in.String()))
}

var wordPattern = regexp.MustCompile(`[\p{L}\p{N}\p{Mn}\p{Pc}]+`)

// filterWordcountPy is jinja2's wordcount: the number of \w+ matches.
func filterWordcountPy(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	return exec.AsValue(len(wordPattern.FindAllStringIndex(in.String(), -1)))
}

// testIsTrue and testIsFalse are jinja2's "is true" / "is false": only the
// booleans themselves pass (gonja's "is false" holds for 0, "" and None).
func testIsTrue(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
	return in.IsBool() && in.Bool(), nil
}

func testIsFalse(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
	return in.IsBool() && !in.Bool(), nil
}
