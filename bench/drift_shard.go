package bench

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"tether/runstore"
)

// driftUnitKey is the key of one conversation, the drift benchmark's unit: "scenario/arm/seed".
func driftUnitKey(scenario, arm string, seed uint64) string {
	return fmt.Sprintf("%s/%s/%d", scenario, arm, seed)
}

// planUnits lists the conversations this process runs in run order (scenario, arm, seed): all
// of them, or the shard's share (unit k is shard k mod N's), grouped by (scenario, arm).
func (r *driftRunner) planUnits() {
	r.seeds = map[string][]uint64{}
	r.units, r.total = nil, 0
	for _, s := range r.scripts {
		for _, a := range r.arms() {
			for _, seed := range r.opts.Seeds {
				k := r.total
				r.total++
				if r.opts.Shard != nil && !r.opts.Shard.Owns(k) {
					continue
				}
				g := s.info.ID + "\x00" + a.arm
				r.seeds[g] = append(r.seeds[g], seed)
				r.units = append(r.units, driftUnitKey(s.info.ID, a.arm, seed))
			}
		}
	}
}

// shardDir is the run directory this process writes (Out, or the shard's sub-directory of Out)
// and the settings hash of a shard's seal: the manifest's, less the model's directory.
func (r *driftRunner) shardDir(man DriftManifest) (string, string, error) {
	hashed := man
	hashed.ModelDir = ""
	hash, err := runstore.SettingsHash(hashed)
	if err != nil {
		return "", "", fmt.Errorf("bench: drift: %w", err)
	}
	dir, err := runstore.ShardRunDir(r.opts.Out, DriftManifestFile, r.opts.Shard)
	if err != nil {
		return "", "", fmt.Errorf("bench: drift: %w", err)
	}
	return dir, hash, nil
}

// mergeDriftShards is the report step of a sharded drift run in Out: every shard must be
// there, finished and intact (runstore.MergeShards), have been run with these settings (its
// run.json is want, but for the model's directory), and hold exactly the conversations its seal
// lists. The report of their records together is written to Out; it is the report of the same
// run unsharded (the records are put in run order).
func (r *driftRunner) mergeDriftShards(ctx context.Context, want DriftManifest) (*DriftReport, error) {
	lock, err := runstore.Lock(r.opts.Out)
	if err != nil {
		return nil, fmt.Errorf("bench: drift: report of the shards in %s: %w", r.opts.Out, err)
	}
	defer lock.Close()
	states, _, err := runstore.MergeShards(r.opts.Out)
	if err != nil {
		return nil, fmt.Errorf("bench: drift: %w", err)
	}
	all := *r
	all.opts.Shard = nil
	all.planUnits()
	if states[0].Seal.TotalUnits != all.total {
		return nil, fmt.Errorf("bench: drift: the shards in %s hold a run of %d conversations; these settings make %d", r.opts.Out, states[0].Seal.TotalUnits, all.total)
	}
	var recs []TurnRecord
	for _, st := range states {
		name := st.Shard.DirName()
		have, err := runstore.ReadSettings[DriftManifest](st.Dir, DriftManifestFile)
		if err != nil {
			return nil, fmt.Errorf("bench: drift: shard %s: %w", name, err)
		}
		have.ModelDir = want.ModelDir
		if err := runstore.Diff(have, want); err != nil {
			return nil, fmt.Errorf("bench: drift: shard %s ran with other settings than this command: %s %w", name, DriftManifestFile, err)
		}
		var units []string
		_, err = runstore.ScanRecords(filepath.Join(st.Dir, DriftTurnsFile), func(rec TurnRecord, _ int, _ runstore.Ref) error {
			if rec.Turn == 0 {
				units = append(units, driftUnitKey(rec.Scenario, rec.Arm, rec.Seed))
			}
			recs = append(recs, rec)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("bench: drift: shard %s: %w", name, err)
		}
		if err := sameUnits(units, st.Seal.Units); err != nil {
			return nil, fmt.Errorf("bench: drift: shard %s: %s and its %s: %w", name, DriftTurnsFile, runstore.SealFileName, err)
		}
	}
	rep, err := r.report(ctx, recs)
	if err != nil {
		return nil, err
	}
	if err := writeDriftReport(r.opts.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// sameUnits names a conversation that stored (from turns.jsonl) and sealed (a seal's units) do
// not both hold.
func sameUnits(stored, sealed []string) error {
	in := map[string]int{}
	for _, u := range stored {
		in[u]++
	}
	for _, u := range sealed {
		in[u]--
	}
	for _, u := range slices.Sorted(maps.Keys(in)) {
		switch n := in[u]; {
		case n > 0:
			return fmt.Errorf("conversation %s is stored but not sealed, or stored twice", u)
		case n < 0:
			return fmt.Errorf("conversation %s is sealed but not stored", u)
		}
	}
	return nil
}
