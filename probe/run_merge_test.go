package probe

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/model"
	"tether/runstore"
)

// shardRunOptions are the small settings of the sharding tests: 24 rollouts in batches of 4.
func shardRunOptions(dir string, shard *runstore.Shard) RunOptions {
	return RunOptions{Dir: dir, Dataset: tinyDataset(), Samples: 2, MaxTokens: 6, Batch: 4, Seed: 3, Shard: shard}
}

// runShards runs every shard of n in dir, one after another.
func runShards(t *testing.T, m *model.Model, dir string, n int) {
	t.Helper()
	for i := range n {
		if _, err := ExecuteRun(t.Context(), m, shardRunOptions(dir, &runstore.Shard{Index: i, Count: n})); err != nil {
			t.Fatal(err)
		}
	}
}

// writeAxis builds dir's axis (per-token calibration, re-running m) into out and returns the
// axis file's bytes and the report's, with the run and output directories' names replaced by
// "RUN" and "OUT".
func writeAxis(t *testing.T, m *model.Model, dir, out string) (axisBytes, report []byte) {
	t.Helper()
	if _, _, err := WriteRunAxis(dir, filepath.Join(out, "axis.safetensors"), RunAxisOptions{Model: m}); err != nil {
		t.Fatal(err)
	}
	a, err := os.ReadFile(filepath.Join(out, "axis.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep []byte
	for _, e := range entries {
		if e.Name() == "axis.safetensors" || e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		rep = append(rep, e.Name()+"\n"...)
		rep = append(rep, bytes.ReplaceAll(bytes.ReplaceAll(data, []byte(dir), []byte("RUN")), []byte(out), []byte("OUT"))...)
	}
	return a, rep
}

// TestShardedRunMatchesUnsharded runs the same settings unsharded and as 1 and 3 shards:
// the merged run holds the same rollout lines (apart from where activations are stored), and
// its axis file and report are byte-identical to the unsharded run's.
func TestShardedRunMatchesUnsharded(t *testing.T) {
	m := openTiny(t, 17, "")
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := ExecuteRun(t.Context(), m, shardRunOptions(ref, nil)); err != nil {
		t.Fatal(err)
	}
	refRun, err := OpenRun(ref)
	if err != nil {
		t.Fatal(err)
	}
	refAxis, refReport := writeAxis(t, m, ref, t.TempDir())
	for _, n := range []int{1, 3} {
		dir := filepath.Join(t.TempDir(), "sharded")
		runShards(t, m, dir, n)
		run, err := OpenRun(dir)
		if err != nil {
			t.Fatalf("%d shards: %v", n, err)
		}
		if len(run.Rollouts()) != len(refRun.Rollouts()) {
			t.Fatalf("%d shards: %d rollouts, unsharded %d", n, len(run.Rollouts()), len(refRun.Rollouts()))
		}
		for i, r := range run.Rollouts() {
			want := refRun.Rollouts()[i]
			r.Shard, r.Row, want.Shard, want.Row = "", 0, "", 0
			if err := runstore.Diff(want, r); err != nil {
				t.Fatalf("%d shards: rollout %d (%s): %v", n, i, want.ID, err)
			}
		}
		a, rep := writeAxis(t, m, dir, t.TempDir())
		if !bytes.Equal(a, refAxis) {
			t.Errorf("%d shards: the axis file differs from the unsharded run's", n)
		}
		if !bytes.Equal(rep, refReport) {
			t.Errorf("%d shards: the axis report differs from the unsharded run's", n)
		}
	}
}

// TestShardedRunMergeRefusals damages a finished 3-shard run in each way a merge must refuse
// and checks that OpenRun's error names the shard and the fault.
func TestShardedRunMergeRefusals(t *testing.T) {
	m := openTiny(t, 17, "")
	good := filepath.Join(t.TempDir(), "good")
	runShards(t, m, good, 3)
	if _, err := OpenRun(good); err != nil {
		t.Fatal(err)
	}
	shard := func(i int) string { return runstore.Shard{Index: i, Count: 3}.DirName() }
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"missing shard", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, shard(1)))
		}, []string{shard(1), "missing"}},
		{"unfinished shard", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard(2), runstore.SealFileName))
		}, []string{shard(2), "has not finished"}},
		{"other settings", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, shard(1)))
			o := shardRunOptions(dir, &runstore.Shard{Index: 1, Count: 3})
			o.MaxTokens = 5
			if _, err := ExecuteRun(t.Context(), m, o); err != nil {
				t.Fatal(err)
			}
		}, []string{shard(1), "other settings"}},
		{"duplicated unit", func(t *testing.T, dir string) {
			editSeal(t, filepath.Join(dir, shard(2)), func(s *runstore.Seal) {
				first := readSealT(t, filepath.Join(dir, shard(0)))
				s.Units[0] = first.Units[0]
			})
		}, []string{shard(2), shard(0), "unit"}},
		{"corrupted file", func(t *testing.T, dir string) {
			path := filepath.Join(dir, shard(1), RolloutsFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 1
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{shard(1), RolloutsFileName, "sha256"}},
		{"corrupted activations", func(t *testing.T, dir string) {
			path := filepath.Join(dir, shard(0), filepath.FromSlash(ShardName(0)))
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{0})
			f.Close()
		}, []string{shard(0), ShardName(0), "sha256"}},
		{"file added after sealing", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, shard(2), "extra.txt"), []byte("x"), 0o644)
		}, []string{shard(2), "extra.txt", "not listed"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.CopyFS(dir, os.DirFS(good)); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, dir)
			_, err := OpenRun(dir)
			if err == nil {
				t.Fatal("the damaged run was merged")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func readSealT(t *testing.T, dir string) runstore.Seal {
	t.Helper()
	s, err := runstore.ReadSettings[runstore.Seal](dir, runstore.SealFileName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// editSeal rewrites a shard's seal through edit.
func editSeal(t *testing.T, dir string, edit func(*runstore.Seal)) {
	t.Helper()
	s := readSealT(t, dir)
	edit(&s)
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, runstore.SealFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}
