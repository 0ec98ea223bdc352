package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/runstore"
)

// Environment of the shard processes TestDriftShardedProcesses starts.
const (
	driftShardDirEnv    = "TETHER_BENCH_DRIFT_SHARD_DIR"
	driftShardShardsEnv = "TETHER_BENCH_DRIFT_SHARDS"
	driftShardOutEnv    = "TETHER_BENCH_DRIFT_SHARD_OUT"
)

// TestDriftShardHelperProcess is not a test: started by TestDriftShardedProcesses, it runs the
// planted-drift benchmark of the fixture in TETHER_BENCH_DRIFT_SHARD_DIR into
// TETHER_BENCH_DRIFT_SHARD_OUT as the shard that --shard auto finds in its environment (a Slurm
// array task, or a Kubernetes Indexed Job's index with TETHER_BENCH_DRIFT_SHARDS shards).
func TestDriftShardHelperProcess(t *testing.T) {
	dir := os.Getenv(driftShardDirEnv)
	if dir == "" {
		t.Skip("helper process for TestDriftShardedProcesses")
	}
	shards, _ := strconv.Atoi(os.Getenv(driftShardShardsEnv))
	s, _, err := runstore.ParseShard("auto", shards, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	m := testmodels.Open(t, filepath.Join(dir, "model"))
	opts := driftTestOptions(t, os.Getenv(driftShardOutEnv), filepath.Join(dir, "axis.safetensors"), readFixtureU(t, dir))
	opts.Shard = &s
	opts.Progress = func(done, total int) { fmt.Fprintf(os.Stderr, "progress %d/%d\n", done, total) }
	if rep, err := RunDrift(context.Background(), m, opts); err != nil || rep != nil {
		t.Fatalf("shard %s: report %v, error %v", s, rep, err)
	}
}

// reportMDWithoutCreated is report.md with any line naming the creation time left out.
func reportMDWithoutCreated(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^.*20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ.*$`).ReplaceAll(data, nil)
}

// TestDriftShardedProcesses runs the planted-drift benchmark's 8 conversations (2 scenarios x
// 2 arms x 2 seeds) as 3 shards in 3 concurrent processes into one directory: as a Slurm array
// (SLURM_* set), killing one shard with SIGKILL after its first stored group and running it
// again, and as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, 3 shards). The shards split the
// (scenario, arm) groups that an unsharded run generates as one batch, so this also checks that
// a conversation does not depend on its batch-mates. The report step over the shards writes
// report.json and report.md byte-identical (but for the creation time) to the unsharded run's.
func TestDriftShardedProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	root := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, root)
	m := testmodels.Open(t, mdir)
	ref := filepath.Join(root, "ref")
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, ref, apath, u)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		env    func(i int) []string
		shards string
		kill   int
	}{
		{"slurm", func(i int) []string {
			return []string{"SLURM_ARRAY_TASK_ID=" + strconv.Itoa(i), "SLURM_ARRAY_TASK_COUNT=3", "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_STEP=1"}
		}, "", 2},
		{"kubernetes", func(i int) []string {
			return []string{"JOB_COMPLETION_INDEX=" + strconv.Itoa(i), "SLURM_ARRAY_TASK_ID="}
		}, "3", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(root, tc.name, "out")
			start := func(i int) (*exec.Cmd, *bufio.Scanner) {
				cmd := exec.Command(os.Args[0], "-test.run=^TestDriftShardHelperProcess$", "-test.count=1")
				cmd.Env = append(os.Environ(), tc.env(i)...)
				cmd.Env = append(cmd.Env, driftShardDirEnv+"="+root, driftShardOutEnv+"="+out, driftShardShardsEnv+"="+tc.shards)
				pipe, err := cmd.StderrPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd, bufio.NewScanner(pipe)
			}
			cmds := make([]*exec.Cmd, 3)
			logs := make([]chan string, 3)
			for i := range cmds {
				var sc *bufio.Scanner
				cmds[i], sc = start(i)
				logs[i] = make(chan string, 1)
				go func(i int) {
					var all strings.Builder
					for sc.Scan() {
						all.WriteString(sc.Text() + "\n")
						if i == tc.kill && strings.HasPrefix(sc.Text(), "progress 1/") {
							cmds[i].Process.Kill()
						}
					}
					logs[i] <- all.String()
				}(i)
			}
			for i, cmd := range cmds {
				err := cmd.Wait()
				log := <-logs[i]
				if i == tc.kill {
					if err == nil {
						t.Fatalf("shard %d finished before it was killed:\n%s", i, log)
					}
					continue
				}
				if err != nil {
					t.Fatalf("shard %d: %v\n%s", i, err, log)
				}
			}
			if tc.kill >= 0 {
				victim := filepath.Join(out, runstore.Shard{Index: tc.kill, Count: 3}.DirName())
				if _, err := os.Stat(filepath.Join(victim, runstore.SealFileName)); err == nil {
					t.Fatal("the killed shard is sealed")
				}
				if _, err := RunDrift(t.Context(), m, driftTestOptions(t, out, apath, u)); err == nil || !strings.Contains(err.Error(), victim[len(out)+1:]+" has not finished") {
					t.Fatalf("report over an unfinished shard: %v", err)
				}
				opts := driftTestOptions(t, out, apath, u)
				opts.Shard = &runstore.Shard{Index: tc.kill, Count: 3}
				if _, err := RunDrift(t.Context(), m, opts); err != nil {
					t.Fatalf("rerun of the killed shard: %v", err)
				}
			}
			if _, err := RunDrift(t.Context(), m, driftTestOptions(t, out, apath, u)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(reportWithoutCreated(t, out), reportWithoutCreated(t, ref)) {
				t.Error("the merged report.json differs from the unsharded run's")
			}
			if !bytes.Equal(reportMDWithoutCreated(t, out), reportMDWithoutCreated(t, ref)) {
				t.Error("the merged report.md differs from the unsharded run's")
			}
		})
	}
}

// TestDriftShardRefusals: the report step refuses shards run with other settings and a shard
// whose turns file changed after it was sealed, naming the shard.
func TestDriftShardRefusals(t *testing.T) {
	root := t.TempDir()
	mdir, apath, u := writeDriftFixture(t, root)
	m := testmodels.Open(t, mdir)
	run := func(out string, i int, edit func(*DriftOptions)) {
		opts := driftTestOptions(t, out, apath, u)
		opts.Shard = &runstore.Shard{Index: i, Count: 2}
		if edit != nil {
			edit(&opts)
		}
		if _, err := RunDrift(t.Context(), m, opts); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(root, "other")
	run(other, 0, nil)
	run(other, 1, func(o *DriftOptions) { o.MaxTokens = 5 })
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, other, apath, u)); err == nil ||
		!strings.Contains(err.Error(), "shard-0001-of-0002") || !strings.Contains(err.Error(), "other settings") {
		t.Fatalf("shards of other settings: %v", err)
	}
	corrupt := filepath.Join(root, "corrupt")
	run(corrupt, 0, nil)
	run(corrupt, 1, nil)
	// The report step writes into the shards' directory: one writer at a time.
	held, err := runstore.Lock(corrupt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, corrupt, apath, u)); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("report step while another process writes the directory: %v", err)
	}
	held.Close()
	path := filepath.Join(corrupt, "shard-0000-of-0002", DriftTurnsFile)
	data, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(data, []byte(`"turn":1`), []byte(`"turn":2`), 1), 0o644)
	if _, err := RunDrift(t.Context(), m, driftTestOptions(t, corrupt, apath, u)); err == nil ||
		!strings.Contains(err.Error(), "shard-0000-of-0002") || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("corrupted turns file: %v", err)
	}
}
