package bench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"

	"tether/probe"
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
	cfgSum, err := probe.ConfigSHA256(r.m.Dir)
	if err != nil {
		return DriftManifest{}, fmt.Errorf("bench: drift: %w", err)
	}
	axisSum := ""
	if r.opts.AxisPath != "" {
		if axisSum, err = fileSHA256(r.opts.AxisPath); err != nil {
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

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// driftStore is the append-only record of finished conversations.
type driftStore struct {
	f     *os.File
	recs  []TurnRecord
	group map[string]int // scenario\x00arm -> conversations stored
}

// openDriftStore creates the run directory's manifest, or checks it against
// an existing one, and loads the finished conversations. A trailing partial
// line (a write cut by a kill) and conversations of an unfinished group are
// cut off the file.
func openDriftStore(dir string, want DriftManifest) (*driftStore, error) {
	mpath := filepath.Join(dir, DriftManifestFile)
	data, err := os.ReadFile(mpath)
	switch {
	case errors.Is(err, os.ErrNotExist):
		b, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("bench: drift: %s: %w", mpath, err)
		}
		if err := writeFileAtomic(mpath, append(b, '\n')); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("bench: drift: %w", err)
	default:
		var have DriftManifest
		if err := json.Unmarshal(data, &have); err != nil {
			return nil, fmt.Errorf("bench: drift: %s: not a drift run manifest: %w", mpath, err)
		}
		if err := sameManifest(have, want); err != nil {
			return nil, fmt.Errorf("bench: drift: cannot resume %s: %w (use a new --out directory)", dir, err)
		}
	}
	tpath := filepath.Join(dir, DriftTurnsFile)
	f, err := os.OpenFile(tpath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("bench: drift: %w", err)
	}
	st := &driftStore{f: f, group: map[string]int{}}
	if err := st.load(tpath, want); err != nil {
		f.Close()
		return nil, err
	}
	return st, nil
}

// sameManifest names the first field where two manifests differ.
func sameManifest(have, want DriftManifest) error {
	hv, wv := reflect.ValueOf(have), reflect.ValueOf(want)
	for i := 0; i < hv.NumField(); i++ {
		name := hv.Type().Field(i).Tag.Get("json")
		a, _ := json.Marshal(hv.Field(i).Interface())
		b, _ := json.Marshal(wv.Field(i).Interface())
		if !bytes.Equal(a, b) {
			return fmt.Errorf("run.json %s is %s, this run has %s", name, clip(string(a)), clip(string(b)))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// load reads turns.jsonl, keeping whole groups only.
func (st *driftStore) load(path string, m DriftManifest) error {
	turns := map[string]int{}
	for _, s := range m.Scenarios {
		turns[s.ID] = s.Turns
	}
	seeds := len(m.Settings.Seeds)
	var (
		keep      []TurnRecord
		keepBytes int64
		pending   []TurnRecord
		pendBytes int64
	)
	rd := bufio.NewReader(st.f)
	line := 0
	for {
		b, err := rd.ReadBytes('\n')
		if len(b) == 0 || (err != nil && !errors.Is(err, io.EOF)) || b[len(b)-1] != '\n' {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("bench: drift: %s: %w", path, err)
			}
			break // end of file, or a partial line cut by a kill
		}
		line++
		var rec TurnRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("bench: drift: %s: line %d: %w", path, line, err)
		}
		want, ok := turns[rec.Scenario]
		if !ok {
			return fmt.Errorf("bench: drift: %s: line %d: scenario %q is not part of this run", path, line, rec.Scenario)
		}
		pending = append(pending, rec)
		pendBytes += int64(len(b))
		if len(pending) == want*seeds {
			keep = append(keep, pending...)
			keepBytes += pendBytes
			st.group[rec.Scenario+"\x00"+rec.Arm] = seeds
			pending, pendBytes = nil, 0
		}
	}
	if err := st.f.Truncate(keepBytes); err != nil {
		return fmt.Errorf("bench: drift: %s: %w", path, err)
	}
	if _, err := st.f.Seek(keepBytes, io.SeekStart); err != nil {
		return fmt.Errorf("bench: drift: %s: %w", path, err)
	}
	st.recs = keep
	return nil
}

func (st *driftStore) hasGroup(scenario, arm string, seeds int) bool {
	return st.group[scenario+"\x00"+arm] == seeds
}

func (st *driftStore) doneConversations() int {
	n := 0
	for _, c := range st.group {
		n += c
	}
	return n
}

// appendGroup writes a finished group's turns in one write and syncs. The
// records kept in memory are the ones read back from their JSON form, so a
// resumed run computes its report from exactly the same numbers.
func (st *driftStore) appendGroup(convs []*conversationState) error {
	var buf bytes.Buffer
	for _, c := range convs {
		for _, rec := range c.records {
			b, err := json.Marshal(rec)
			if err != nil {
				return fmt.Errorf("bench: drift: %s: %w", DriftTurnsFile, err)
			}
			buf.Write(b)
			buf.WriteByte('\n')
		}
	}
	if _, err := st.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("bench: drift: %s: %w", st.f.Name(), err)
	}
	if err := st.f.Sync(); err != nil {
		return fmt.Errorf("bench: drift: %s: %w", st.f.Name(), err)
	}
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var rec TurnRecord
		if err := dec.Decode(&rec); err != nil {
			return fmt.Errorf("bench: drift: %s: %w", DriftTurnsFile, err)
		}
		st.recs = append(st.recs, rec)
		st.group[rec.Scenario+"\x00"+rec.Arm] = len(convs)
	}
	return nil
}

func (st *driftStore) records() []TurnRecord { return st.recs }

func (st *driftStore) close() { st.f.Close() }
