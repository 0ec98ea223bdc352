package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"tether/axis"
	"tether/runstore"
)

// Files of a drift run directory.
const (
	DriftTurnsFile    = "turns.jsonl"
	DriftManifestFile = "run.json"
)

// DriftManifest is OUT/run.json: what a drift run is, so that a resume with a
// different model, axis or settings is refused.
type DriftManifest struct {
	Format       string         `json:"format"`
	Model        string         `json:"model"`
	ModelDir     string         `json:"model_dir"`
	ModelConfig  string         `json:"model_config_sha256"`
	Axis         string         `json:"axis"`
	AxisSHA256   string         `json:"axis_sha256"`
	AxisModel    string         `json:"axis_model"`
	Settings     DriftSettings  `json:"settings"`
	Scenarios    []ScenarioInfo `json:"scenarios"`
	ScriptSHA256 string         `json:"script_sha256"` // of every scripted user turn
	Perturbation string         `json:"perturbation,omitempty"`
}

// manifest describes the run.
func (r *driftRunner) manifest() (DriftManifest, error) {
	cfgSum, err := axis.ConfigSHA256(r.m.Dir)
	if err != nil {
		return DriftManifest{}, fmt.Errorf("bench: drift: %w", err)
	}
	axisSum := ""
	if r.opts.AxisPath != "" {
		if axisSum, err = runstore.FileSHA256(r.opts.AxisPath); err != nil {
			return DriftManifest{}, fmt.Errorf("bench: drift: axis: %w", err)
		}
	}
	h := sha256.New()
	var infos []ScenarioInfo
	for _, s := range r.scripts {
		infos = append(infos, s.info)
		for _, u := range s.users {
			fmt.Fprintf(h, "%s\x00%s\x00", s.info.ID, u)
		}
	}
	return DriftManifest{
		Format: DriftReportFormat, Model: r.m.Name, ModelDir: r.m.Dir, ModelConfig: cfgSum,
		Axis: r.opts.AxisPath, AxisSHA256: axisSum, AxisModel: r.opts.Axis.Model,
		Settings: r.settings(), Scenarios: infos, ScriptSHA256: hex.EncodeToString(h.Sum(nil)),
		Perturbation: r.opts.PerturbName,
	}, nil
}

// driftStore is the append-only record of finished conversations: turns.jsonl in the run
// directory, which it holds open (and locked) for writing.
type driftStore struct {
	st    *runstore.Store
	log   *runstore.Log
	recs  []TurnRecord
	group map[string]int // scenario\x00arm -> conversations stored
}

// openDriftStore opens the run directory for writing (runstore.Open): it writes the manifest of
// a new run, or checks an existing one's against want, and loads the finished conversations. A
// trailing partial line (a write cut by a kill) and conversations of an unfinished group are
// cut off the file. seedsOf is the number of conversations of a group (scenario, arm) the run
// holds.
func openDriftStore(dir string, want DriftManifest, seedsOf func(scenario, arm string) int) (*driftStore, error) {
	st, err := runstore.Open(dir, DriftManifestFile, want, runstore.Options[DriftManifest]{
		Check: func(have, want DriftManifest) error {
			if err := runstore.Diff(have, want); err != nil {
				return fmt.Errorf("cannot resume %s: %s %w (use a new --out directory)", dir, DriftManifestFile, err)
			}
			return nil
		},
		AllowOtherFiles: true,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: drift: %w", err)
	}
	ds := &driftStore{st: st, group: map[string]int{}}
	keep, err := ds.load(filepath.Join(dir, DriftTurnsFile), want, seedsOf)
	if err == nil {
		ds.log, err = st.OpenLog(DriftTurnsFile, keep)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bench: drift: %w", err)
	}
	return ds, nil
}

// load reads turns.jsonl, keeping whole groups only; it returns the byte length of the lines
// of those groups.
func (ds *driftStore) load(path string, m DriftManifest, seedsOf func(scenario, arm string) int) (int64, error) {
	turns := map[string]int{}
	for _, s := range m.Scenarios {
		turns[s.ID] = s.Turns
	}
	var (
		keep    []TurnRecord
		end     int64
		pending []TurnRecord
	)
	_, err := runstore.ScanRecords(path, func(rec TurnRecord, line int, ref runstore.Ref) error {
		want, ok := turns[rec.Scenario]
		if !ok {
			return fmt.Errorf("%s: line %d: scenario %q is not part of this run", path, line, rec.Scenario)
		}
		pending = append(pending, rec)
		if seeds := seedsOf(rec.Scenario, rec.Arm); len(pending) == want*seeds {
			keep = append(keep, pending...)
			end = ref.End()
			ds.group[rec.Scenario+"\x00"+rec.Arm] = seeds
			pending = nil
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	ds.recs = keep
	return end, nil
}

func (ds *driftStore) hasGroup(scenario, arm string, seeds int) bool {
	return ds.group[scenario+"\x00"+arm] == seeds
}

func (ds *driftStore) doneConversations() int {
	n := 0
	for _, c := range ds.group {
		n += c
	}
	return n
}

// appendGroup appends a finished group's turns in one write and syncs
// (runstore.Log.Append). The records kept in memory are the ones read back
// from the file, so a resumed run computes its report from exactly the same
// numbers.
func (ds *driftStore) appendGroup(convs []*conversationState) error {
	var recs []any
	for _, c := range convs {
		for _, rec := range c.records {
			recs = append(recs, rec)
		}
	}
	refs, err := ds.log.Append(recs...)
	if err != nil {
		return fmt.Errorf("bench: drift: %w", err)
	}
	for _, ref := range refs {
		rec, err := runstore.ReadRecord[TurnRecord](ds.log.Path(), ref)
		if err != nil {
			return fmt.Errorf("bench: drift: %w", err)
		}
		ds.recs = append(ds.recs, rec)
		ds.group[rec.Scenario+"\x00"+rec.Arm] = len(convs)
	}
	return nil
}

func (ds *driftStore) records() []TurnRecord { return ds.recs }

// close closes turns.jsonl and releases the run directory's lock.
func (ds *driftStore) close() { ds.st.Close() }
