package runstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// LockFileName is the lock file inside a run directory. Its name starts with "." so that it
// never counts as a file of the run (see Options.AllowOtherFiles).
const LockFileName = ".tether-lock"

// ErrLocked is wrapped by Open's error when another process (or another Store of this process)
// has the run directory open for writing.
var ErrLocked = errors.New("run directory in use")

// holder is what the lock file says about the process that holds the lock.
type holder struct {
	PID     int    `json:"pid"`
	Host    string `json:"host"`
	Started string `json:"started"`
}

// lockWait bounds how long a refused writer waits for the holder to write its pid (the holder
// takes the lock, then writes it).
const lockWait = time.Second

// How often, and how far apart, acquire tries a lock it finds held.
const (
	lockRetries   = 4
	lockRetryWait = 25 * time.Millisecond
)

// acquire takes dir's lock, without waiting for a holder (it looks again lockRetries times, for
// a reader's instant probe), and writes this process's pid, host and the time
// into the lock file. Closing the returned file releases the lock; the OS releases it when the
// process ends.
func acquire(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("runstore: lock %s: %w", path, err)
	}
	held, err := tryLock(f)
	// A reader probing whether the lock is free (ShardStates) holds it for an instant: look
	// again a few times before calling it held.
	for try := 0; err == nil && held && try < lockRetries; try++ {
		time.Sleep(lockRetryWait)
		held, err = tryLock(f)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("runstore: lock %s: %w", path, err)
	}
	if held {
		f.Close()
		return nil, lockedError(dir, path)
	}
	host, _ := os.Hostname()
	data, err := json.Marshal(holder{PID: os.Getpid(), Host: host, Started: time.Now().UTC().Format(time.RFC3339)})
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(append(data, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("runstore: lock %s: %w", path, err)
	}
	return f, nil
}

// Lock takes dir's lock for a step that writes into dir without opening it as a Store (such as
// the report step that merges a directory of shards): a second process gets an error naming the
// holder, as Open gives. Closing the returned value releases the lock.
func Lock(dir string) (io.Closer, error) {
	return acquire(dir)
}

// heldLock returns the lockedError of dir when dir already has a lock file that another open
// file holds, and nil otherwise (no lock file, a free one, or one that cannot be read). It
// creates no file.
func heldLock(dir string) error {
	path := filepath.Join(dir, LockFileName)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if held, err := tryLock(f); err == nil && held {
		return lockedError(dir, path)
	}
	return nil
}

// lockedError says who holds dir's lock, reading the lock file (waiting up to lockWait for a
// holder that has only just taken the lock to write it).
func lockedError(dir, path string) error {
	var h holder
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(data, &h) == nil && h.PID > 0 {
			break
		}
		if time.Since(start) > lockWait {
			return fmt.Errorf("runstore: %s: %w: another process holds its lock %s (it has not written its pid there); two processes must never write one run: wait for the other to finish or stop it",
				dir, ErrLocked, path)
		}
	}
	return fmt.Errorf("runstore: %s: %w: process %d on host %s holds its lock %s (since %s); two processes must never write one run: wait for it to finish or stop it",
		dir, ErrLocked, h.PID, h.Host, path, h.Started)
}
