package main

import (
	"fmt"
	"io"
	"os"
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

// newBar is a counted progress bar with a time-left estimate on standard error
// (silent when standard error is not a terminal).
func newBar(total int, description string) *progressbar.ProgressBar {
	w := os.Stderr
	if !isTerminal(w) {
		return progressbar.DefaultSilent(int64(total), description)
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(description),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionClearOnFinish(),
	)
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
