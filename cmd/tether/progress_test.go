package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the counter's ticker goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLineCounter: without a terminal, progress is a plain line every interval while the job
// runs and one when it ends: done/total, percent, the rate since the first update (a resumed
// job's earlier units excluded) and an ETA consistent with that rate; a job that never started
// prints nothing.
func TestLineCounter(t *testing.T) {
	var out syncBuffer
	c := newLineCounter(&out, "rollouts", 100, 20*time.Millisecond)
	c.Set(40) // resumed: 40 were done before
	start := time.Now()
	time.Sleep(100 * time.Millisecond)
	c.Set(50)
	took := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	c.Finish()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 5 {
		t.Fatalf("%d lines in 200ms at a 20ms interval: %q", len(lines), lines)
	}
	re := regexp.MustCompile(`^rollouts: 50/100 \(50\.0%\), ([0-9.e+-]+)/s, ETA (\S+)$`)
	m := re.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	rate, _ := strconv.ParseFloat(m[1], 64)
	// 10 units since the first update, in between took and took+200ms.
	if hi, lo := 10/took.Seconds(), 10/(took.Seconds()+0.2); rate > hi || rate < lo {
		t.Errorf("rate %g/s, want between %g and %g", rate, lo, hi)
	}
	eta, err := time.ParseDuration(m[2])
	if want := time.Duration(50 / rate * float64(time.Second)); err != nil || (eta-want).Abs() > time.Second {
		t.Errorf("ETA %s, want %s (50 units left at %g/s)", m[2], want, rate)
	}
	var quiet syncBuffer
	newLineCounter(&quiet, "x", 10, time.Hour).Finish()
	if quiet.String() != "" {
		t.Errorf("a job that never started printed %q", quiet.String())
	}
}
