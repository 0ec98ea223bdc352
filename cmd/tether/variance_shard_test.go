package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"tether/internal/testmodels"
)

// reportWithoutCreated is DIR/report.md without the lines naming the creation time.
func reportWithoutCreated(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^.*20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ.*$`).ReplaceAll(data, nil)
}

// TestBenchVarianceSharded: bench variance on stories260K run as shards 0/2 and 1/2 one after
// another; run status lists the missing shard, then both done with their unit counts; the same
// command without --shard merges them into the report.md of the unsharded run.
func TestBenchVarianceSharded(t *testing.T) {
	model := testmodels.Stories260K(t)
	root := t.TempDir()
	args := func(out string, extra ...string) []string {
		return append([]string{"bench", "variance", "--model", model, "--out", out, "--personas-limit", "2",
			"--items-limit", "2", "--seeds", "2", "--max-tokens", "4", "--bootstrap", "50"}, extra...)
	}
	single := filepath.Join(root, "single")
	if _, _, err := captureOutput(t, func() error { return dispatch(args(single)) }); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "sharded")
	stdout, _, err := captureOutput(t, func() error { return dispatch(args(out, "--shard", "0/2")) })
	if err != nil || !strings.Contains(stdout, "shard 0/2 of the variance benchmark is done") {
		t.Fatalf("shard 0/2: error %v:\n%s", err, stdout)
	}
	status, _, err := captureOutput(t, func() error { return dispatch([]string{"run", "status", out}) })
	if err != nil || !strings.Contains(status, "done 1, running 0, incomplete (failed or stopped) 0, missing 1") {
		t.Fatalf("run status with one shard: error %v:\n%s", err, status)
	}
	if _, _, err := captureOutput(t, func() error { return dispatch(args(out)) }); err == nil || !strings.Contains(err.Error(), "shard 1/2 is missing") {
		t.Fatalf("merge with a missing shard: %v", err)
	}
	if _, _, err := captureOutput(t, func() error { return dispatch(args(out, "--shard", "1/2")) }); err != nil {
		t.Fatal(err)
	}
	status, _, err = captureOutput(t, func() error { return dispatch([]string{"run", "status", out}) })
	if err != nil || !strings.Contains(status, "done 2, running 0, incomplete (failed or stopped) 0, missing 0") ||
		!regexp.MustCompile(`shard-0001-of-0002\s+done\s+\d+/\d+`).MatchString(status) {
		t.Fatalf("run status with both shards: error %v:\n%s", err, status)
	}
	if _, _, err := captureOutput(t, func() error { return dispatch(args(out)) }); err != nil {
		t.Fatalf("merge: %v", err)
	}
	if !bytes.Equal(reportWithoutCreated(t, out), reportWithoutCreated(t, single)) {
		t.Error("the merged report.md differs from the unsharded run's")
	}
	if _, _, err := captureOutput(t, func() error { return dispatch(args(out, "--shard", "0/2", "--judge", "self")) }); err == nil || !strings.Contains(err.Error(), "--judge") {
		t.Errorf("--judge with --shard: %v", err)
	}
}
