package main

import (
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
