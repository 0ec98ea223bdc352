package probe

import (
	"fmt"
	"path"
	"path/filepath"

	"tether/runstore"
)

// openSharded reads the sharded run in dir as one run: every shard must be there, finished and
// intact, with the same settings (runstore.MergeShards), and hold exactly the rollouts its seal
// lists. The rollouts are put in the order of an unsharded run (PlanRollouts order), so that an
// axis built from the merged run is the one an unsharded run gives; each rollout's Shard names
// its activation shard relative to dir. The manifest is shard 0's.
func openSharded(dir string) (*Run, error) {
	states, order, err := runstore.MergeShards(dir)
	if err != nil {
		return nil, fmt.Errorf("probe: run: %w", err)
	}
	byShard := make([]map[string]Rollout, len(states))
	var man Manifest
	for i, st := range states {
		r, err := OpenRun(st.Dir)
		if err != nil {
			return nil, fmt.Errorf("probe: run %s: shard %s: %w", dir, st.Shard.DirName(), err)
		}
		if i == 0 {
			man = r.Manifest()
		}
		m := make(map[string]Rollout, len(r.rollouts))
		for _, ro := range r.rollouts {
			ro.Shard = path.Join(st.Shard.DirName(), ro.Shard)
			m[ro.ID] = ro
		}
		for _, id := range st.Seal.Units {
			if _, ok := m[id]; !ok {
				return nil, fmt.Errorf("probe: run %s: shard %s: rollout %q is listed in its %s but not in its %s", dir, st.Shard.DirName(), id, runstore.SealFileName, RolloutsFileName)
			}
		}
		if len(m) != len(st.Seal.Units) {
			return nil, fmt.Errorf("probe: run %s: shard %s: %s holds %d rollouts, its %s lists %d", dir, st.Shard.DirName(), RolloutsFileName, len(m), runstore.SealFileName, len(st.Seal.Units))
		}
		byShard[i] = m
	}
	rollouts := make([]Rollout, len(order))
	next := make([]int, len(states))
	for k, s := range order {
		id := states[s].Seal.Units[next[s]]
		next[s]++
		rollouts[k] = byShard[s][id]
	}
	return &Run{dir: dir, manifest: man, rollouts: rollouts}, nil
}

// CountRollouts is the number of completed rollouts in the run directory dir (the complete
// lines of its rollouts.jsonl); a directory without the file has none.
func CountRollouts(dir string) (int, error) {
	n := 0
	_, err := scanRollouts(filepath.Join(dir, RolloutsFileName), func(Rollout, runstore.Ref) error {
		n++
		return nil
	})
	return n, err
}
