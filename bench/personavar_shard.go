package bench

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"tether/runstore"
)

// unitKeys lists the keys of units in order.
func unitKeys(units []varianceUnit) []string {
	keys := make([]string, len(units))
	for i, u := range units {
		keys[i] = u.key()
	}
	return keys
}

// shardDir is the run directory this process writes (Out, or the shard's sub-directory of Out)
// and the settings hash of a shard's seal: the manifest's, less the model's directory.
func (r *varianceRunner) shardDir(man VarianceManifest) (string, string, error) {
	hashed := man
	hashed.ModelDir = ""
	hash, err := runstore.SettingsHash(hashed)
	if err != nil {
		return "", "", fmt.Errorf("bench: variance: %w", err)
	}
	dir, err := runstore.ShardRunDir(r.o.Out, VarianceManifestFile, r.o.Shard)
	if err != nil {
		return "", "", fmt.Errorf("bench: variance: %w", err)
	}
	return dir, hash, nil
}

// mergeVarianceShards is the report step of a sharded variance run in Out: every shard must be
// there, finished and intact (runstore.MergeShards), have been run with these settings (its
// run.json is want, but for the model's directory), and hold exactly the whole units its seal
// lists. The report of their answers, put in run order, is written to Out while Out is locked;
// it is the report of the same run unsharded.
func (r *varianceRunner) mergeVarianceShards(want VarianceManifest) (*VarianceReport, error) {
	lock, err := runstore.Lock(r.o.Out)
	if err != nil {
		return nil, fmt.Errorf("bench: variance: report of the shards in %s: %w", r.o.Out, err)
	}
	defer lock.Close()
	states, _, err := runstore.MergeShards(r.o.Out)
	if err != nil {
		return nil, fmt.Errorf("bench: variance: %w", err)
	}
	if states[0].Seal.TotalUnits != len(r.units) {
		return nil, fmt.Errorf("bench: variance: the shards in %s hold a run of %d units; these settings make %d", r.o.Out, states[0].Seal.TotalUnits, len(r.units))
	}
	byUnit := map[string][]VarianceAnswer{}
	for _, st := range states {
		name := st.Shard.DirName()
		have, err := runstore.ReadSettings[VarianceManifest](st.Dir, VarianceManifestFile)
		if err != nil {
			return nil, fmt.Errorf("bench: variance: shard %s: %w", name, err)
		}
		have.ModelDir = want.ModelDir
		if err := runstore.Diff(have, want); err != nil {
			return nil, fmt.Errorf("bench: variance: shard %s ran with other settings than this command: %s %w", name, VarianceManifestFile, err)
		}
		stored := map[string][]VarianceAnswer{}
		_, err = runstore.ScanRecords(filepath.Join(st.Dir, VarianceAnswersFile), func(a VarianceAnswer, _ int, _ runstore.Ref) error {
			stored[unitKey(a)] = append(stored[unitKey(a)], a)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("bench: variance: shard %s: %w", name, err)
		}
		if err := sameVarianceUnits(stored, st.Seal.Units, len(r.o.Seeds)); err != nil {
			return nil, fmt.Errorf("bench: variance: shard %s: %s and its %s: %w", name, VarianceAnswersFile, runstore.SealFileName, err)
		}
		maps.Copy(byUnit, stored)
	}
	var answers []VarianceAnswer
	for _, u := range r.units {
		a, ok := byUnit[u.key()]
		if !ok {
			return nil, fmt.Errorf("bench: variance: no shard in %s holds unit %s of these settings", r.o.Out, u.key())
		}
		answers = append(answers, a...)
	}
	rep, err := BuildVarianceReport(r.m.Name, want, answers, r.skipped, r.o.Now())
	if err != nil {
		return nil, err
	}
	if err := WriteVarianceReport(r.o.Out, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// sameVarianceUnits names a unit that stored (answers.jsonl, by unit) and sealed (a seal's
// units) do not both hold, or a stored unit without exactly one answer per seed.
func sameVarianceUnits(stored map[string][]VarianceAnswer, sealed []string, seeds int) error {
	in := map[string]bool{}
	for _, u := range sealed {
		if _, ok := stored[u]; !ok {
			return fmt.Errorf("unit %s is sealed but not stored", u)
		}
		in[u] = true
	}
	for _, u := range slices.Sorted(maps.Keys(stored)) {
		if !in[u] {
			return fmt.Errorf("unit %s is stored but not sealed", u)
		}
		if n := len(stored[u]); n != seeds {
			return fmt.Errorf("unit %s has %d answers, expected one per seed (%d)", u, n, seeds)
		}
	}
	return nil
}
