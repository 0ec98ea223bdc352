package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/internal/testmodels"
	"tether/runstore"
)

// reportJSONWithoutCreated is report.json with its creation time left out.
func reportJSONWithoutCreated(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"created"`)) {
			out = append(out, line)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// TestPersonaVarianceSharded: the stories260K run split over 2 and over 3 shards (run one after
// another, each sealed) merges to exactly the report of the same run unsharded, report.json and
// report.md alike; each shard runs its share only (units i mod N), and the answers of the
// shards together are the unsharded run's answers.
func TestPersonaVarianceSharded(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	root := t.TempDir()
	single := filepath.Join(root, "single")
	want, err := RunPersonaVariance(t.Context(), m, storiesVarianceOptions(t, single, 1.0))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{2, 3} {
		out := filepath.Join(root, "sharded", string(rune('0'+n)))
		total := 0
		for i := range n {
			o := storiesVarianceOptions(t, out, 1.0)
			o.Shard = &runstore.Shard{Index: i, Count: n}
			var last, of int
			o.Progress = func(done, all int) { last, of = done, all }
			rep, err := RunPersonaVariance(t.Context(), m, o)
			if err != nil || rep != nil {
				t.Fatalf("%d shards: shard %d: report %v, error %v", n, i, rep, err)
			}
			if last != of {
				t.Errorf("shard %d/%d: progress %d of %d at the end", i, n, last, of)
			}
			total += of
		}
		if total*3 != want.Answers {
			t.Errorf("%d shards ran %d units of 3 seeds; the unsharded run has %d answers", n, total, want.Answers)
		}
		got, err := RunPersonaVariance(t.Context(), m, storiesVarianceOptions(t, out, 1.0))
		if err != nil {
			t.Fatalf("%d shards: merge: %v", n, err)
		}
		if got.Answers != want.Answers {
			t.Errorf("%d shards: merged %d answers, want %d", n, got.Answers, want.Answers)
		}
		if !bytes.Equal(reportJSONWithoutCreated(t, out), reportJSONWithoutCreated(t, single)) {
			t.Errorf("%d shards: report.json differs from the unsharded run's", n)
		}
		if !bytes.Equal(reportMDWithoutCreated(t, out), reportMDWithoutCreated(t, single)) {
			t.Errorf("%d shards: report.md differs from the unsharded run's", n)
		}
	}
}

// TestPersonaVarianceShardRefusals: the report step refuses a missing shard, shards run with
// other settings, and a shard whose answers file changed after it was sealed, naming the shard;
// a judge is refused with shards.
func TestPersonaVarianceShardRefusals(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	root := t.TempDir()
	run := func(out string, i int, edit func(*PersonaVarianceOptions)) {
		o := storiesVarianceOptions(t, out, 1.0)
		o.Seeds = o.Seeds[:2]
		o.Shard = &runstore.Shard{Index: i, Count: 2}
		if edit != nil {
			edit(&o)
		}
		if _, err := RunPersonaVariance(t.Context(), m, o); err != nil {
			t.Fatal(err)
		}
	}
	merge := func(out string) error {
		o := storiesVarianceOptions(t, out, 1.0)
		o.Seeds = o.Seeds[:2]
		_, err := RunPersonaVariance(t.Context(), m, o)
		return err
	}
	missing := filepath.Join(root, "missing")
	run(missing, 0, nil)
	if err := merge(missing); err == nil || !strings.Contains(err.Error(), "shard 1/2 is missing") {
		t.Errorf("missing shard: %v", err)
	}
	// Units done (run status) against the seal's unit list, then with the last answer cut off.
	states, err := runstore.ShardStates(missing)
	if err != nil || states[0].Seal == nil {
		t.Fatalf("shard 0: %v", err)
	}
	sealed := len(states[0].Seal.Units)
	if n, err := VarianceUnitsDone(states[0].Dir); err != nil || n != sealed {
		t.Errorf("units done %d (error %v), the seal lists %d", n, err, sealed)
	}
	answers := filepath.Join(states[0].Dir, VarianceAnswersFile)
	data, err := os.ReadFile(answers)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if err := os.WriteFile(answers, bytes.Join(lines[:len(lines)-1], nil), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := VarianceUnitsDone(states[0].Dir); err != nil || n != sealed-1 {
		t.Errorf("units done with the last answer cut off: %d (error %v), want %d", n, err, sealed-1)
	}
	other := filepath.Join(root, "other")
	run(other, 0, nil)
	run(other, 1, func(o *PersonaVarianceOptions) { o.MaxTokens = 3 })
	if err := merge(other); err == nil || !strings.Contains(err.Error(), "shard-0001-of-0002") || !strings.Contains(err.Error(), "other settings") {
		t.Errorf("shards of other settings: %v", err)
	}
	corrupt := filepath.Join(root, "corrupt")
	run(corrupt, 0, nil)
	run(corrupt, 1, nil)
	path := filepath.Join(corrupt, "shard-0000-of-0002", VarianceAnswersFile)
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte(`"seed":1`), []byte(`"seed":7`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := merge(corrupt); err == nil || !strings.Contains(err.Error(), "shard-0000-of-0002") || !strings.Contains(err.Error(), VarianceAnswersFile) {
		t.Errorf("corrupted answers file: %v", err)
	}
	o := storiesVarianceOptions(t, filepath.Join(root, "judged"), 1.0)
	o.Shard = &runstore.Shard{Index: 0, Count: 2}
	o.Judge = replyJudge("4")
	if _, err := RunPersonaVariance(t.Context(), m, o); err == nil || !strings.Contains(err.Error(), "judge") {
		t.Errorf("judge with a shard: %v", err)
	}
}
