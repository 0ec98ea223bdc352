package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchCommitmentBadInput: settings the game cannot run with are refused before the model
// loads, with an error that names the flag or file.
func TestBenchCommitmentBadInput(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.txt")
	if err := os.WriteFile(empty, []byte("# only a comment\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--questions-limit", "5", "--branch-at", "5"}, "--branch-at [5]"}, // no question left after 5
		{[]string{"--branch-at", "6,3"}, "increasing"},
		{[]string{"--subject", "animal"}, `--subject "animal"`},
		{[]string{"--questions", empty}, empty + ": no lines"},
		{[]string{"--questions", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{[]string{"--openings", "9"}, "--openings 9 is out of range"},
		{[]string{"--seeds", "1"}, "--seeds"},
	} {
		args := append([]string{"bench", "commitment", "--model", filepath.Join(dir, "no-model"), "--out", out}, tc.args...)
		_, _, err := captureOutput(t, func() error { return dispatch(args) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("tether %s: error %v, want one containing %q", strings.Join(args, " "), err, tc.want)
		}
	}
}
