package probe

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// axisFixtureRun is a tiny judged run directory committed with the tests (4 roles, 2 layers,
// hidden 8, two rollouts with an empty response); expected.json beside it is check_axis.py's
// independent numpy recomputation.
const axisFixtureRun = "testdata/axis/run"

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

// numpyAxis is check_axis.py's output.
type numpyAxis struct {
	Roles       []string      `json:"roles"`
	Percentiles []float64     `json:"percentiles"`
	Axis        [][]float64   `json:"axis"`
	DefaultMean [][]float64   `json:"default_mean"`
	RoleMeans   [][][]float64 `json:"role_means"`
	Tau         [][]float64   `json:"tau"`
	PC1         [][]float64   `json:"pc1"`
	PC1Cosine   []float64     `json:"pc1_cosine"`
	Explained   [][]float64   `json:"variance_explained"`
}

func TestBuildRunAxisMatchesNumpy(t *testing.T) {
	data, err := os.ReadFile("testdata/axis/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want numpyAxis
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	run, err := OpenRun(axisFixtureRun)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BuildRunAxis(run, KeepScore, AxisOptions{Percentiles: want.Percentiles, ChunkBytes: 5 * 2 * 8 * 4})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(b.RoleNames) != fmt.Sprint(want.Roles) {
		t.Fatalf("roles %v, numpy %v", b.RoleNames, want.Roles)
	}
	near := func(what string, got float32, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: %v, numpy %v", what, got, want)
		}
	}
	for l := 0; l < b.Layers; l++ {
		for j := 0; j < b.Hidden; j++ {
			near(fmt.Sprintf("axis[%d][%d]", l, j), b.Axis[l][j], want.Axis[l][j])
			near(fmt.Sprintf("default_mean[%d][%d]", l, j), b.DefaultMean[l][j], want.DefaultMean[l][j])
			near(fmt.Sprintf("pc1[%d][%d]", l, j), float32(b.PCA[l].Components[0][j]), want.PC1[l][j])
			for r := range b.RoleNames {
				near(fmt.Sprintf("role_means[%d][%d][%d]", r, l, j), b.RoleMeans[r][l][j], want.RoleMeans[r][l][j])
			}
		}
		for i := range want.Percentiles {
			near(fmt.Sprintf("tau[%d][%d]", i, l), b.Tau[i][l], want.Tau[i][l])
		}
		near(fmt.Sprintf("pc1_cosine[%d]", l), float32(b.PCA[l].PC1Cosine), want.PC1Cosine[l])
		for c, e := range want.Explained[l] {
			near(fmt.Sprintf("explained[%d][%d]", l, c), float32(b.PCA[l].Explained[c]), e)
		}
	}
	a, err := b.AxisFile(run.Manifest(), KeepScore)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
}
