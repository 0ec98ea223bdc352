package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkOutputFile makes sure the file that flag names can be written, before
// any work starts: path must not be a directory, and its directory is
// created if missing and must accept a new file (a temporary file is made
// there and removed). Example names a suitable file, for the error.
func checkOutputFile(flag, path, example string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("--%s %s is a directory; expected a file path such as %s", flag, path, filepath.Join(path, example))
	}
	return checkWritableDir(flag, path, filepath.Dir(path))
}

// checkOutputDir makes sure the directory that flag names can be written,
// before any work starts: it is created if missing, must be a directory and
// must accept a new file.
func checkOutputDir(flag, path string) error {
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return fmt.Errorf("--%s %s is a file; expected a directory (new, or one this command wrote before)", flag, path)
	}
	return checkWritableDir(flag, path, path)
}

// checkWritableDir creates dir (for the output path of flag) and tries a
// temporary file in it.
func checkWritableDir(flag, path, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--%s %s: cannot create directory %s: %w", flag, path, dir, err)
	}
	f, err := os.CreateTemp(dir, ".tether-write-check-*")
	if err != nil {
		return fmt.Errorf("--%s %s: directory %s is not writable: %w", flag, path, dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
