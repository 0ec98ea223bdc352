package probe

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"tether/weights"
)

// axisFixtureRun is a tiny judged run directory committed with the tests (4 roles, 2 layers,
// hidden 8, two rollouts with an empty response); axisFixtureTokens holds, for every non-empty
// rollout, 3 token activations whose mean is its stored span mean; expected.json beside them is
// check_axis.py's recomputation with the reference project's own functions.
const (
	axisFixtureRun    = "testdata/axis/run"
	axisFixtureTokens = "testdata/axis/tokens.safetensors"
)

// TestWriteAxisFixture regenerates the fixture run when TETHER_WRITE_AXIS_FIXTURE=1; afterwards
// run `python3 probe/testdata/axis/check_axis.py probe/testdata/axis/run >
// probe/testdata/axis/expected.json`.
func TestWriteAxisFixture(t *testing.T) {
	if os.Getenv("TETHER_WRITE_AXIS_FIXTURE") != "1" {
		t.Skip("set TETHER_WRITE_AXIS_FIXTURE=1 to regenerate " + axisFixtureRun)
	}
	const L, H, prompts, questions, batch = 2, 8, 2, 3, 8
	rng := rand.New(rand.NewPCG(2026, 5))
	dir := axisFixtureRun
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m := Manifest{Format: RunFormat, Model: "fixture/tiny", ModelDir: "/nonexistent/tiny", Architecture: "LlamaForCausalLM",
		Layers: L, HiddenSize: H, ConfigSHA256: "0000000000000000000000000000000000000000000000000000000000000000",
		Dataset:  DatasetInfo{Roles: 4, PromptsPerRole: prompts, Questions: questions, Source: "builtin"},
		Settings: RunSettings{Samples: 1, MaxTokens: 16, Temperature: RolloutTemperature, TopP: RolloutTopP, Seed: 1, Judge: JudgeSelf, Batch: batch},
		Created:  "2026-11-23T21:00:00Z"}
	js, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, ManifestFileName), js, 0o644); err != nil {
		t.Fatal(err)
	}
	roles := []string{DefaultRoleName, "nurse", "pirate", "sage", "villain"}
	var ros []Rollout
	var means [][][]float32
	for ri, role := range roles {
		centre := make([]float64, H)
		for j := range centre {
			centre[j] = rng.NormFloat64() * 2
		}
		for p := 0; p < prompts; p++ {
			for q := 0; q < questions; q++ {
				id := RolloutID(role, p, q, 0)
				r := Rollout{ID: id, Role: role, PromptIndex: p, QuestionID: q, Seed: RolloutSeed(1, id),
					System: fmt.Sprintf("prompt %d of %s", p, role), Question: fmt.Sprintf("question %d", q),
					Response: "...", ResponseIDs: []int{5, 6}, ResponseTokens: 2}
				if ri > 0 {
					s := []int{3, 3, 3, 2, 1, 0}[rng.IntN(6)]
					r.Score = &s
				}
				// Two rollouts with an empty response: zero activations, as Capture gives them.
				empty := (ri == 0 && p == 1 && q == 0) || (ri == 1 && p == 1 && q == 2)
				if empty {
					r.Response, r.ResponseIDs, r.ResponseTokens = "", []int{}, 0
				}
				a := make([][]float32, L)
				for l := range a {
					a[l] = make([]float32, H)
					for j := range a[l] {
						if !empty {
							a[l][j] = float32(float64(l+1)*centre[j] + rng.NormFloat64())
						}
					}
				}
				ros = append(ros, r)
				means = append(means, a)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, RolloutsFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for lo, n := 0, 0; lo < len(ros); lo, n = lo+batch, n+1 {
		hi := min(lo+batch, len(ros))
		var ids []string
		var counts []int
		for i := lo; i < hi; i++ {
			ros[i].Shard, ros[i].Row = ShardName(n), i-lo
			ids = append(ids, ros[i].ID)
			counts = append(counts, ros[i].ResponseTokens)
		}
		if err := writeShard(dir, ShardName(n), ids, means[lo:hi], counts, L, H); err != nil {
			t.Fatal(err)
		}
		for i := lo; i < hi; i++ {
			line, _ := json.Marshal(ros[i])
			fmt.Fprintf(f, "%s\n", line)
		}
	}
}

// TestWriteAxisTokensFixture writes axisFixtureTokens from the fixture run when
// TETHER_WRITE_AXIS_FIXTURE=1: per non-empty rollout, tokens mean+d1, mean+d2, mean-(d1+d2).
func TestWriteAxisTokensFixture(t *testing.T) {
	if os.Getenv("TETHER_WRITE_AXIS_FIXTURE") != "1" {
		t.Skip("set TETHER_WRITE_AXIS_FIXTURE=1 to regenerate " + axisFixtureTokens)
	}
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	m := run.Manifest()
	rng := rand.New(rand.NewPCG(2026, 11))
	var ids []string
	var flat []float32
	for _, r := range run.Rollouts() {
		if r.ResponseTokens == 0 {
			continue
		}
		acts, err := run.MeanActivations([]string{r.ID})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		toks := make([][][]float32, 3) // [token][layer][hidden]
		for k := range toks {
			toks[k] = make([][]float32, m.Layers)
		}
		for l, mean := range acts[0] {
			for k := range toks {
				toks[k][l] = make([]float32, m.HiddenSize)
			}
			for j, v := range mean {
				d1, d2 := 1.5*rng.NormFloat64(), 1.5*rng.NormFloat64()
				toks[0][l][j] = float32(float64(v) + d1)
				toks[1][l][j] = float32(float64(v) + d2)
				toks[2][l][j] = float32(float64(v) - d1 - d2)
			}
		}
		for _, tok := range toks {
			for _, row := range tok {
				flat = append(flat, row...)
			}
		}
	}
	tensor, err := weights.NewF32Tensor("tokens", []int{len(ids), 3, m.Layers, m.HiddenSize}, flat)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(ids)
	if err := weights.WriteFile(axisFixtureTokens, []weights.Tensor{tensor}, map[string]string{"ids": string(js)}); err != nil {
		t.Fatal(err)
	}
}

// fileTokens is the TokenProjector of axisFixtureTokens.
type fileTokens struct {
	byID map[string][][][]float32 // [token][layer][hidden]
}

func readFixtureTokens(t *testing.T) *fileTokens {
	t.Helper()
	f, err := weights.OpenFile(axisFixtureTokens)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	if err := json.Unmarshal([]byte(f.Metadata()["ids"]), &ids); err != nil {
		t.Fatal(err)
	}
	data, shape, err := f.Float32("tokens")
	if err != nil {
		t.Fatal(err)
	}
	n, L, H := shape[1], shape[2], shape[3]
	ft := &fileTokens{byID: map[string][][][]float32{}}
	for i, id := range ids {
		toks := make([][][]float32, n)
		for k := range toks {
			toks[k] = make([][]float32, L)
			for l := range toks[k] {
				off := ((i*n+k)*L + l) * H
				toks[k][l] = append([]float32(nil), data[off:off+H]...)
			}
		}
		ft.byID[id] = toks
	}
	return ft
}

func (f *fileTokens) ProjectTokens(ids []string, units [][]float64, fn func(int, [][]float64) error) error {
	for i, id := range ids {
		toks, ok := f.byID[id]
		if !ok {
			return fmt.Errorf("no tokens for %q", id)
		}
		proj := make([][]float64, len(units))
		for l := range units {
			for _, tok := range toks {
				proj[l] = append(proj[l], dot3264(tok[l], units[l]))
			}
		}
		if err := fn(i, proj); err != nil {
			return err
		}
	}
	return nil
}

// refCase is one build of check_axis.py's output: the reference's functions on the fixture.
type refCase struct {
	Name            string         `json:"name"`
	MinScore        int            `json:"min_score"`
	MinRoleRollouts int            `json:"min_role_rollouts"`
	CalibrateOn     string         `json:"calibrate_on"`
	CalibrateUnit   string         `json:"calibrate_unit"`
	Roles           []string       `json:"roles"`
	Dropped         map[string]int `json:"dropped"`
	Percentiles     []float64      `json:"percentiles"`
	Axis            [][]float64    `json:"axis"`
	DefaultMean     [][]float64    `json:"default_mean"`
	RoleMeans       [][][]float64  `json:"role_means"`
	CalibrationSet  int            `json:"calibration_rollouts"`
	Tau             [][]float64    `json:"tau"`
	// CapFraction[p][l]: fraction of the calibration tokens the reference's _apply_cap acts on.
	CapFraction [][]float64 `json:"cap_token_fraction"`
	// SklearnPC1 is PC1 with scikit-learn's sign; PC1Flipped whether tether flips it.
	SklearnPC1 [][]float64 `json:"sklearn_pc1"`
	PC1Flipped []bool      `json:"pc1_flipped"`
	PC1Cosine  []float64   `json:"pc1_cosine"`
	Explained  [][]float64 `json:"variance_explained"`
}

// TestBuildRunAxisMatchesReference builds the fixture's axis with each case's options and
// compares with the reference project's functions recomputed by check_axis.py.
func TestBuildRunAxisMatchesReference(t *testing.T) {
	data, err := os.ReadFile("testdata/axis/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Cases []refCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Cases) < 5 {
		t.Fatalf("expected.json has %d cases; regenerate it with check_axis.py", len(want.Cases))
	}
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	toks := readFixtureTokens(t)
	for _, tc := range want.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			b, err := BuildRunAxis(run, RunAxisOptions{MinScore: tc.MinScore, AxisOptions: AxisOptions{
				Percentiles: tc.Percentiles, ChunkBytes: 5 * 2 * 8 * 4, MinRoleRollouts: tc.MinRoleRollouts,
				CalibrateOn: tc.CalibrateOn, CalibrateUnit: tc.CalibrateUnit, Tokens: toks, TokenFractions: true}})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstReference(t, b, tc)
			a, err := b.AxisFile(run.Manifest(), tc.MinScore)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Validate(); err != nil {
				t.Fatal(err)
			}
			if a.Extra[CalibrateOnKey] != tc.CalibrateOn || a.Extra[CalibrateUnitKey] != tc.CalibrateUnit {
				t.Errorf("metadata calibration %q/%q, want %q/%q", a.Extra[CalibrateOnKey], a.Extra[CalibrateUnitKey], tc.CalibrateOn, tc.CalibrateUnit)
			}
		})
	}
}

func checkAgainstReference(t *testing.T, b *AxisBuild, want refCase) {
	t.Helper()
	if fmt.Sprint(b.RoleNames) != fmt.Sprint(want.Roles) {
		t.Fatalf("roles %v, reference %v", b.RoleNames, want.Roles)
	}
	dropped := map[string]int{}
	for _, d := range b.Dropped {
		dropped[d.Role] = d.Kept
	}
	if fmt.Sprint(dropped) != fmt.Sprint(want.Dropped) {
		t.Errorf("dropped %v, reference %v", dropped, want.Dropped)
	}
	if b.CalibrationSet != want.CalibrationSet {
		t.Errorf("calibrated on %d rollouts, reference %d", b.CalibrationSet, want.CalibrationSet)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: %v, reference %v", what, got, want)
		}
	}
	for l := 0; l < b.Layers; l++ {
		for j := 0; j < b.Hidden; j++ {
			near(fmt.Sprintf("axis[%d][%d]", l, j), float64(b.Axis[l][j]), want.Axis[l][j])
			near(fmt.Sprintf("default_mean[%d][%d]", l, j), float64(b.DefaultMean[l][j]), want.DefaultMean[l][j])
			for r := range b.RoleNames {
				near(fmt.Sprintf("role_means[%d][%d][%d]", r, l, j), float64(b.RoleMeans[r][l][j]), want.RoleMeans[r][l][j])
			}
			// tether's PC1 is scikit-learn's, negated where tether records a flip.
			sk := want.SklearnPC1[l][j]
			if b.PCA[l].PC1Flipped {
				sk = -sk
			}
			near(fmt.Sprintf("pc1[%d][%d]", l, j), b.PCA[l].Components[0][j], sk)
		}
		if b.PCA[l].PC1Flipped != want.PC1Flipped[l] {
			t.Errorf("layer %d: PC1 flipped %v, reference orientation says %v", l, b.PCA[l].PC1Flipped, want.PC1Flipped[l])
		}
		near(fmt.Sprintf("pc1_cosine[%d]", l), b.PCA[l].PC1Cosine, want.PC1Cosine[l])
		for c, e := range want.Explained[l] {
			near(fmt.Sprintf("explained[%d][%d]", l, c), b.PCA[l].Explained[c], e)
		}
		for i := range want.Percentiles {
			near(fmt.Sprintf("tau[%d][%d]", i, l), float64(b.Tau[i][l]), want.Tau[i][l])
			// Fractions are counts over the calibration tokens: exact unless a projection sits
			// within float32 rounding of tau.
			if got := b.CapTokenFraction[i][l]; math.Abs(got-want.CapFraction[i][l]) > 1.5/float64(b.CalibrationTokens) {
				t.Errorf("cap fraction p%g layer %d: %v, reference %v", want.Percentiles[i], l, got, want.CapFraction[i][l])
			}
		}
	}
}
