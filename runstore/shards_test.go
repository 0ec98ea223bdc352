package runstore

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestParseShard: every way --shard and --shards can be given, from the command line and from
// a Slurm array or a Kubernetes Indexed Job's environment, with the refusals.
func TestParseShard(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   string
		shards int
		env    map[string]string
		want   Shard
		ok     bool
		errHas string
	}{
		{name: "none", ok: false},
		{name: "explicit", spec: "3/64", want: Shard{3, 64}, ok: true},
		{name: "explicit with matching shards", spec: "0/2", shards: 2, want: Shard{0, 2}, ok: true},
		{name: "explicit with other shards", spec: "0/2", shards: 3, errHas: "disagree"},
		{name: "index too large", spec: "4/4", errHas: "0 <= i < N"},
		{name: "negative", spec: "-1/4", errHas: "0 <= i < N"},
		{name: "zero shards", spec: "0/0", errHas: "0 <= i < N"},
		{name: "not a fraction", spec: "3", errHas: "expected i/N"},
		{name: "shards alone", shards: 4, errHas: "without --shard"},
		{name: "slurm", spec: "auto", env: map[string]string{EnvSlurmTaskID: "5", EnvSlurmTaskCount: "8", EnvSlurmTaskMin: "0", EnvSlurmTaskStep: "1"},
			want: Shard{5, 8}, ok: true},
		{name: "slurm without min and step", spec: "auto", env: map[string]string{EnvSlurmTaskID: "0", EnvSlurmTaskCount: "2"}, want: Shard{0, 2}, ok: true},
		{name: "slurm from 1", spec: "auto", env: map[string]string{EnvSlurmTaskID: "1", EnvSlurmTaskCount: "2", EnvSlurmTaskMin: "1"}, errHas: "start at 0"},
		{name: "slurm step 2", spec: "auto", env: map[string]string{EnvSlurmTaskID: "2", EnvSlurmTaskCount: "2", EnvSlurmTaskStep: "2"}, errHas: "step 1"},
		{name: "slurm without count", spec: "auto", env: map[string]string{EnvSlurmTaskID: "2"}, errHas: EnvSlurmTaskCount},
		{name: "slurm id past count", spec: "auto", env: map[string]string{EnvSlurmTaskID: "2", EnvSlurmTaskCount: "2"}, errHas: "0 <= i < N"},
		{name: "slurm and other shards", spec: "auto", shards: 3, env: map[string]string{EnvSlurmTaskID: "0", EnvSlurmTaskCount: "2"}, errHas: "--shards 3"},
		{name: "kubernetes", spec: "auto", shards: 3, env: map[string]string{EnvJobIndex: "2"}, want: Shard{2, 3}, ok: true},
		{name: "kubernetes without shards", spec: "auto", env: map[string]string{EnvJobIndex: "2"}, errHas: "needs --shards"},
		{name: "kubernetes bad index", spec: "auto", shards: 3, env: map[string]string{EnvJobIndex: "x"}, errHas: "expected an integer"},
		{name: "auto outside a scheduler", spec: "auto", errHas: "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok, err := ParseShard(tc.spec, tc.shards, func(k string) string { return tc.env[k] })
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil || ok != tc.ok || s != tc.want {
				t.Fatalf("got %v, %v, %v; want %v, %v", s, ok, err, tc.want, tc.ok)
			}
		})
	}
}

// TestShardsPartitionUnits: for several unit counts and shard counts, every unit is owned by
// exactly one shard and the shares differ by at most one.
func TestShardsPartitionUnits(t *testing.T) {
	for _, total := range []int{1, 7, 64, 100} {
		for _, n := range []int{1, 2, 3, 64} {
			counts := make([]int, n)
			for k := range total {
				owners := 0
				for i := range n {
					if (Shard{i, n}).Owns(k) {
						owners++
						counts[i]++
					}
				}
				if owners != 1 {
					t.Fatalf("%d units, %d shards: unit %d has %d owners", total, n, k, owners)
				}
			}
			lo, hi := total, 0
			for _, c := range counts {
				lo, hi = min(lo, c), max(hi, c)
			}
			if hi-lo > 1 {
				t.Fatalf("%d units, %d shards: shares from %d to %d", total, n, lo, hi)
			}
		}
	}
}

// TestSealAndMerge seals two shards of four units written through Store and merges them; the
// merged order interleaves the shards (unit k is shard k mod 2's). The seal lists every file
// with its sha256 (checked against FileSHA256 of the file).
func TestSealAndMerge(t *testing.T) {
	root := t.TempDir()
	units := []string{"a", "b", "c", "d"}
	for i := range 2 {
		s := Shard{i, 2}
		dir := filepath.Join(root, s.DirName())
		st, err := Open(dir, "settings.json", map[string]int{"x": 1}, Options[map[string]int]{})
		if err != nil {
			t.Fatal(err)
		}
		mine := []string{units[i], units[i+2]}
		if err := WritePlan(dir, s, 4, mine); err != nil {
			t.Fatal(err)
		}
		log, err := st.OpenLog("log.jsonl", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(mine[0], mine[1]); err != nil {
			t.Fatal(err)
		}
		if err := SealShard(dir, s, "h", 4, mine); err != nil {
			t.Fatal(err)
		}
		st.Close()
		seal, err := readSeal(dir)
		if err != nil || seal == nil {
			t.Fatal(seal, err)
		}
		if len(seal.Files) != 3 {
			t.Fatalf("seal lists %v, want settings.json, units.json and log.jsonl", seal.Files)
		}
		for name, sum := range seal.Files {
			if want, _ := FileSHA256(filepath.Join(dir, name)); want != sum {
				t.Fatalf("seal says %s has sha256 %s, it has %s", name, sum, want)
			}
		}
	}
	states, order, err := MergeShards(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 2 || len(order) != 4 || order[0] != 0 || order[1] != 1 || order[2] != 0 || order[3] != 1 {
		t.Fatalf("states %d, order %v", len(states), order)
	}
	// A shard directory of another shard count is refused.
	os.Mkdir(filepath.Join(root, Shard{0, 3}.DirName()), 0o755)
	if _, _, err := MergeShards(root); err == nil || !strings.Contains(err.Error(), "same N") {
		t.Fatalf("mixed shard counts: %v", err)
	}
}

// TestShardStates: a sealed shard, a shard whose directory a Store holds open (running, its
// holder named by pid), a shard started and stopped (incomplete), and a missing one.
func TestShardStates(t *testing.T) {
	root := t.TempDir()
	open := func(i int) *Store {
		s := Shard{i, 4}
		st, err := Open(filepath.Join(root, s.DirName()), "settings.json", 1, Options[int]{})
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePlan(st.Dir(), s, 4, []string{"u" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	sealed := open(0)
	if err := SealShard(sealed.Dir(), Shard{0, 4}, "h", 4, []string{"u0"}); err != nil {
		t.Fatal(err)
	}
	sealed.Close()
	running := open(1)
	defer running.Close()
	open(2).Close()
	states, err := ShardStates(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 4 {
		t.Fatalf("%d shards, want 4", len(states))
	}
	if s := states[0]; s.Seal == nil || s.Holder != "" {
		t.Errorf("sealed shard: %+v", s)
	}
	if s := states[1]; s.Seal != nil || !strings.Contains(s.Holder, "process "+strconv.Itoa(os.Getpid())+" ") {
		t.Errorf("running shard: holder %q", s.Holder)
	}
	if s := states[2]; !s.Exists || s.Seal != nil || s.Holder != "" || s.Plan == nil || s.Plan.Units[0] != "u2" {
		t.Errorf("incomplete shard: %+v", s)
	}
	if s := states[3]; s.Exists {
		t.Errorf("missing shard: %+v", s)
	}
	// The probe let go of shard 2's lock: it can be opened again.
	again := open(2)
	again.Close()
	if _, _, err := MergeShards(root); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("merge with a running shard: %v", err)
	}
}

// TestShardRunDir: an unsharded run writes out itself; shard i of N writes its sub-directory;
// a sharded run refuses an out that already holds an unsharded run's settings file.
func TestShardRunDir(t *testing.T) {
	out := t.TempDir()
	if dir, err := ShardRunDir(out, "run.json", nil); err != nil || dir != out {
		t.Fatalf("unsharded: %q, %v; want %q", dir, err, out)
	}
	s := &Shard{Index: 1, Count: 3}
	if dir, err := ShardRunDir(out, "run.json", s); err != nil || dir != filepath.Join(out, "shard-0001-of-0003") {
		t.Fatalf("shard 1/3: %q, %v", dir, err)
	}
	if err := os.WriteFile(filepath.Join(out, "run.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ShardRunDir(out, "run.json", s); err == nil || !strings.Contains(err.Error(), "holds an unsharded run (run.json)") {
		t.Fatalf("out with an unsharded run: %v", err)
	}
}
