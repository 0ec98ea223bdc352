package main

import (
	"fmt"
	"os"
	"path/filepath"

	"tether/bench"
	"tether/probe"
	"tether/runstore"
)

func init() {
	register("run status", "per-shard progress of a sharded run: done, running, incomplete, missing", runRunStatus)
}

func runRunStatus(args []string) error {
	fs := newFlags("run status", "DIR",
		"tether run status /shared/run   # the --out of the shards")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("run status: expected one run directory, got %d arguments", fs.NArg())}
	}
	dir := fs.Arg(0)
	states, err := runstore.ShardStates(dir)
	if err != nil {
		return fmt.Errorf("run status: %w", err)
	}
	var sealed, running, incomplete, missing []string
	fmt.Printf("%s: %d shards\n", dir, len(states))
	fmt.Printf("%-20s %-12s %15s  %s\n", "shard", "state", "units done", "note")
	for _, st := range states {
		name := st.Shard.DirName()
		state, done, note := shardStatus(st)
		switch state {
		case "done":
			sealed = append(sealed, st.Shard.String())
		case "running":
			running = append(running, st.Shard.String())
		case "missing":
			missing = append(missing, st.Shard.String())
		default:
			incomplete = append(incomplete, st.Shard.String())
		}
		fmt.Printf("%-20s %-12s %15s  %s\n", name, state, done, note)
	}
	fmt.Printf("done %d, running %d, incomplete (failed or stopped) %d, missing %d\n", len(sealed), len(running), len(incomplete), len(missing))
	if len(incomplete)+len(missing) > 0 {
		fmt.Printf("to finish: rerun the same command with --shard set to each of %v (a shard resumes where it stopped)\n", append(incomplete, missing...))
	}
	if len(sealed) == len(states) {
		fmt.Printf("every shard is done: tether axis build --run %s ... merges a persona run's shards; the benchmark command without --shard merges a benchmark's\n", dir)
	}
	return nil
}

// shardStatus says what one shard holds: its state, units done of its share, and a note.
func shardStatus(st runstore.ShardState) (state, done, note string) {
	switch {
	case !st.Exists:
		return "missing", "-", "not started"
	case st.SealErr != nil:
		return "incomplete", "-", st.SealErr.Error()
	case st.Seal != nil:
		return "done", fmt.Sprintf("%d/%d", len(st.Seal.Units), len(st.Seal.Units)), "sealed"
	}
	share := "?"
	if st.Plan != nil {
		share = fmt.Sprint(len(st.Plan.Units))
	}
	count := "?" // counted for persona runs and variance benchmarks only
	kind, err := runstore.ReadSettings[struct {
		Format string `json:"format"`
	}](st.Dir, probe.ManifestFileName)
	if err == nil && kind.Format == probe.RunFormat {
		n, err := probe.CountRollouts(st.Dir)
		if count = fmt.Sprint(n); err != nil {
			count, note = "?", err.Error()
		}
	} else if err == nil && kind.Format == bench.VarianceReportFormat {
		n, err := bench.VarianceUnitsDone(st.Dir)
		if count = fmt.Sprint(n); err != nil {
			count, note = "?", err.Error()
		}
	} else if _, err := os.Stat(filepath.Join(st.Dir, probe.ManifestFileName)); err != nil {
		count = "0"
	}
	if st.Holder != "" {
		return "running", count + "/" + share, st.Holder
	}
	if note == "" {
		note = "stopped before it finished (killed, failed or still queued to resume)"
	}
	return "incomplete", count + "/" + share, note
}
