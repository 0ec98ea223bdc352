package probe

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyFixtureRun copies the fixture run into a temporary directory, passing run.json through
// editManifest and each rollouts.jsonl line through editLine (nil drops the line).
func copyFixtureRun(t *testing.T, editManifest func(*Manifest), editLine func(*Rollout) *Rollout) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ActivationsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	shards, err := filepath.Glob(filepath.Join(axisFixtureRun, ActivationsDir, "*.safetensors"))
	if err != nil || len(shards) == 0 {
		t.Fatalf("fixture shards: %v %v", shards, err)
	}
	for _, s := range shards {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ActivationsDir, filepath.Base(s)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(axisFixtureRun, ManifestFileName))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if editManifest != nil {
		editManifest(&m)
	}
	data, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, ManifestFileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := os.ReadFile(filepath.Join(axisFixtureRun, RolloutsFileName))
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var r Rollout
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		rp := &r
		if editLine != nil {
			rp = editLine(rp)
		}
		if rp == nil {
			continue
		}
		b, _ := json.Marshal(rp)
		out = append(append(out, b...), '\n')
	}
	if err := os.WriteFile(filepath.Join(dir, RolloutsFileName), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildRunAxisBadRuns(t *testing.T) {
	low := 1
	cases := []struct {
		name     string
		manifest func(*Manifest)
		line     func(*Rollout) *Rollout
		minScore int
		want     string
	}{
		{"activations of another model (hidden size)", func(m *Manifest) { m.HiddenSize = 16 }, nil, 3, "shape"},
		{"activations of another model (layers)", func(m *Manifest) { m.Layers = 3 }, nil, 3, "shape"},
		{"no default rollouts", nil, func(r *Rollout) *Rollout {
			if r.Role == DefaultRoleName {
				return nil
			}
			return r
		}, 3, `no "default" rollouts`},
		{"no role rollout scored 3", nil, func(r *Rollout) *Rollout {
			if r.Role != DefaultRoleName {
				r.Score = &low
			}
			return r
		}, 3, "no role has 1 or more kept rollouts"},
		{"only default rollouts", nil, func(r *Rollout) *Rollout {
			if r.Role != DefaultRoleName {
				return nil
			}
			return r
		}, 3, "no role has 1 or more kept rollouts"},
		{"minimum score out of range", nil, nil, 4, "outside 0..3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run, err := OpenRun(copyFixtureRun(t, tc.manifest, tc.line))
			if err != nil {
				t.Fatal(err)
			}
			_, err = BuildRunAxis(run, RunAxisOptions{MinScore: tc.minScore, AxisOptions: rolloutAll})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestBuildRunAxisKeepRules(t *testing.T) {
	// The fixture is judged: with min score 3 a role keeps only its score-3 rollouts; with 0 it
	// keeps every scored one; without a judge every rollout counts whatever its score. Rollouts
	// with an empty response never count.
	count := func(run *Run, minScore int) map[string]int {
		want := map[string]int{}
		judged := run.Manifest().Settings.Judged()
		for _, r := range run.Rollouts() {
			if r.ResponseTokens > 0 && r.Role != DefaultRoleName && (!judged || (r.Score != nil && *r.Score >= minScore)) {
				want[r.Role]++
			}
		}
		return want
	}
	for _, tc := range []struct {
		name     string
		judge    string
		minScore int
	}{{"judged, min 3", JudgeSelf, 3}, {"judged, min 2", JudgeSelf, 2}, {"judged, min 0", JudgeSelf, 0}, {"no judge", JudgeNone, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			run, err := OpenRun(copyFixtureRun(t, func(m *Manifest) { m.Settings.Judge = tc.judge }, nil))
			if err != nil {
				t.Fatal(err)
			}
			b, err := BuildRunAxis(run, RunAxisOptions{MinScore: tc.minScore, AxisOptions: rolloutAll})
			if err != nil {
				t.Fatal(err)
			}
			want := count(run, tc.minScore)
			for i, r := range b.RoleNames {
				if b.RoleCounts[i] != want[r] {
					t.Errorf("role %s: %d kept, want %d", r, b.RoleCounts[i], want[r])
				}
			}
			// The fixture plants one empty response among the 6 default rollouts and one among
			// the roles' 24: both are left out of the means and of the calibration.
			if b.DefaultCount != 5 || b.CalibrationSet != len(run.Rollouts())-2 {
				t.Errorf("default %d, calibration over %d; want 5 and %d", b.DefaultCount, b.CalibrationSet, len(run.Rollouts())-2)
			}
		})
	}
}
