package probe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tether/internal/testmodels"
	"tether/model"
)

// Environment of the helper process that TestRunKilledAndResumed starts.
const (
	helperRunDirEnv   = "TETHER_PROBE_HELPER_RUN_DIR"
	helperModelDirEnv = "TETHER_PROBE_HELPER_MODEL_DIR"
	helperExitCancel  = 3
	// helperReady is the line the helper prints once SIGINT cancels its run instead of
	// killing it (Go's default action for SIGINT).
	helperReady = "helper ready"
)

func killRunOptions(dir string) RunOptions {
	return RunOptions{Dir: dir, Dataset: tinyDataset(), Samples: 3, MaxTokens: 8, Batch: 2, Seed: 5}
}

// TestHelperRunProcess is not a test: run by TestRunKilledAndResumed as a subprocess (the test
// binary itself), it executes a run until done or until SIGINT cancels it.
func TestHelperRunProcess(t *testing.T) {
	dir := os.Getenv(helperRunDirEnv)
	if dir == "" {
		t.Skip("helper process for TestRunKilledAndResumed")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fmt.Println(helperReady)
	m, err := model.Open(os.Getenv(helperModelDirEnv), model.Options{Backend: testmodels.Backend()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	defer m.Close()
	_, err = ExecuteRun(ctx, m, killRunOptions(dir))
	switch {
	case errors.Is(err, context.Canceled):
		os.Exit(helperExitCancel)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(0)
}

// TestRunKilledAndResumed runs the rollouts in a subprocess, interrupts it with SIGINT or
// SIGKILL at random points (by time and by progress), resumes it each time, and checks that the
// finished run holds the same rollout lines and the same activation rows as an uninterrupted
// run with the same seed.
func TestRunKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	modelDir := writeTinyModel(t, t.TempDir(), 9, "")
	m, err := model.Open(modelDir, model.Options{Backend: testmodels.Backend()})
	if err != nil {
		t.Fatal(err)
	}
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := ExecuteRun(t.Context(), m, killRunOptions(ref)); err != nil {
		t.Fatal(err)
	}
	m.Close()
	total := len(PlanRollouts(tinyDataset(), "x", 3, 5))

	dir := filepath.Join(t.TempDir(), "run")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	// start starts the helper and waits until it has installed its SIGINT handler: a SIGINT
	// sent before that kills it (a busy machine can take longer to start it than the random
	// delays below).
	start := func() *helperRun {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunProcess$")
		cmd.Env = append(os.Environ(), helperRunDirEnv+"="+dir, helperModelDirEnv+"="+modelDir)
		h := &helperRun{cmd: cmd, stdout: newLineWatch(helperReady), exited: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = h.stdout, &h.stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() {
			h.err = cmd.Wait()
			close(h.exited)
		}()
		select {
		case <-h.stdout.seen:
		case <-h.exited:
		}
		return h
	}
	linesNow := func() int {
		data, _ := os.ReadFile(filepath.Join(dir, RolloutsFileName))
		return bytes.Count(data, []byte("\n"))
	}
	interrupted := 0
	for attempt := 0; attempt < 10; attempt++ {
		before := linesNow()
		if before >= total {
			break
		}
		h := start()
		sig := os.Signal(os.Interrupt)
		if attempt%2 == 1 {
			sig = os.Kill
		}
		// Half of the attempts wait for some progress, half for a random time.
		deadline := time.Now().Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		target := before + 1 + rng.IntN(max(1, (total-before)/2))
		byProgress := attempt%4 < 2
	wait:
		for {
			select {
			case <-h.exited:
				break wait
			case <-time.After(2 * time.Millisecond):
			}
			if byProgress && linesNow() >= target || !byProgress && time.Now().After(deadline) {
				break
			}
			if linesNow() >= total {
				break
			}
		}
		h.cmd.Process.Signal(sig)
		<-h.exited
		err := h.err
		var ee *exec.ExitError
		switch {
		case err == nil:
			// Finished before the signal arrived.
		case errors.As(err, &ee) && sig == os.Interrupt && ee.ExitCode() == helperExitCancel:
			interrupted++
		case errors.As(err, &ee) && sig == os.Kill && !ee.Exited():
			interrupted++
		default:
			t.Fatalf("attempt %d (%v): helper failed: %v\n%s", attempt, sig, err, &h.stderr)
		}
		t.Logf("attempt %d: %v after %d -> %d lines", attempt, sig, before, linesNow())
		if _, err := OpenRun(dir); err != nil && linesNow() > 0 {
			t.Fatalf("attempt %d: run directory unreadable after %v: %v", attempt, sig, err)
		}
	}
	if interrupted == 0 {
		t.Fatal("no attempt was interrupted before the run finished: the test checked nothing")
	}
	h := start()
	if <-h.exited; h.err != nil {
		t.Fatalf("final resume: %v\n%s", h.err, &h.stderr)
	}
	assertSameRun(t, ref, dir)
}

// helperRun is a running TestHelperRunProcess.
type helperRun struct {
	cmd    *exec.Cmd
	stdout *lineWatch
	stderr bytes.Buffer
	// exited is closed when the process has ended; err is then cmd.Wait's result.
	exited chan struct{}
	err    error
}

// lineWatch is a process's stdout that closes seen once the line it watches for was written.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line []byte
	seen chan struct{}
}

func newLineWatch(line string) *lineWatch {
	return &lineWatch{line: []byte(line + "\n"), seen: make(chan struct{})}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := bytes.Contains(w.buf.Bytes(), w.line)
	w.buf.Write(p)
	if !had && bytes.Contains(w.buf.Bytes(), w.line) {
		close(w.seen)
	}
	return len(p), nil
}
