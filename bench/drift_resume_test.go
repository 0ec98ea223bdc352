package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"tether/internal/testmodels"
)

// Environment of the helper process that TestDriftKilledAndResumed starts.
const (
	driftHelperDirEnv = "TETHER_BENCH_DRIFT_HELPER_DIR"
)

// reportWithoutCreated is report.json with the "created" stamp blanked.
func reportWithoutCreated(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`"created": *"[^"]*"`).ReplaceAll(data, []byte(`"created": ""`))
}

// TestDriftCancelAndResume cancels runs at random points (by time, and right
// after a group is stored), resumes each until it finishes, and checks that
// report.json is byte-for-byte the report of an uninterrupted run.
func TestDriftCancelAndResume(t *testing.T) {
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	refDir := filepath.Join(dir, "ref")
	start := time.Now()
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, refDir, apath, u)); err != nil {
		t.Fatal(err)
	}
	full := time.Since(start)
	want := reportWithoutCreated(t, refDir)
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 4; trial++ {
		out := filepath.Join(dir, "trial", string(rune('a'+trial)))
		interrupted := 0
		for attempt := 0; ; attempt++ {
			if attempt > 20 {
				t.Fatalf("trial %d: not finished after %d attempts", trial, attempt)
			}
			ctx, cancel := context.WithCancel(t.Context())
			opts := driftTestOptions(t, out, apath, u)
			if trial%2 == 0 {
				// Stop after 1 to 3 more groups (of 2 conversations) are stored.
				stopAt, more := -1, 2*(1+rng.IntN(3))
				opts.Progress = func(done, total int) {
					if stopAt < 0 {
						stopAt = done + more
					}
					if done >= stopAt && done < total {
						cancel()
					}
				}
			} else {
				time.AfterFunc(time.Duration(rng.Int64N(int64(full))), cancel)
			}
			_, err := RunDrift(ctx, m, opts)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("trial %d: %v", trial, err)
			}
			interrupted++
		}
		got := reportWithoutCreated(t, out)
		if !bytes.Equal(got, want) {
			t.Fatalf("trial %d (%d interruptions): report.json differs from the uninterrupted run's", trial, interrupted)
		}
	}
}

// TestDriftHelperProcess is not a test: run by TestDriftKilledAndResumed as a
// subprocess, it runs the planted-drift benchmark into the given directory.
func TestDriftHelperProcess(t *testing.T) {
	dir := os.Getenv(driftHelperDirEnv)
	if dir == "" {
		t.Skip("helper process for TestDriftKilledAndResumed")
	}
	mdir, apath, u := filepath.Join(dir, "model"), filepath.Join(dir, "axis.safetensors"), readFixtureU(t, dir)
	m := testmodels.Open(t, mdir)
	opts := driftTestOptions(t, filepath.Join(dir, "out"), apath, u)
	opts.Progress = func(done, total int) { fmt.Fprintf(os.Stderr, "progress %d/%d\n", done, total) }
	if _, err := RunDrift(context.Background(), m, opts); err != nil {
		t.Fatal(err)
	}
}

// readFixtureU is the axis direction of a fixture written by writeDriftFixture.
func readFixtureU(t *testing.T, dir string) []float32 {
	t.Helper()
	_, _, u := writeDriftFixture(t, t.TempDir()) // deterministic: same u
	return u
}

// TestDriftKilledAndResumed kills a run with SIGKILL at random times in a
// subprocess, resumes it in this process, and checks that report.json is the
// uninterrupted run's.
func TestDriftKilledAndResumed(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, dir)
	m := testmodels.Open(t, mdir)
	refDir := filepath.Join(dir, "ref")
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, refDir, apath, u)); err != nil {
		t.Fatal(err)
	}
	want := reportWithoutCreated(t, refDir)
	rng := rand.New(rand.NewPCG(21, 22))
	kills := 0
	for attempt := 0; attempt < 4; attempt++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDriftHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), driftHelperDirEnv+"="+dir)
		pipe, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The helper reports progress on stderr (one line per stored group):
		// kill after 1 or 2 lines and a random delay, in a group or a write.
		sc := bufio.NewScanner(pipe)
		for lines, want := 0, 1+rng.IntN(2); lines < want && sc.Scan(); {
			if strings.HasPrefix(sc.Text(), "progress ") {
				lines++
			}
		}
		time.Sleep(time.Duration(rng.IntN(80)) * time.Millisecond)
		if err := cmd.Process.Kill(); err == nil {
			kills++
		}
		go io.Copy(io.Discard, pipe)
		cmd.Wait()
		if _, err := os.Stat(filepath.Join(dir, "out", "report.json")); err == nil {
			t.Logf("attempt %d: the helper finished before the kill", attempt)
			break
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "out", DriftTurnsFile)); err == nil {
		t.Logf("%d kills; %d turn lines stored before the resume", kills, bytes.Count(data, []byte("\n")))
	}
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, filepath.Join(dir, "out"), apath, u)); err != nil {
		t.Fatal(err)
	}
	if got := reportWithoutCreated(t, filepath.Join(dir, "out")); !bytes.Equal(got, want) {
		t.Fatalf("after %d kills: report.json differs from the uninterrupted run's", kills)
	}
}
