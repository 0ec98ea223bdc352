package bench

import (
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"unicode"
)

// Parsed yes/no answers.
const (
	AnswerYes         = "yes"
	AnswerNo          = "no"
	AnswerUnparseable = "unparseable"
)

// ParseYesNo reads a reply as a yes/no answer from its start: leading spaces, punctuation,
// quotes and markup are skipped, and the first word (letters only, any case) must be "yes" or
// "no"; anything else is AnswerUnparseable. Nothing is guessed from later words.
func ParseYesNo(reply string) string {
	s := strings.TrimLeftFunc(reply, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	end := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsLetter(r) })
	if end < 0 {
		end = len(s)
	}
	switch strings.ToLower(s[:end]) {
	case "yes":
		return AnswerYes
	case "no":
		return AnswerNo
	}
	return AnswerUnparseable
}

// NormalizeReveal is the comparable form of a final reveal: the reply's first non-empty line,
// lowercased, with punctuation removed, the articles "a", "an" and "the" dropped and spaces
// collapsed. An empty result means the reply named nothing.
func NormalizeReveal(reply string) string {
	line := ""
	for _, l := range strings.Split(reply, "\n") {
		if strings.TrimSpace(l) != "" {
			line = l
			break
		}
	}
	clean := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return ' '
	}, line)
	var words []string
	for _, w := range strings.Fields(clean) {
		if w != "a" && w != "an" && w != "the" {
			words = append(words, w)
		}
	}
	return strings.Join(words, " ")
}

// questionAgreement scores one question's parsed answers across branches. Unparseable answers
// are counted, not scored: agreement is the fraction of the parsed (yes or no) answers equal to
// their majority answer, and all is whether every parsed answer is the same. ok is false when
// fewer than two answers parsed (nothing to agree on).
func questionAgreement(answers []string) (agreement float64, all bool, yes, no, unparsed int, ok bool) {
	for _, a := range answers {
		switch a {
		case AnswerYes:
			yes++
		case AnswerNo:
			no++
		default:
			unparsed++
		}
	}
	if yes+no < 2 {
		return 0, false, yes, no, unparsed, false
	}
	return float64(max(yes, no)) / float64(yes+no), yes == 0 || no == 0, yes, no, unparsed, true
}

// entropyBits is the plug-in Shannon entropy (bits) of the empirical distribution of values.
func entropyBits(values []string) float64 {
	if len(values) == 0 {
		return 0
	}
	counts := map[string]int{}
	for _, v := range values {
		counts[v]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a fixed summation order
	h := 0.0
	n := float64(len(values))
	for _, k := range keys {
		p := float64(counts[k]) / n
		h -= p * math.Log2(p)
	}
	return math.Abs(h) // never -0
}

// euclid is the Euclidean distance of two vectors of equal length.
func euclid(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		s += d * d
	}
	return math.Sqrt(s)
}

// CommitInterval is an estimate with a bootstrap confidence interval.
type CommitInterval struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
	N        int     `json:"n"` // the number of values (or resampled units) behind the estimate
}

// commitBootstrapResamples and commitBootstrapLevel set the percentile bootstrap of the report.
const (
	commitBootstrapResamples = 2000
	commitBootstrapLevel     = 0.95
)

// bootstrapMean is the mean of xs with a percentile bootstrap interval (resampling xs with
// replacement). With one value the interval is that value.
func bootstrapMean(xs []float64, seed uint64) CommitInterval {
	return bootstrapStat(len(xs), seed, func(idx []int) (float64, bool) {
		s := 0.0
		for _, i := range idx {
			s += xs[i]
		}
		return s / float64(len(idx)), true
	})
}

// bootstrapStat evaluates stat on the identity sample of n units and on resamples of it; stat
// returns ok false for a resample where it is undefined (skipped). Percentile interval.
func bootstrapStat(n int, seed uint64, stat func(idx []int) (float64, bool)) CommitInterval {
	if n == 0 {
		return CommitInterval{}
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	est, ok := stat(idx)
	if !ok {
		return CommitInterval{N: n}
	}
	out := CommitInterval{Estimate: est, Low: est, High: est, N: n}
	if n < 2 {
		return out
	}
	rng := rand.New(rand.NewPCG(seed, 0x636f6d6d6974))
	var vals []float64
	for range commitBootstrapResamples {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		if v, ok := stat(idx); ok {
			vals = append(vals, v)
		}
	}
	if len(vals) == 0 {
		return out
	}
	sort.Float64s(vals)
	a := (1 - commitBootstrapLevel) / 2
	out.Low, out.High = quantileSorted(vals, a), quantileSorted(vals, 1-a)
	return out
}
