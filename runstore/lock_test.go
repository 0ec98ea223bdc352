package runstore

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lockHelperDirEnv names the run directory the helper process opens.
const lockHelperDirEnv = "TETHER_RUNSTORE_LOCK_HELPER_DIR"

// TestLockHelperProcess is not a test: started by the lock tests as a subprocess (the test
// binary itself), it opens the run directory for writing and prints "won" or "lost: <error>"
// on stdout; a winner holds the store until its stdin closes.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperDirEnv)
	if dir == "" {
		t.Skip("helper process for the lock tests")
	}
	st, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		fmt.Printf("lost: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(0)
	}
	fmt.Println("won")
	io.Copy(io.Discard, os.Stdin)
	st.Close()
	os.Exit(0)
}

// lockHelper is a running TestLockHelperProcess.
type lockHelper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startLockHelper(t *testing.T, dir string) *lockHelper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperDirEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &lockHelper{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	t.Cleanup(func() {
		h.stdin.Close()
		h.cmd.Process.Kill()
		h.cmd.Wait()
	})
	return h
}

// result is the helper's first line: "won" or "lost: ...".
func (h *lockHelper) result(t *testing.T) string {
	t.Helper()
	line, err := h.out.ReadString('\n')
	if err != nil {
		t.Fatalf("helper %d: %v (output %q)", h.cmd.Process.Pid, err, line)
	}
	return strings.TrimSpace(line)
}

// TestLockHeldByAnotherProcess: while another process holds a run directory, opening it fails
// with ErrLocked and a message naming that process's pid and host; once the holder is killed
// with SIGKILL, the lock is free again.
func TestLockHeldByAnotherProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	dir := filepath.Join(t.TempDir(), "run")
	h := startLockHelper(t, dir)
	if got := h.result(t); got != "won" {
		t.Fatalf("helper: %s", got)
	}
	_, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	host, _ := os.Hostname()
	pid := "process " + strconv.Itoa(h.cmd.Process.Pid) + " on host " + host
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), pid) {
		t.Fatalf("error %v, want ErrLocked naming %q", err, pid)
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	h.cmd.Wait()
	st, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	st.Close()
}

// TestLockInProcess: a second Store of the same directory in one process is refused too (the
// lock belongs to the open file, not the process), and Close releases the lock.
func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())+" ") {
		t.Fatalf("second open: %v", err)
	}
	st.Close()
	st, err = Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	st.Close()
}

// TestLockRace: two processes open one new directory at the same moment, 20 times; each time
// exactly one wins, and the loser's error names the winner's pid.
func TestLockRace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	root := t.TempDir()
	for round := 0; round < 20; round++ {
		dir := filepath.Join(root, strconv.Itoa(round), "run")
		a, b := startLockHelper(t, dir), startLockHelper(t, dir)
		ra, rb := a.result(t), b.result(t)
		winner, loser := a, rb
		if rb == "won" {
			winner, loser = b, ra
		}
		if (ra == "won") == (rb == "won") {
			t.Fatalf("round %d: %q and %q, want exactly one winner", round, ra, rb)
		}
		if want := "process " + strconv.Itoa(winner.cmd.Process.Pid) + " "; !strings.HasPrefix(loser, "lost: ") || !strings.Contains(loser, want) {
			t.Fatalf("round %d: loser says %q, want it to name %q", round, loser, want)
		}
		for _, h := range []*lockHelper{a, b} {
			h.stdin.Close()
			done := make(chan error, 1)
			go func() { done <- h.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("round %d: helper: %v", round, err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: helper %d did not exit", round, h.cmd.Process.Pid)
			}
		}
	}
}
