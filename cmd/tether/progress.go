package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// startSpinner shows an indeterminate progress indicator with a description on
// standard error (only when it is a terminal, so logs and pipes stay clean),
// and returns the function that stops it.
func startSpinner(description string) (stop func()) {
	if !isTerminal(os.Stderr) {
		return func() {}
	}
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(description),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				bar.Add(1)
			}
		}
	}()
	return func() {
		close(done)
		bar.Finish()
	}
}

// counter shows the progress of a counted job.
type counter interface {
	Set(done int) error
	ChangeMax(total int)
	Finish() error
}

// newBar shows the progress of a job of total units on standard error: a
// progress bar with a time-left estimate when it is a terminal, else (Slurm,
// Kubernetes, nohup) a plain line every progressInterval (see lineCounter).
func newBar(total int, description string) counter {
	w := os.Stderr
	if !isTerminal(w) {
		return newLineCounter(jobOut, description, total, progressInterval())
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

// ProgressIntervalEnv sets the interval of the plain progress lines (a Go
// duration such as "10s"); the default is defaultProgressInterval.
const ProgressIntervalEnv = "TETHER_PROGRESS_INTERVAL"

const defaultProgressInterval = 30 * time.Second

// progressInterval is the interval of plain progress lines: $TETHER_PROGRESS_INTERVAL
// when it is a positive duration, else the default.
func progressInterval() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(ProgressIntervalEnv)); err == nil && d > 0 {
		return d
	}
	return defaultProgressInterval
}

// lineCounter prints, every interval while the job runs and once when it
// finishes, one plain line: "rollouts: 120/400 (30.0%), 2.10/s, ETA 2m13s".
// The rate counts the units done since the first Set (a resumed job's earlier
// units are not part of it).
type lineCounter struct {
	w     io.Writer
	what  string
	total int
	stop  chan struct{}
	done  chan struct{}

	mu        sync.Mutex
	n         int
	start     time.Time
	startDone int
	started   bool
}

// newLineCounter starts the ticker of a lineCounter.
func newLineCounter(w io.Writer, what string, total int, every time.Duration) *lineCounter {
	c := &lineCounter{w: w, what: what, total: total, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
				c.print()
			}
		}
	}()
	return c
}

// Set records that done units are complete.
func (c *lineCounter) Set(done int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started {
		c.start, c.startDone, c.started = time.Now(), done, true
	}
	c.n = done
	return nil
}

// ChangeMax sets the number of units of the job.
func (c *lineCounter) ChangeMax(total int) {
	c.mu.Lock()
	c.total = total
	c.mu.Unlock()
}

// Finish stops the ticker and prints the last line (none when the job never started).
func (c *lineCounter) Finish() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if started {
		c.print()
	}
	return nil
}

// print writes the progress line.
func (c *lineCounter) print() {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("%s: %d/%d", strings.TrimSpace(c.what), c.n, c.total)
	if c.total > 0 {
		line += fmt.Sprintf(" (%.1f%%)", 100*float64(c.n)/float64(c.total))
	}
	ran, took := c.n-c.startDone, time.Since(c.start)
	switch {
	case !c.started || ran <= 0 || took <= 0:
		line += ", rate unknown yet"
	default:
		rate := float64(ran) / took.Seconds()
		line += fmt.Sprintf(", %.3g/s", rate)
		if left := c.total - c.n; left > 0 {
			line += fmt.Sprintf(", ETA %s", time.Duration(float64(left)/rate*float64(time.Second)).Round(time.Second))
		}
	}
	fmt.Fprintln(c.w, line)
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// jobOut is where long jobs say what they will cost (standard error, so that
// standard output keeps the results; tests replace it).
var jobOut io.Writer = os.Stderr

// printJobPlan says, before a long job starts, how many units (rollouts,
// conversations) it holds, how many a resumed run already has, and the most
// new tokens the rest can generate.
func printJobPlan(job, unit string, total, done, maxTokens int) {
	fmt.Fprintf(jobOut, "%s: %d %s to run of %d (%d already done); at most %d new tokens to generate\n",
		job, total-done, unit, total, done, maxTokens)
}

// etaMeter prints a time estimate once, when the first units of this
// invocation are done, from the rate measured since it started.
type etaMeter struct {
	job, unit string
	start     time.Time
	startDone int
	started   bool
	printed   bool
}

// update records that done of total units are complete; the first call
// starts the clock.
func (e *etaMeter) update(done, total int) {
	now := time.Now()
	if !e.started {
		e.start, e.startDone, e.started = now, done, true
		return
	}
	ran := done - e.startDone
	if e.printed || ran <= 0 || done >= total {
		return
	}
	e.printed = true
	took := now.Sub(e.start)
	left := time.Duration(float64(took) / float64(ran) * float64(total-done))
	fmt.Fprintf(jobOut, "%s: %d %s in %s; at that rate the other %d take about %s\n",
		e.job, ran, e.unit, took.Round(time.Millisecond), total-done, left.Round(time.Second))
}

// jobProgress follows the units of a resumable job (persona variance, drift, commitment): a
// bar (plain lines when stderr is a log) made at the first report, the one-time time estimate,
// and the counts and times of the first and last reports of this invocation.
type jobProgress struct {
	job, unit, description string
	bar                    counter
	eta                    etaMeter
	firstDone, done        int
	first, last            time.Time
}

// newJobProgress follows job's units ("conversations"); description labels the bar.
func newJobProgress(job, unit, description string) *jobProgress {
	return &jobProgress{job: job, unit: unit, description: description, eta: etaMeter{job: job, unit: unit}}
}

// update records that done of total units are complete.
func (p *jobProgress) update(done, total int) {
	now := time.Now()
	if p.bar == nil {
		p.bar = newBar(total, p.description)
		p.first, p.firstDone = now, done
	}
	p.eta.update(done, total)
	p.bar.Set(done)
	p.done, p.last = done, now
}

// finish ends the bar and returns err, except that an interruption (context.Canceled) becomes
// a message saying how many units are saved in out and that the same command continues.
func (p *jobProgress) finish(err error, out string) error {
	if p.bar != nil {
		p.bar.Finish()
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted; %d %s are saved in %s; run the same command again to continue", p.job, p.done, p.unit, out)
	}
	return err
}
