package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"tether/probe"
	"tether/runstore"
)

// Environment of the tether subprocesses the tests start (the test binary itself).
const (
	helperArgsEnv = "TETHER_CMD_HELPER_ARGS"
	// helperGo is the line a helper waits for on stdin before it runs, so that the test can
	// start several at the same moment.
	helperGo = "go"
)

// TestHelperTetherProcess is not a test: started by the tests below as a subprocess, it runs
// tether with the JSON list of arguments in TETHER_CMD_HELPER_ARGS once a line arrives on stdin,
// and exits with tether's exit status.
func TestHelperTetherProcess(t *testing.T) {
	raw := os.Getenv(helperArgsEnv)
	if raw == "" {
		t.Skip("helper process for the sharding tests")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if os.Getenv("TETHER_CMD_HELPER_WAIT") != "" {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	os.Exit(exitStatus(dispatch(args), os.Stderr))
}

// tetherProcess is a tether subprocess.
type tetherProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
}

// startTether starts tether with args and the extra environment env; with wait, it runs only
// once go is called.
func startTether(t *testing.T, env []string, wait bool, args ...string) *tetherProcess {
	t.Helper()
	raw, _ := json.Marshal(args)
	p := &tetherProcess{cmd: exec.Command(os.Args[0], "-test.run=^TestHelperTetherProcess$")}
	p.cmd.Env = append(append(os.Environ(), helperArgsEnv+"="+string(raw)), env...)
	if wait {
		p.cmd.Env = append(p.cmd.Env, "TETHER_CMD_HELPER_WAIT=1")
	}
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// release lets a process started with wait run.
func (p *tetherProcess) release() { io.WriteString(p.stdin, helperGo+"\n") }

// wait waits for the process and returns its exit status (-1 when killed by a signal).
func (p *tetherProcess) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		p.cmd.Process.Kill()
		t.Fatalf("tether %v did not finish", p.cmd.Args)
	}
	return p.cmd.ProcessState.ExitCode()
}

// shardTestArgs are the persona run settings of the sharding tests: (1 default + 3 roles) x 2
// prompts x 3 questions x 2 samples = 48 rollouts, one per batch.
func shardTestArgs(model, out string) []string {
	return []string{"persona", "run", "--model", model, "--out", out, "--roles-limit", "3", "--prompts-limit", "2",
		"--questions-limit", "3", "--samples", "2", "--max-tokens", "12", "--batch", "1", "--seed", "4"}
}

// buildAxis runs `tether axis build` on run into a new directory and returns the axis file's
// bytes and the report's, with the run and output directories' names replaced.
func buildAxis(t *testing.T, model, run string) (axisFile, report []byte) {
	t.Helper()
	out := t.TempDir()
	if _, _, err := captureOutput(t, func() error {
		return dispatch([]string{"axis", "build", "--run", run, "--out", filepath.Join(out, "axis.safetensors"), "--model", model})
	}); err != nil {
		t.Fatalf("axis build --run %s: %v", run, err)
	}
	a, err := os.ReadFile(filepath.Join(out, "axis.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := os.ReadFile(filepath.Join(out, probe.AxisReportFile))
	if err != nil {
		t.Fatal(err)
	}
	rep = bytes.ReplaceAll(bytes.ReplaceAll(rep, []byte(run), []byte("RUN")), []byte(out), []byte("OUT"))
	return a, rep
}

// rolloutLines counts the complete lines of a shard's rollouts.jsonl.
func rolloutLines(dir string) int {
	data, _ := os.ReadFile(filepath.Join(dir, probe.RolloutsFileName))
	return bytes.Count(data, []byte("\n"))
}

// TestShardedRunProcesses runs a persona run as 3 shards in 3 concurrent processes into one
// directory, first as a Slurm job array (SLURM_* set, --shard auto), killing one shard with
// SIGKILL mid-way and running it again, then as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX
// with --shards 3). Each time the axis built from the merged shards, and its report, are
// byte-identical to those of the same run unsharded in one process; `run status` tells the
// killed shard as incomplete before it is rerun.
func TestShardedRunProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	model := writePersonaTestModel(t)
	ref := filepath.Join(t.TempDir(), "ref")
	if _, _, err := captureOutput(t, func() error { return dispatch(shardTestArgs(model, ref)) }); err != nil {
		t.Fatal(err)
	}
	refAxis, refReport := buildAxis(t, model, ref)

	slurm := func(i int) []string {
		return []string{"SLURM_ARRAY_TASK_ID=" + strconv.Itoa(i), "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=0",
			"SLURM_ARRAY_TASK_STEP=1", "JOB_COMPLETION_INDEX="}
	}
	k8s := func(i int) []string {
		return []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(i), "SLURM_ARRAY_TASK_ID="}
	}
	for _, tc := range []struct {
		name  string
		env   func(int) []string
		extra []string
		kill  bool
	}{
		{"slurm", slurm, []string{"--shard", "auto"}, true},
		{"kubernetes", k8s, []string{"--shard", "auto", "--shards", "3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			args := append(shardTestArgs(model, dir), tc.extra...)
			procs := make([]*tetherProcess, 3)
			for i := range procs {
				procs[i] = startTether(t, tc.env(i), true, args...)
			}
			for _, p := range procs {
				p.release()
			}
			if tc.kill {
				victim := filepath.Join(dir, runstore.Shard{Index: 1, Count: 3}.DirName())
				for deadline := time.Now().Add(time.Minute); rolloutLines(victim) < 2; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("shard 1 wrote no rollouts in a minute: %s", procs[1].stderr.String())
					}
				}
				procs[1].cmd.Process.Signal(syscall.SIGKILL)
				if st := procs[1].wait(t); st != -1 {
					t.Fatalf("shard 1 exited with %d before it was killed (the run is too short to kill mid-way)", st)
				}
				if _, err := os.Stat(filepath.Join(victim, runstore.SealFileName)); err == nil {
					t.Fatal("the killed shard is sealed")
				}
			}
			for i, p := range procs {
				if tc.kill && i == 1 {
					continue
				}
				if st := p.wait(t); st != 0 {
					t.Fatalf("shard %d exited with %d: %s", i, st, p.stderr.String())
				}
			}
			if tc.kill {
				status, _, err := captureOutput(t, func() error { return dispatch([]string{"run", "status", dir}) })
				if err != nil || !regexp.MustCompile(`shard-0001-of-0003\s+incomplete\s+\d+/16`).MatchString(status) ||
					!strings.Contains(status, "done 2, running 0, incomplete (failed or stopped) 1, missing 0") {
					t.Fatalf("run status: error %v:\n%s", err, status)
				}
				if _, _, err := captureOutput(t, func() error {
					return dispatch([]string{"axis", "build", "--run", dir, "--out", filepath.Join(t.TempDir(), "a.safetensors"), "--model", model})
				}); err == nil || !strings.Contains(err.Error(), "shard-0001-of-0003 has not finished") {
					t.Fatalf("axis build of an unfinished sharded run: %v", err)
				}
				again := startTether(t, tc.env(1), false, args...)
				if st := again.wait(t); st != 0 {
					t.Fatalf("rerun of shard 1 exited with %d: %s", st, again.stderr.String())
				}
			}
			status, _, err := captureOutput(t, func() error { return dispatch([]string{"run", "status", dir}) })
			if err != nil || !strings.Contains(status, "done 3, running 0, incomplete (failed or stopped) 0, missing 0") {
				t.Fatalf("run status: error %v:\n%s", err, status)
			}
			a, rep := buildAxis(t, model, dir)
			if !bytes.Equal(a, refAxis) {
				t.Error("the merged axis file differs from the unsharded run's")
			}
			if !bytes.Equal(rep, refReport) {
				t.Errorf("the merged axis report differs from the unsharded run's:\n%s\n---\n%s", rep, refReport)
			}
		})
	}
}

// TestRunOneWriter starts two persona runs into one new directory at the same moment, many
// times: each time exactly one runs (exit 0), the other exits 1 naming the process that holds
// the directory, and the run is whole. A round where the second process only started after the
// first had finished (it finds all 12 rollouts done and exits 0) is no race: it is counted
// apart, and most rounds must be races.
func TestRunOneWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	model := writePersonaTestModel(t)
	root := t.TempDir()
	const rounds, total = 12, 12
	serial := 0
	for round := range rounds {
		dir := filepath.Join(root, strconv.Itoa(round))
		// 64 new tokens per rollout, one at a time: the winner holds the directory for a good
		// part of a second, so that the other process (started at the same moment) finds it
		// held even when loading a model takes next to nothing.
		args := []string{"persona", "run", "--model", model, "--out", dir, "--roles-limit", "2", "--prompts-limit", "1",
			"--questions-limit", "2", "--samples", "2", "--max-tokens", "64", "--batch", "1"}
		a, b := startTether(t, nil, true, args...), startTether(t, nil, true, args...)
		a.release()
		b.release()
		sa, sb := a.wait(t), b.wait(t)
		already := fmt.Sprintf("0 rollouts to run of %d (%d already done)", total, total)
		switch {
		case sa == 0 && sb == 0 && (strings.Contains(a.stderr.String(), already) || strings.Contains(b.stderr.String(), already)):
			serial++
		case (sa == 0) == (sb == 0) || (sa != 0 && sa != 1) || (sb != 0 && sb != 1):
			t.Fatalf("round %d: exit statuses %d and %d, want one 0 and one 1\n%s\n%s", round, sa, sb, a.stderr.String(), b.stderr.String())
		default:
			winner, loser := a, b
			if sb == 0 {
				winner, loser = b, a
			}
			msg := loser.stderr.String()
			if !strings.Contains(msg, runstore.ErrLocked.Error()) || !strings.Contains(msg, fmt.Sprintf("process %d ", winner.cmd.Process.Pid)) {
				t.Fatalf("round %d: the refused run says %q; want it to name process %d", round, msg, winner.cmd.Process.Pid)
			}
		}
		run, err := probe.OpenRun(dir)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if n := len(run.Rollouts()); n != total || rolloutLines(dir) != total {
			t.Fatalf("round %d: %d rollouts, %d lines; want %d", round, n, rolloutLines(dir), total)
		}
	}
	t.Logf("%d of %d rounds were races", rounds-serial, rounds)
	if serial > rounds/4 {
		t.Fatalf("in %d of %d rounds the second run started after the first had finished: too few races to tell", serial, rounds)
	}
}
