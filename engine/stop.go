package engine

import "strings"

// StopMatcher finds stop strings in text that arrives in pieces, as a streaming decoder produces
// it. It emits text as early as possible while holding back any suffix that could still become a
// stop string, so a stop string is never emitted even when it is split across pieces.
//
// Generation stops at the first point in the text where some stop string is complete; if several
// complete there (stops "c" and "abc" on "abc"), the one that starts earliest is cut. The result
// therefore does not depend on how the text is split into pieces. Matching is on bytes; with
// valid UTF-8 input and stop strings, emitted text is valid UTF-8 too, because a held-back suffix
// always starts where a stop string starts. Empty stop strings are ignored. A StopMatcher is not
// safe for concurrent use.
type StopMatcher struct {
	stops   []string
	held    string
	stopped bool
}

// NewStopMatcher returns a matcher for the given stop strings; with none (or only empty ones) it
// passes every piece through unchanged.
func NewStopMatcher(stops []string) *StopMatcher {
	m := &StopMatcher{}
	for _, s := range stops {
		if s != "" {
			m.stops = append(m.stops, s)
		}
	}
	return m
}

// Push feeds newly decoded text. It returns the text that is safe to emit now and whether a stop
// string has completed. When stopped, emit holds everything before the stop string and nothing
// from it on; later calls return ("", true).
func (m *StopMatcher) Push(text string) (emit string, stopped bool) {
	if m.stopped {
		return "", true
	}
	if len(m.stops) == 0 {
		return text, false
	}
	s := m.held + text
	if cut, found := m.firstStop(s); found {
		m.stopped, m.held = true, ""
		return s[:cut], true
	}
	keep := m.longestPendingSuffix(s)
	m.held = s[len(s)-keep:]
	return s[:len(s)-keep], false
}

// Flush returns the text still held back at the end of generation (a suffix that turned out not
// to be a stop string) and clears it. After a stop it returns "".
func (m *StopMatcher) Flush() string {
	held := m.held
	m.held = ""
	return held
}

// firstStop returns where the stop string that completes first in s begins: the smallest end
// offset wins, and among stops ending there the one starting earliest.
func (m *StopMatcher) firstStop(s string) (cut int, found bool) {
	bestEnd := -1
	for _, stop := range m.stops {
		start := strings.Index(s, stop)
		if start < 0 {
			continue
		}
		end := start + len(stop)
		if bestEnd < 0 || end < bestEnd || (end == bestEnd && start < cut) {
			bestEnd, cut = end, start
		}
	}
	return cut, bestEnd >= 0
}

// longestPendingSuffix returns the length of the longest suffix of s that is a proper prefix of
// some stop string, i.e. text that a later piece could complete into a stop string.
func (m *StopMatcher) longestPendingSuffix(s string) int {
	longest := 0
	for _, stop := range m.stops {
		for n := min(len(stop)-1, len(s)); n > longest; n-- {
			if strings.HasSuffix(s, stop[:n]) {
				longest = n
				break
			}
		}
	}
	return longest
}
