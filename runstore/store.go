// Package runstore is the resumable run directory that long jobs write: persona runs
// (probe.ExecuteRun), the drift benchmark (bench.RunDrift) and every later benchmark.
//
// A run directory holds
//
//   - a settings file (for example run.json): the typed settings the run was started with,
//     written atomically when the run is created and compared on every resume, so that a run is
//     never continued with other settings (Open names the field that differs);
//   - append-only JSONL logs (Log): one record per line, appended in one write and fsynced; a
//     record is done exactly when its whole line is in the file. A last line without its newline
//     was torn by a crash: readers skip it (ScanRecords) and a resumed writer cuts it off
//     (Store.OpenLog). Each record's byte offset and length (Ref) can be kept instead of the
//     record and read back later (ReadRecord);
//   - safetensors shards (WriteShard, OpenShard), each written atomically;
//   - the lock file LockFileName: an OS advisory lock (flock on unix, LockFileEx on windows)
//     held by the one process that has the directory open for writing, and released by the OS
//     when that process ends, however it ends. A second writer fails with an error naming the
//     holder's pid, host and start time (see ErrLocked).
//
// Readers (reports, axis builds) read a directory without taking the lock: every file they read
// is either written atomically or an append-only log whose torn last line they skip.
//
// A sharded run is a directory of such run directories, one per shard (Shard.DirName, opened
// with the same settings): shard i of N runs the units whose index in the run's canonical order
// is i modulo N (ParseShard reads --shard i/N, or a Slurm array's or Kubernetes Indexed Job's
// environment). A shard writes its unit list when it starts (WritePlan) and, once complete, a
// manifest of its settings' hash, its units and every file's sha256 (SealShard), atomically and
// last. MergeShards checks a sharded run before it is read as one: every shard sealed, one
// settings hash, no unit twice, every share whole, every checksum right; ShardStates tells each
// shard's progress.
package runstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"tether/internal/atomicfile"
)

// Options says how Open treats an existing directory.
type Options[S any] struct {
	// Check, when set, decides whether a run started with settings have may be resumed with
	// want, returning an error that says why not; Open returns that error as it is. When nil,
	// Open refuses any difference, naming the first differing field (see Diff).
	Check func(have, want S) error
	// AllowOtherFiles lets a new run start in a directory that already holds other files.
	// Without it such a directory is refused, so that a mistyped path never mixes a run into
	// unrelated files. Hidden files (a name starting with ".") are never counted: they are
	// this package's lock and temporary files.
	AllowOtherFiles bool
}

// Store is a run directory opened for writing. It holds the directory's lock until Close.
type Store struct {
	dir  string
	lock *os.File

	mu   sync.Mutex
	logs []*Log
}

// Open opens the run directory dir for writing, creating it when missing, and takes its lock.
// When dir holds no settings file called name, it must be empty (see Options.AllowOtherFiles)
// and the settings want are written there (indented JSON, atomically); otherwise the stored
// settings are read and compared with want (Options.Check, or Diff), and a difference is an
// error. The caller must Close the store.
func Open[S any](dir, name string, want S, opts Options[S]) (*Store, error) {
	if dir == "" {
		return nil, errors.New("runstore: no run directory given")
	}
	// A foreign directory is refused before the lock file is made in it (and again under the
	// lock, where it counts).
	if err := checkNew(dir, name, opts.AllowOtherFiles); err != nil {
		// Another process may be making this very run (its files appear before this look at
		// them ends): say who holds the lock rather than call the directory foreign.
		if lerr := heldLock(dir); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("runstore: run directory %s: %w", dir, err)
	}
	lock, err := acquire(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, lock: lock}
	if err := settings(dir, name, want, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// settings writes the settings file of a new run in dir, or checks an existing one's.
func settings[S any](dir, name string, want S, opts Options[S]) error {
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		have, err := ReadSettings[S](dir, name)
		if err != nil {
			return err
		}
		if opts.Check != nil {
			return opts.Check(have, want)
		}
		if err := Diff(have, want); err != nil {
			return fmt.Errorf("runstore: cannot resume %s: %s %w", dir, name, err)
		}
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("runstore: run directory %s: %w", dir, err)
	}
	if err := checkNew(dir, name, opts.AllowOtherFiles); err != nil {
		return err
	}
	data, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		return fmt.Errorf("runstore: run directory %s: %s: %w", dir, name, err)
	}
	return writeFile(path, append(data, '\n'))
}

// checkNew refuses a directory that holds files but no settings file name, unless allowOther.
// A missing directory is a new one.
func checkNew(dir, name string, allowOther bool) error {
	if allowOther {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("runstore: run directory %s: %w", dir, err)
	}
	// One listing decides both (a separate look for the settings file could miss one that
	// another process writes between the two looks).
	for _, e := range entries {
		if e.Name() == name {
			return nil
		}
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			return fmt.Errorf("runstore: run directory %s: the directory is not empty and has no %s (expected a new run directory or one this command made)", dir, name)
		}
	}
	return nil
}

// ReadSettings reads the settings file name of the run directory dir.
func ReadSettings[S any](dir, name string) (S, error) {
	var have S
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return have, fmt.Errorf("runstore: run directory %s: %w", dir, err)
	}
	if err := json.Unmarshal(data, &have); err != nil {
		return have, fmt.Errorf("runstore: settings file %s: invalid JSON for %T: %w", path, have, err)
	}
	return have, nil
}

// Diff compares two values by their JSON form and names the first field (a dotted path of JSON
// keys, in key order) where they differ: "max_tokens is 8, this run has 5". It returns nil when
// the JSON forms are equal.
func Diff(have, want any) error {
	a, err := jsonTree(have)
	if err != nil {
		return err
	}
	b, err := jsonTree(want)
	if err != nil {
		return err
	}
	return diffTree("", a, b)
}

// jsonTree is v's JSON form decoded into maps, slices and json.Numbers.
func jsonTree(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("runstore: compare %T: %w", v, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var t any
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("runstore: compare %T: %w", v, err)
	}
	return t, nil
}

// diffTree names the first difference between two decoded JSON values at path.
func diffTree(path string, a, b any) error {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := make([]string, 0, len(am)+len(bm))
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := diffTree(strings.TrimPrefix(path+"."+k, "."), am[k], bm[k]); err != nil {
				return err
			}
		}
		return nil
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if bytes.Equal(ja, jb) {
		return nil
	}
	if path == "" {
		path = "(the whole value)"
	}
	return fmt.Errorf("%s is %s, this run has %s", path, clip(string(ja)), clip(string(jb)))
}

// clip shortens a long JSON value for an error message.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// writeFile writes data to path atomically and fsyncs path's directory, so that the rename is
// durable too.
func writeFile(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("runstore: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory so that a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("runstore: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("runstore: sync %s: %w", dir, err)
	}
	return nil
}

// Dir is the run directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the store's logs and releases the directory's lock.
func (s *Store) Close() error {
	s.mu.Lock()
	logs := s.logs
	s.logs = nil
	s.mu.Unlock()
	var errs []error
	for _, l := range logs {
		errs = append(errs, l.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
		s.lock = nil
	}
	return errors.Join(errs...)
}
