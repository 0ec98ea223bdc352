package engine

import (
	"strings"
	"testing"
)

// runStopMatcher feeds pieces to a fresh matcher and returns everything it emitted (with Flush
// when no stop was found) and whether it stopped.
func runStopMatcher(stops, pieces []string) (string, bool) {
	m := NewStopMatcher(stops)
	var out strings.Builder
	for _, p := range pieces {
		emit, stopped := m.Push(p)
		out.WriteString(emit)
		if stopped {
			return out.String(), true
		}
	}
	out.WriteString(m.Flush())
	return out.String(), false
}

// expectedStopOutput computes the result independently of StopMatcher: scan every end offset in
// order, and at the first one where some stop string ends, cut at the earliest start among the
// stop strings ending there.
func expectedStopOutput(stops []string, text string) (string, bool) {
	for end := 1; end <= len(text); end++ {
		cut := -1
		for _, s := range stops {
			if s != "" && strings.HasSuffix(text[:end], s) {
				if start := end - len(s); cut < 0 || start < cut {
					cut = start
				}
			}
		}
		if cut >= 0 {
			return text[:cut], true
		}
	}
	return text, false
}

var stopCases = []struct {
	name        string
	stops       []string
	text        string
	wantEmitted string
	wantStopped bool
}{
	{"no stops", nil, "hello world", "hello world", false},
	{"only empty stop", []string{""}, "hello", "hello", false},
	{"single stop in middle", []string{"<end>"}, "hi there<end>ignored", "hi there", true},
	{"stop at start", []string{"###"}, "###rest", "", true},
	{"stop absent, prefix at end", []string{"<end>"}, "text <en", "text <en", false},
	{"overlapping prefixes ab and abc", []string{"ab", "abc"}, "xxabc", "xx", true},
	{"overlapping prefixes abc and ab", []string{"abc", "ab"}, "xxabd", "xx", true},
	{"shorter stop completes first", []string{"abc", "b"}, "zabc", "za", true},
	{"same end, earliest start wins", []string{"c", "abc"}, "zabc", "z", true},
	{"multiple stops, first in text wins", []string{"STOP", "\n\n"}, "a\n\nbSTOP", "a", true},
	{"partial repeat", []string{"aab"}, "aaab", "a", true},
	{"near miss", []string{"aab"}, "aaac", "aaac", false},
	{"unicode stop", []string{"→end"}, "go →end", "go ", true},
	{"unicode near miss", []string{"→"}, "a … b", "a … b", false},
}

func TestStopMatcherWholeText(t *testing.T) {
	for _, tc := range stopCases {
		t.Run(tc.name, func(t *testing.T) {
			wantEmitted, wantStopped := expectedStopOutput(tc.stops, tc.text)
			if wantEmitted != tc.wantEmitted || wantStopped != tc.wantStopped {
				t.Fatalf("table disagrees with reference scan: table (%q, %v), scan (%q, %v)",
					tc.wantEmitted, tc.wantStopped, wantEmitted, wantStopped)
			}
			got, stopped := runStopMatcher(tc.stops, []string{tc.text})
			if got != tc.wantEmitted || stopped != tc.wantStopped {
				t.Errorf("got (%q, %v), want (%q, %v)", got, stopped, tc.wantEmitted, tc.wantStopped)
			}
		})
	}
}

// TestStopMatcherEverySplit splits each text at every pair of byte boundaries (three pieces, some
// possibly empty) and checks the result never depends on the split.
func TestStopMatcherEverySplit(t *testing.T) {
	for _, tc := range stopCases {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i <= len(tc.text); i++ {
				for j := i; j <= len(tc.text); j++ {
					pieces := []string{tc.text[:i], tc.text[i:j], tc.text[j:]}
					got, stopped := runStopMatcher(tc.stops, pieces)
					if got != tc.wantEmitted || stopped != tc.wantStopped {
						t.Fatalf("split %q: got (%q, %v), want (%q, %v)", pieces, got, stopped, tc.wantEmitted, tc.wantStopped)
					}
				}
			}
			bytes := make([]string, len(tc.text))
			for i := 0; i < len(tc.text); i++ {
				bytes[i] = tc.text[i : i+1]
			}
			got, stopped := runStopMatcher(tc.stops, bytes)
			if got != tc.wantEmitted || stopped != tc.wantStopped {
				t.Fatalf("byte by byte: got (%q, %v), want (%q, %v)", got, stopped, tc.wantEmitted, tc.wantStopped)
			}
		})
	}
}

// TestStopMatcherEmitsEarly checks text is emitted as soon as it cannot start a stop string, and
// that a pending prefix is held back, then released once it is ruled out.
func TestStopMatcherEmitsEarly(t *testing.T) {
	steps := []struct {
		push        string
		wantEmit    string
		wantStopped bool
	}{
		{"hello <", "hello ", false},
		{"e", "", false},
		{"x", "<ex", false},
		{"ab<en", "ab", false},
		{"d>tail", "", true},
		{"more", "", true},
	}
	m := NewStopMatcher([]string{"<end>"})
	for i, st := range steps {
		emit, stopped := m.Push(st.push)
		if emit != st.wantEmit || stopped != st.wantStopped {
			t.Fatalf("step %d push %q: got (%q, %v), want (%q, %v)", i, st.push, emit, stopped, st.wantEmit, st.wantStopped)
		}
	}
	if rest := m.Flush(); rest != "" {
		t.Errorf("Flush after stop = %q, want empty", rest)
	}
}

func TestStopMatcherNoStopsPassesThrough(t *testing.T) {
	m := NewStopMatcher(nil)
	for _, piece := range []string{"a", "<", "end>", ""} {
		if emit, stopped := m.Push(piece); emit != piece || stopped {
			t.Fatalf("Push(%q) = (%q, %v), want (%q, false)", piece, emit, stopped, piece)
		}
	}
	if rest := m.Flush(); rest != "" {
		t.Errorf("Flush = %q, want empty", rest)
	}
}

func TestStopMatcherFlushReturnsHeldText(t *testing.T) {
	m := NewStopMatcher([]string{"</s>"})
	if emit, _ := m.Push("bye </"); emit != "bye " {
		t.Fatalf("Push emitted %q, want %q", emit, "bye ")
	}
	if rest := m.Flush(); rest != "</" {
		t.Errorf("Flush = %q, want %q", rest, "</")
	}
	if rest := m.Flush(); rest != "" {
		t.Errorf("second Flush = %q, want empty", rest)
	}
}
