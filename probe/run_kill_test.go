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
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunProcess$")
		cmd.Env = append(os.Environ(), helperRunDirEnv+"="+dir, helperModelDirEnv+"="+modelDir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
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
		cmd := start()
		sig := os.Signal(os.Interrupt)
		if attempt%2 == 1 {
			sig = os.Kill
		}
		// Half of the attempts wait for some progress, half for a random time.
		deadline := time.Now().Add(time.Duration(rng.IntN(400)) * time.Millisecond)
		target := before + 1 + rng.IntN(max(1, (total-before)/2))
		byProgress := attempt%4 < 2
		for {
			time.Sleep(2 * time.Millisecond)
			if cmd.ProcessState != nil {
				break
			}
			if byProgress && linesNow() >= target || !byProgress && time.Now().After(deadline) {
				break
			}
			if linesNow() >= total {
				break
			}
		}
		cmd.Process.Signal(sig)
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			// Finished before the signal arrived.
		case errors.As(err, &ee) && sig == os.Interrupt && ee.ExitCode() == helperExitCancel:
			interrupted++
		case errors.As(err, &ee) && sig == os.Kill && !ee.Exited():
			interrupted++
		default:
			t.Fatalf("attempt %d (%v): helper failed: %v\n%s", attempt, sig, err, cmd.Stderr.(*bytes.Buffer))
		}
		t.Logf("attempt %d: %v after %d -> %d lines", attempt, sig, before, linesNow())
		if _, err := OpenRun(dir); err != nil && linesNow() > 0 {
			t.Fatalf("attempt %d: run directory unreadable after %v: %v", attempt, sig, err)
		}
	}
	if interrupted == 0 {
		t.Fatal("no attempt was interrupted before the run finished: the test checked nothing")
	}
	cmd := start()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("final resume: %v\n%s", err, cmd.Stderr.(*bytes.Buffer))
	}
	assertSameRun(t, ref, dir)
}
