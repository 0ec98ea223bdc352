package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"tether/axis"
	"tether/runstore"
)

// VarianceManifest is OUT/run.json of a persona variance run: a resume with another model or
// other settings is refused.
type VarianceManifest struct {
	Format      string           `json:"format"`
	Model       string           `json:"model"`
	ModelDir    string           `json:"model_dir"`
	ModelConfig string           `json:"model_config_sha256"`
	Settings    VarianceSettings `json:"settings"`
}

// manifest describes the run.
func (r *varianceRunner) manifest() (VarianceManifest, error) {
	cfgSum, err := axis.ConfigSHA256(r.m.Dir)
	if err != nil {
		return VarianceManifest{}, fmt.Errorf("bench: variance: %w", err)
	}
	o := r.o
	s := VarianceSettings{
		Seeds: o.Seeds, Temperature: o.Temperature, TopP: o.TopP, MaxTokens: o.MaxTokens, Layer: o.Layer,
		Forms: o.Forms, PersonasSource: o.PersonasSource, Bootstrap: o.Bootstrap, Backend: o.Backend, Axis: o.AxisPath, Judge: o.JudgeName,
	}
	// The personas' and items' text: a change of any anchor or question is a different run.
	h := sha256.New()
	for _, p := range o.Personas {
		s.Personas = append(s.Personas, p.ID)
		data, err := json.Marshal(p)
		if err != nil {
			return VarianceManifest{}, fmt.Errorf("bench: variance: %w", err)
		}
		h.Write(data)
	}
	for _, it := range o.Questionnaire.Items {
		s.Items = append(s.Items, it.ID)
		fmt.Fprintf(h, "\x00%s\x00%s", it.ID, o.Questionnaire.Question(it))
	}
	s.PersonasSHA256 = hex.EncodeToString(h.Sum(nil))
	if o.AxisPath != "" {
		if s.AxisSHA256, err = runstore.FileSHA256(o.AxisPath); err != nil {
			return VarianceManifest{}, fmt.Errorf("bench: variance: axis: %w", err)
		}
	}
	return VarianceManifest{Format: VarianceReportFormat, Model: r.m.Name, ModelDir: r.m.Dir, ModelConfig: cfgSum, Settings: s}, nil
}

// varianceStore is answers.jsonl, held open and locked (runstore).
type varianceStore struct {
	dir   string
	st    *runstore.Store
	log   *runstore.Log
	recs  []VarianceAnswer
	units map[string]bool
	seeds int
}

// openVarianceStore opens (or resumes) the run directory: whole units are kept, a torn or
// partial unit at the end is cut off.
func openVarianceStore(dir string, want VarianceManifest, seeds int) (*varianceStore, error) {
	st, err := runstore.Open(dir, VarianceManifestFile, want, runstore.Options[VarianceManifest]{
		Check: func(have, want VarianceManifest) error {
			if err := runstore.Diff(have, want); err != nil {
				return fmt.Errorf("cannot resume %s: %s %w (use a new --out directory)", dir, VarianceManifestFile, err)
			}
			return nil
		},
		AllowOtherFiles: true,
	})
	if err != nil {
		return nil, fmt.Errorf("bench: variance: %w", err)
	}
	vs := &varianceStore{dir: dir, st: st, units: map[string]bool{}, seeds: seeds}
	var pending []VarianceAnswer
	var end int64
	_, err = runstore.ScanRecords(filepath.Join(dir, VarianceAnswersFile), func(a VarianceAnswer, line int, ref runstore.Ref) error {
		if len(pending) > 0 && unitKey(pending[0]) != unitKey(a) {
			pending = nil // a unit cut short (cannot happen with whole-unit writes; kept safe)
		}
		pending = append(pending, a)
		if len(pending) == seeds {
			vs.recs = append(vs.recs, pending...)
			vs.units[unitKey(a)] = true
			end = ref.End()
			pending = nil
		}
		return nil
	})
	if err == nil {
		vs.log, err = st.OpenLog(VarianceAnswersFile, end)
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("bench: variance: %w", err)
	}
	return vs, nil
}

func unitKey(a VarianceAnswer) string { return a.Persona + "/" + a.Anchor + "/" + a.Item }

func (vs *varianceStore) has(key string) bool { return vs.units[key] }

// append writes one unit's answers in one write and keeps them as read back from the file, so
// a resumed run reports exactly the same numbers.
func (vs *varianceStore) append(key string, answers []VarianceAnswer) error {
	recs := make([]any, len(answers))
	for i := range answers {
		recs[i] = answers[i]
	}
	refs, err := vs.log.Append(recs...)
	if err != nil {
		return fmt.Errorf("bench: variance: %w", err)
	}
	for _, ref := range refs {
		a, err := runstore.ReadRecord[VarianceAnswer](vs.log.Path(), ref)
		if err != nil {
			return fmt.Errorf("bench: variance: %w", err)
		}
		vs.recs = append(vs.recs, a)
	}
	vs.units[key] = true
	return nil
}

func (vs *varianceStore) answers() []VarianceAnswer { return vs.recs }

func (vs *varianceStore) close() { vs.st.Close() }

// openJudgements opens judgements.jsonl for appending and reads the groups judged before (a
// torn last line is cut off).
func (vs *varianceStore) openJudgements() (*runstore.Log, []VarianceJudged, error) {
	var done []VarianceJudged
	var end int64
	_, err := runstore.ScanRecords(filepath.Join(vs.dir, VarianceJudgementsFile), func(g VarianceJudged, line int, ref runstore.Ref) error {
		done = append(done, g)
		end = ref.End()
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: variance: %w", err)
	}
	log, err := vs.st.OpenLog(VarianceJudgementsFile, end)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: variance: %w", err)
	}
	return log, done, nil
}

// appendJudged writes one group's judgements and returns them as read back from the file.
func appendJudged(log *runstore.Log, g VarianceJudged) (VarianceJudged, error) {
	refs, err := log.Append(g)
	if err != nil {
		return VarianceJudged{}, fmt.Errorf("bench: variance: %w", err)
	}
	back, err := runstore.ReadRecord[VarianceJudged](log.Path(), refs[0])
	if err != nil {
		return VarianceJudged{}, fmt.Errorf("bench: variance: %w", err)
	}
	return back, nil
}

// VarianceUnitsDone is the number of whole units (every seed's answer) in the variance run
// directory dir (its answers.jsonl; the seed count from its run.json); a directory without a
// run.json has none.
func VarianceUnitsDone(dir string) (int, error) {
	man, err := runstore.ReadSettings[VarianceManifest](dir, VarianceManifestFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("bench: variance: %w", err)
	}
	seeds := len(man.Settings.Seeds)
	if seeds == 0 {
		return 0, fmt.Errorf("bench: variance: %s: settings.seeds is empty (expected the run's seeds)", filepath.Join(dir, VarianceManifestFile))
	}
	n, run := 0, 0
	prev := ""
	_, err = runstore.ScanRecords(filepath.Join(dir, VarianceAnswersFile), func(a VarianceAnswer, _ int, _ runstore.Ref) error {
		if k := unitKey(a); k != prev {
			prev, run = k, 0
		}
		if run++; run == seeds {
			n++
			prev = ""
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("bench: variance: %w", err)
	}
	return n, nil
}
