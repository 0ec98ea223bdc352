package runstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Shard is one share of a run's units: the units whose index in the run's canonical order is
// Index modulo Count. Shard i of N runs in the sub-directory DirName of the shared output
// directory.
type Shard struct{ Index, Count int }

// Environment variables that ParseShard reads for "auto".
const (
	EnvSlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	EnvSlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	EnvSlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	EnvSlurmTaskStep  = "SLURM_ARRAY_TASK_STEP"
	EnvJobIndex       = "JOB_COMPLETION_INDEX"
)

// ParseShard reads a --shard value: "i/N" (0 <= i < N), or "auto": shard SLURM_ARRAY_TASK_ID of
// SLURM_ARRAY_TASK_COUNT in a Slurm job array (which must start at 0 with step 1:
// SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_STEP say so), else shard JOB_COMPLETION_INDEX of
// shards (--shards) in a Kubernetes Indexed Job. shards > 0 with "i/N" must equal N. getenv
// reads the environment (os.Getenv). An empty spec is no sharding: ok is false.
func ParseShard(spec string, shards int, getenv func(string) string) (s Shard, ok bool, err error) {
	if spec == "" {
		if shards > 0 {
			return Shard{}, false, fmt.Errorf("--shards %d without --shard (expected --shard auto or --shard i/N)", shards)
		}
		return Shard{}, false, nil
	}
	if spec != "auto" {
		is, ns, found := strings.Cut(spec, "/")
		i, err1 := strconv.Atoi(is)
		n, err2 := strconv.Atoi(ns)
		if !found || err1 != nil || err2 != nil {
			return Shard{}, false, fmt.Errorf("--shard %q: expected i/N (such as 3/64) or auto", spec)
		}
		if shards > 0 && shards != n {
			return Shard{}, false, fmt.Errorf("--shard %s and --shards %d disagree", spec, shards)
		}
		return checkShard(Shard{i, n}, "--shard "+spec)
	}
	if id := getenv(EnvSlurmTaskID); id != "" {
		if v := getenv(EnvSlurmTaskMin); v != "" && v != "0" {
			return Shard{}, false, fmt.Errorf("--shard auto: the Slurm array starts at %s=%s; it must start at 0 with step 1 (sbatch --array=0-N) so that task ids are shard numbers", EnvSlurmTaskMin, v)
		}
		if v := getenv(EnvSlurmTaskStep); v != "" && v != "1" {
			return Shard{}, false, fmt.Errorf("--shard auto: the Slurm array has step %s=%s; it must start at 0 with step 1 (sbatch --array=0-N) so that task ids are shard numbers", EnvSlurmTaskStep, v)
		}
		i, err := envInt(getenv, EnvSlurmTaskID)
		if err != nil {
			return Shard{}, false, err
		}
		n, err := envInt(getenv, EnvSlurmTaskCount)
		if err != nil {
			return Shard{}, false, err
		}
		if shards > 0 && shards != n {
			return Shard{}, false, fmt.Errorf("--shard auto: --shards %d but %s=%d", shards, EnvSlurmTaskCount, n)
		}
		return checkShard(Shard{i, n}, "--shard auto ("+EnvSlurmTaskID+", "+EnvSlurmTaskCount+")")
	}
	if getenv(EnvJobIndex) != "" {
		i, err := envInt(getenv, EnvJobIndex)
		if err != nil {
			return Shard{}, false, err
		}
		if shards <= 0 {
			return Shard{}, false, fmt.Errorf("--shard auto with %s (a Kubernetes Indexed Job) needs --shards N, the Job's completions", EnvJobIndex)
		}
		return checkShard(Shard{i, shards}, "--shard auto ("+EnvJobIndex+")")
	}
	return Shard{}, false, fmt.Errorf("--shard auto: neither %s (a Slurm job array) nor %s (a Kubernetes Indexed Job) is set; give --shard i/N", EnvSlurmTaskID, EnvJobIndex)
}

// envInt reads the integer environment variable name.
func envInt(getenv func(string) string, name string) (int, error) {
	v := getenv(name)
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("--shard auto: %s=%q: expected an integer", name, v)
	}
	return n, nil
}

// checkShard checks 0 <= Index < Count.
func checkShard(s Shard, what string) (Shard, bool, error) {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return Shard{}, false, fmt.Errorf("%s: shard %d of %d (expected 0 <= i < N)", what, s.Index, s.Count)
	}
	return s, true, nil
}

// String is "i/N".
func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// DirName is the shard's sub-directory of the shared output directory: "shard-0003-of-0064".
func (s Shard) DirName() string { return fmt.Sprintf("shard-%04d-of-%04d", s.Index, s.Count) }

// ShardRunDir is the run directory a process writes under the shared output directory out: out
// itself for an unsharded run (s nil), else shard s's sub-directory. A sharded run refuses an
// out that already holds an unsharded run (its settings file, settingsFile).
func ShardRunDir(out, settingsFile string, s *Shard) (string, error) {
	if s == nil {
		return out, nil
	}
	if _, err := os.Stat(filepath.Join(out, settingsFile)); err == nil {
		return "", fmt.Errorf("%s holds an unsharded run (%s); a sharded run needs its own --out", out, settingsFile)
	}
	return filepath.Join(out, s.DirName()), nil
}

// Owns reports whether the unit at index of the canonical order is the shard's.
func (s Shard) Owns(index int) bool { return index%s.Count == s.Index }

// shardDirRE matches DirName.
var shardDirRE = regexp.MustCompile(`^shard-(\d{4,})-of-(\d{4,})$`)

// SealFileName is a finished shard's manifest, written last and atomically; PlanFileName is
// the shard's unit list, written when it starts (so that its progress can be told).
const (
	SealFileName = "shard.json"
	PlanFileName = "units.json"
)

// Plan is a shard's share of its run (PlanFileName): the run's unit count and the shard's
// units (keys, in canonical order).
type Plan struct {
	Shard      int      `json:"shard"`
	Shards     int      `json:"shards"`
	TotalUnits int      `json:"total_units"`
	Units      []string `json:"units"`
}

// WritePlan writes the plan of shard s in dir atomically, when the shard starts; a resumed
// shard writes the same plan again. The caller holds dir's Store.
func WritePlan(dir string, s Shard, total int, units []string) error {
	data, err := json.MarshalIndent(Plan{Shard: s.Index, Shards: s.Count, TotalUnits: total, Units: units}, "", "  ")
	if err != nil {
		return fmt.Errorf("runstore: plan %s: %w", dir, err)
	}
	return writeFile(filepath.Join(dir, PlanFileName), append(data, '\n'))
}

// SealFormat is the format of a shard manifest.
const SealFormat = "tether-shard/1"

// Seal is a finished shard's manifest (SealFileName): which shard it is, the hash of the
// settings it ran with, its units (keys, in canonical order), the run's unit count, and the
// sha256 of every other file of its directory (slash-separated relative paths; hidden files
// excluded).
type Seal struct {
	Format         string            `json:"format"`
	Shard          int               `json:"shard"`
	Shards         int               `json:"shards"`
	SettingsSHA256 string            `json:"settings_sha256"`
	TotalUnits     int               `json:"total_units"`
	Units          []string          `json:"units"`
	Files          map[string]string `json:"files"`
}

// SettingsHash is the hex sha256 of v's JSON form: the settings hash of a shard manifest (the
// caller leaves out what may differ between shards, such as a creation time).
func SettingsHash(v any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("runstore: settings hash: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// SealShard writes the manifest of the finished shard s in dir (atomically, as the last file):
// the settings hash, the run's unit count total, the shard's units in canonical order, and the
// checksum of every non-hidden file of dir. The caller holds dir's Store.
func SealShard(dir string, s Shard, settingsHash string, total int, units []string) error {
	files, err := checksums(dir)
	if err != nil {
		return err
	}
	seal := Seal{Format: SealFormat, Shard: s.Index, Shards: s.Count, SettingsSHA256: settingsHash,
		TotalUnits: total, Units: units, Files: files}
	data, err := json.MarshalIndent(seal, "", "  ")
	if err != nil {
		return fmt.Errorf("runstore: seal %s: %w", dir, err)
	}
	return writeFile(filepath.Join(dir, SealFileName), append(data, '\n'))
}

// checksums is the sha256 of each non-hidden file under dir but the seal, by relative path.
func checksums(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || path == filepath.Join(dir, SealFileName) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		sum, err := FileSHA256(path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("runstore: checksums of %s: %w", dir, err)
	}
	return files, nil
}

// IsSharded reports whether dir is the shared output directory of a sharded run: it holds at
// least one shard sub-directory (DirName).
func IsSharded(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if e.IsDir() && shardDirRE.MatchString(e.Name()) {
			return true
		}
	}
	return false
}

// ShardState is what ShardStates found of one shard of a sharded run.
type ShardState struct {
	Shard Shard
	// Dir is the shard's directory; Exists reports whether it is there.
	Dir    string
	Exists bool
	// Seal is the shard's manifest when it has finished; SealErr says why a seal file could
	// not be read. Plan is the shard's plan when it has started (nil when unreadable).
	Seal    *Seal
	SealErr error
	Plan    *Plan
	// Holder names the process writing an unsealed shard now ("" when none, and for a sealed
	// shard). Finding out takes the shard's lock for an instant when it is free.
	Holder string
}

// ShardStates lists every shard of the sharded run in dir, 0 to N-1 (N from the shard
// directories' names, which must agree), with what each holds: missing, running (locked by a
// process), sealed, or neither (started, then stopped or failed).
func ShardStates(dir string) ([]ShardState, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("runstore: sharded run %s: %w", dir, err)
	}
	count := 0
	present := map[int]string{}
	for _, e := range entries {
		m := shardDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		if count != 0 && n != count {
			return nil, fmt.Errorf("runstore: sharded run %s: shard directories of %d and of %d shards (%s); every shard of one run must use the same N", dir, count, n, e.Name())
		}
		if n < 1 || i >= n {
			return nil, fmt.Errorf("runstore: sharded run %s: shard directory %s: shard %d of %d", dir, e.Name(), i, n)
		}
		count = n
		present[i] = filepath.Join(dir, e.Name())
	}
	if count == 0 {
		return nil, fmt.Errorf("runstore: %s holds no shard directories (shard-IIII-of-NNNN)", dir)
	}
	out := make([]ShardState, count)
	for i := range out {
		s := Shard{i, count}
		st := ShardState{Shard: s, Dir: filepath.Join(dir, s.DirName())}
		if _, ok := present[i]; ok {
			st.Exists = true
			st.Seal, st.SealErr = readSeal(st.Dir)
			if p, err := ReadSettings[Plan](st.Dir, PlanFileName); err == nil {
				st.Plan = &p
			}
			if st.Seal == nil {
				st.Holder = holderOf(st.Dir)
			}
		}
		out[i] = st
	}
	return out, nil
}

// readSeal reads dir's seal; a missing seal is nil without error.
func readSeal(dir string) (*Seal, error) {
	path := filepath.Join(dir, SealFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runstore: %w", err)
	}
	var s Seal
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("runstore: shard manifest %s: invalid JSON: %w", path, err)
	}
	if s.Format != SealFormat {
		return nil, fmt.Errorf("runstore: shard manifest %s: format %q (expected %q)", path, s.Format, SealFormat)
	}
	return &s, nil
}

// holderOf names the process that holds dir's lock now, or "" when none does. It takes the lock
// for an instant when it is free.
func holderOf(dir string) string {
	path := filepath.Join(dir, LockFileName)
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	held, err := tryLock(f)
	if err != nil || !held {
		return ""
	}
	var h holder
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &h) == nil && h.PID > 0 {
		return fmt.Sprintf("process %d on host %s since %s", h.PID, h.Host, h.Started)
	}
	return "another process"
}

// MergeShards checks that the sharded run in dir is complete and whole, and returns its shards
// in order with, for each unit of the run in canonical order, its shard's index. It refuses,
// naming the shard: a missing or unfinished (unsealed) shard, a shard sealed for another shard
// number or settings hash than shard 0's, a file whose sha256 is not the one sealed, a unit
// sealed by two shards, a shard whose unit count is not its share of the run's, and a file
// (other than hidden ones) that the seal does not list.
func MergeShards(dir string) ([]ShardState, []int, error) {
	states, err := ShardStates(dir)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]int{}
	var first *Seal
	for _, st := range states {
		name := st.Shard.DirName()
		switch {
		case !st.Exists:
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s is missing (%s); run it with --shard %s", dir, st.Shard, name, st.Shard)
		case st.SealErr != nil:
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s: %w", dir, name, st.SealErr)
		case st.Seal == nil && st.Holder != "":
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s is still running (%s)", dir, name, st.Holder)
		case st.Seal == nil:
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s has not finished (no %s); run it again with --shard %s to complete it", dir, name, SealFileName, st.Shard)
		}
		s := st.Seal
		if s.Shard != st.Shard.Index || s.Shards != st.Shard.Count {
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s: its %s says shard %d of %d", dir, name, SealFileName, s.Shard, s.Shards)
		}
		if first == nil {
			first = s
		} else if s.SettingsSHA256 != first.SettingsSHA256 || s.TotalUnits != first.TotalUnits {
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s ran with other settings than shard %s (settings sha256 %.12s, %d units; shard %s: %.12s, %d units); every shard must run the same command",
				dir, name, states[0].Shard.DirName(), s.SettingsSHA256, s.TotalUnits, states[0].Shard.DirName(), first.SettingsSHA256, first.TotalUnits)
		}
		want := 0
		for k := st.Shard.Index; k < s.TotalUnits; k += s.Shards {
			want++
		}
		if len(s.Units) != want {
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s holds %d units, its share of the run's %d is %d", dir, name, len(s.Units), s.TotalUnits, want)
		}
		for _, u := range s.Units {
			if prev, dup := seen[u]; dup {
				return nil, nil, fmt.Errorf("runstore: sharded run %s: unit %q is in shard %s and in shard %s", dir, u, states[prev].Shard.DirName(), name)
			}
			seen[u] = st.Shard.Index
		}
		if err := verifyFiles(st.Dir, s); err != nil {
			return nil, nil, fmt.Errorf("runstore: sharded run %s: shard %s: %w", dir, name, err)
		}
	}
	order := make([]int, first.TotalUnits)
	for k := range order {
		order[k] = k % first.Shards
	}
	return states, order, nil
}

// verifyFiles checks that dir holds exactly the files seal lists, with their checksums.
func verifyFiles(dir string, seal *Seal) error {
	have, err := checksums(dir)
	if err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(seal.Files)) {
		got, ok := have[n]
		if !ok {
			return fmt.Errorf("file %s is listed in %s but missing", n, SealFileName)
		}
		if got != seal.Files[n] {
			return fmt.Errorf("file %s has sha256 %s, %s says %s (the file changed or is corrupt)", n, got, SealFileName, seal.Files[n])
		}
	}
	for n := range have {
		if _, ok := seal.Files[n]; !ok {
			return fmt.Errorf("file %s is not listed in %s (written after the shard finished)", n, SealFileName)
		}
	}
	return nil
}
