package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/pflag"
)

// valueRange is the valid range of a numeric flag: a value x is valid when
// min <= x <= max (min < x, x < max where open), finite, and, with note,
// the note explains a special value (e.g. "1 = off").
type valueRange struct {
	min, max         float64
	minOpen, maxOpen bool
	note             string
}

// atLeast is [min, +inf).
func atLeast(min float64) valueRange { return valueRange{min: min, max: math.Inf(1)} }

// above is (min, +inf).
func above(min float64) valueRange { return valueRange{min: min, max: math.Inf(1), minOpen: true} }

// between is [min, max].
func between(min, max float64) valueRange { return valueRange{min: min, max: max} }

// finite is any finite number.
func finite() valueRange { return valueRange{min: math.Inf(-1), max: math.Inf(1)} }

// with returns r with the note explaining a special value.
func (r valueRange) with(note string) valueRange { r.note = note; return r }

// contains reports whether x is finite and in the range.
func (r valueRange) contains(x float64) bool {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return false
	}
	lo := x > r.min || (!r.minOpen && x == r.min)
	hi := x < r.max || (!r.maxOpen && x == r.max)
	return lo && hi
}

// describe says what the range admits, for an integer flag when integer.
func (r valueRange) describe(integer bool) string {
	kind := "a finite number"
	if integer {
		kind = "an integer"
	}
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	op := func(open bool) string {
		if open {
			return "<"
		}
		return "<="
	}
	var s string
	switch {
	case math.IsInf(r.min, -1) && math.IsInf(r.max, 1):
		s = kind
	case math.IsInf(r.max, 1):
		s = fmt.Sprintf("%s %s %s", kind, strings.NewReplacer("<=", ">=", "<", ">").Replace(op(r.minOpen)), num(r.min))
	default:
		s = fmt.Sprintf("%s with %s %s x %s %s", kind, num(r.min), op(r.minOpen), op(r.maxOpen), num(r.max))
	}
	if r.note != "" {
		s += " (" + r.note + ")"
	}
	return s
}

// The ranges shared by several commands' flags.
var (
	temperatureRange = atLeast(0).with("0 = greedy")
	topPRange        = valueRange{min: 0, max: 1, minOpen: true, note: "1 = off"}
	// layerRange is a single layer index whose flag defaults to an automatic choice.
	layerRange = atLeast(0).with("omit the flag for the default")
	// countLimitRange is a "use the first N" limit.
	countLimitRange = atLeast(0).with("0 = all")
)

// flagRanges maps a *pflag.Flag to its valueRange (see limit).
var flagRanges sync.Map

// limit declares the valid range of fs's numeric flag name (an int, uint or
// float flag, or a slice of them, whose every element is checked); parseFlags
// then refuses a value the user gave outside it, naming the flag, the value
// and the range. A flag's default is not checked, so a default outside the
// range (such as -1 for "automatic") stays available by omitting the flag.
// It panics if fs has no such flag: that is a bug in the command, not input.
func limit(fs *pflag.FlagSet, name string, r valueRange) {
	f := fs.Lookup(name)
	if f == nil {
		panic(fmt.Sprintf("limit: %s has no flag --%s", fs.Name(), name))
	}
	flagRanges.Store(f, r)
}

// checkLimits checks every flag given on the command line against its
// declared range.
func checkLimits(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		v, ok := flagRanges.Load(f)
		if !ok || err != nil {
			return
		}
		r := v.(valueRange)
		values := []string{f.Value.String()}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			values = sv.GetSlice()
		}
		integer := !strings.HasPrefix(f.Value.Type(), "float")
		for _, s := range values {
			x, perr := strconv.ParseFloat(s, 64)
			if perr != nil || !r.contains(x) {
				err = usageErrorf("%s: --%s %s is out of range: expected %s", fs.Name(), f.Name, s, r.describe(integer))
				return
			}
		}
	})
	return err
}
