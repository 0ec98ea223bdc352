package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// TestJobProgressFinish: an interruption becomes the message that says how many units of this
// job are saved where and how to continue; other errors and success pass through unchanged.
func TestJobProgressFinish(t *testing.T) {
	jp := newJobProgress("bench drift", "conversations", "drift conversations")
	jp.update(3, 8)
	jp.update(5, 8)
	want := "bench drift: interrupted; 5 conversations are saved in /tmp/d; run the same command again to continue"
	if err := jp.finish(fmt.Errorf("run: %w", context.Canceled), "/tmp/d"); err == nil || err.Error() != want {
		t.Fatalf("interrupted: %v, want %q", err, want)
	}
	other := errors.New("disk full")
	if err := jp.finish(other, "/tmp/d"); err != other {
		t.Fatalf("other error: %v, want it unchanged", err)
	}
	if err := jp.finish(nil, "/tmp/d"); err != nil {
		t.Fatalf("success: %v", err)
	}
	if jp.firstDone != 3 || jp.done != 5 || jp.last.Before(jp.first) {
		t.Fatalf("counts: first %d, last %d", jp.firstDone, jp.done)
	}
}
