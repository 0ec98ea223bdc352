package probe

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"tether/axis"
	"tether/internal/testmodels"
	"tether/weights"
)

func tinyRunOptions(dir string) RunOptions {
	return RunOptions{Dir: dir, Dataset: tinyDataset(), Samples: 1, MaxTokens: 8, Batch: 3, Seed: 11}
}

// TestRunEndToEnd: a run writes the manifest, one line per planned rollout, and shards whose rows
// equal the mean hidden states of an independent Forward over each stored conversation.
func TestRunEndToEnd(t *testing.T) {
	m := openTiny(t, 3, "")
	dir := filepath.Join(t.TempDir(), "run")
	var progress []RunProgress
	opts := tinyRunOptions(dir)
	opts.Progress = func(p RunProgress) { progress = append(progress, p) }
	sum, err := ExecuteRun(t.Context(), m, opts)
	if err != nil {
		t.Fatal(err)
	}
	plan := PlanRollouts(tinyDataset(), ShortModelName(m.Name), 1, 11)
	if len(plan) != 12 || sum.Total != 12 || sum.Done != 12 || sum.New != 12 || sum.Skipped != 0 {
		t.Fatalf("plan %d, summary %+v", len(plan), sum)
	}
	// Before the first batch: 12 rollouts of at most 8 tokens left; at the end none.
	if first := progress[0]; first != (RunProgress{Total: 12, MaxTokensLeft: 12 * 8}) {
		t.Fatalf("first progress %+v", first)
	}
	if last := progress[len(progress)-1]; last.Done != 12 || last.Total != 12 || last.MaxTokensLeft != 0 {
		t.Fatalf("last progress %+v", last)
	}
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	man := run.Manifest()
	sha, _ := axis.ConfigSHA256(m.Dir)
	if man.Format != RunFormat || man.Layers != 3 || man.HiddenSize != 32 || man.ConfigSHA256 != sha ||
		man.Settings.Temperature != 0.7 || man.Settings.TopP != 0.9 || man.Settings.Judge != JudgeNone ||
		man.Dataset != (DatasetInfo{Roles: 2, PromptsPerRole: 2, Questions: 2, Source: "builtin"}) {
		t.Fatalf("manifest %+v", man)
	}
	rs := run.Rollouts()
	if len(rs) != len(plan) {
		t.Fatalf("%d rollouts, want %d", len(rs), len(plan))
	}
	tokens := 0
	for i, r := range rs {
		s := plan[i]
		if r.ID != s.ID || r.Seed != RolloutSeed(11, r.ID) || r.System != s.System || r.Question != s.Question || r.Score != nil {
			t.Fatalf("rollout %d = %+v, plan %+v", i, r, s)
		}
		if r.ResponseTokens != len(r.ResponseIDs) || r.ResponseTokens > 8 {
			t.Fatalf("rollout %s: %d response tokens, ids %v", r.ID, r.ResponseTokens, r.ResponseIDs)
		}
		if r.Shard != ShardName(i/3) || r.Row != i%3 {
			t.Fatalf("rollout %s in %s row %d", r.ID, r.Shard, r.Row)
		}
		tokens += r.ResponseTokens
	}
	if sum.NewTokens != tokens {
		t.Fatalf("summary new tokens %d, lines hold %d", sum.NewTokens, tokens)
	}
	if rs[2].System != "You are "+ShortModelName(m.Name)+", an AI assistant." {
		t.Fatalf("{model_name} not expanded: %q", rs[2].System)
	}
	ids := []string{rs[7].ID, rs[0].ID, rs[11].ID, rs[4].ID}
	means, err := run.MeanActivations(ids)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPrompter(m)
	byID := map[string]Rollout{}
	for _, r := range rs {
		byID[r.ID] = r
	}
	for k, id := range ids {
		r := byID[id]
		prompt, err := p.Prompt(r.System, r.Question)
		if err != nil {
			t.Fatal(err)
		}
		seq := append(append([]int{}, prompt...), r.ResponseIDs...)
		for l := 0; l < 3; l++ {
			assertClose(t, "stored mean of "+id, k, l, means[k][l], forwardMean(t, m, seq, len(prompt), len(seq), l))
		}
	}
	for _, r := range rs {
		// Max tokens 8 is far from the tiny model's context: a response ends at EOS or at 8.
		if (r.StopReason == "length") != (r.ResponseTokens == 8) || (r.StopReason != "length" && r.StopReason != "eos") {
			t.Errorf("rollout %s: stop reason %q with %d of at most 8 tokens", r.ID, r.StopReason, r.ResponseTokens)
		}
	}
	// The shard is plain safetensors with the documented names.
	f, err := weights.OpenFile(filepath.Join(dir, ShardName(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, shape, err := f.Float32("mean")
	if err != nil || len(shape) != 3 || shape[0] != 3 || shape[1] != 3 || shape[2] != 32 {
		t.Fatalf("mean shape %v, %v", shape, err)
	}
	meta := f.Metadata()
	var shardIDs []string
	if json.Unmarshal([]byte(meta["ids"]), &shardIDs) != nil || len(shardIDs) != 3 || shardIDs[0] != rs[0].ID ||
		meta["layers"] != "3" || meta["hidden_size"] != "32" {
		t.Fatalf("shard metadata %v", meta)
	}
	if _, err := run.MeanActivations([]string{"nobody/p0/q0/s0"}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("unknown id: error %v", err)
	}
}

// TestRunResumeAfterTornWrites simulates crashes in process: a torn last line, a batch with some
// lines missing (its shard already replaced), an orphan shard and no lines at all for the last
// batches. Resuming gives the same lines and activations as the uninterrupted run.
func TestRunResumeAfterTornWrites(t *testing.T) {
	m := openTiny(t, 4, "")
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(ref)); err != nil {
		t.Fatal(err)
	}
	refData, err := os.ReadFile(filepath.Join(ref, RolloutsFileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(refData, []byte("\n"))
	for _, tc := range []struct {
		name string
		keep int  // complete lines kept
		torn bool // half of the next line follows
	}{
		{"nothing written", 0, false},
		{"torn first line", 0, true},
		{"batch boundary", 6, false},
		{"inside a batch", 4, false},
		{"inside a batch, torn", 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.CopyFS(dir, os.DirFS(ref)); err != nil {
				t.Fatal(err)
			}
			partial := bytes.Join(lines[:tc.keep], nil)
			if tc.torn {
				partial = append(partial, lines[tc.keep][:len(lines[tc.keep])/2]...)
			}
			if err := os.WriteFile(filepath.Join(dir, RolloutsFileName), partial, 0o644); err != nil {
				t.Fatal(err)
			}
			sum, err := ExecuteRun(t.Context(), m, tinyRunOptions(dir))
			if err != nil {
				t.Fatal(err)
			}
			if sum.Skipped != tc.keep || sum.New != 12-tc.keep {
				t.Fatalf("skipped %d new %d, want %d and %d", sum.Skipped, sum.New, tc.keep, 12-tc.keep)
			}
			assertSameRun(t, ref, dir)
		})
	}
}

// fullDisk passes the first room bytes written through to the file and then fails with ENOSPC,
// with a short write, as a write to a filling disk does.
type fullDisk struct {
	*os.File
	room int
}

func (d *fullDisk) Write(p []byte) (int, error) {
	if len(p) <= d.room {
		d.room -= len(p)
		return d.File.Write(p)
	}
	n, err := d.File.Write(p[:d.room])
	d.room -= n
	if err == nil {
		err = syscall.ENOSPC
	}
	return n, err
}

// TestRunWriteFailureCountsSavedLines: when appending a batch's lines fails part way (a full
// disk), the run's error comes with a done count, and a last progress report, equal to the
// complete lines in rollouts.jsonl; resuming then finishes the run as if nothing had happened.
func TestRunWriteFailureCountsSavedLines(t *testing.T) {
	m := openTiny(t, 5, "")
	ref := filepath.Join(t.TempDir(), "ref")
	if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(ref)); err != nil {
		t.Fatal(err)
	}
	refData, err := os.ReadFile(filepath.Join(ref, RolloutsFileName))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(refData, []byte("\n"))
	upTo := func(n int) int { return len(bytes.Join(lines[:n], nil)) }
	for _, tc := range []struct {
		name      string
		room      int // bytes the disk takes
		wantSaved int // complete lines in the file afterwards
	}{
		{"at a batch boundary", upTo(3), 3},
		{"one line into a batch", upTo(4), 4},
		{"inside a line", upTo(5) + len(lines[5])/2, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			opts := tinyRunOptions(dir)
			var last RunProgress
			opts.Progress = func(p RunProgress) { last = p }
			opts.wrapRollouts = func(f *os.File) rolloutsFile { return &fullDisk{File: f, room: tc.room} }
			sum, err := ExecuteRun(t.Context(), m, opts)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("error %v, want ENOSPC", err)
			}
			run, err := OpenRun(dir)
			if err != nil {
				t.Fatal(err)
			}
			saved := len(run.Rollouts())
			if saved != tc.wantSaved || sum.Done != saved || sum.New != saved || last.Done != saved {
				t.Fatalf("%d lines saved (want %d); summary done %d new %d; last progress done %d",
					saved, tc.wantSaved, sum.Done, sum.New, last.Done)
			}
			tokens := 0
			for _, r := range run.Rollouts() {
				tokens += r.ResponseTokens
			}
			if sum.NewTokens != tokens {
				t.Fatalf("summary counts %d new tokens, the saved lines hold %d", sum.NewTokens, tokens)
			}
			if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(dir)); err != nil {
				t.Fatal(err)
			}
			assertSameRun(t, ref, dir)
		})
	}
}

// assertSameRun checks that two run directories hold the same set of rollout lines and the same
// activation rows, bit for bit.
func assertSameRun(t *testing.T, want, got string) {
	t.Helper()
	a, err := OpenRun(want)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenRun(got)
	if err != nil {
		t.Fatal(err)
	}
	lineSet := func(r *Run) map[string]string {
		out := map[string]string{}
		for _, ro := range r.Rollouts() {
			data, _ := json.Marshal(ro)
			out[ro.ID] = string(data)
		}
		return out
	}
	la, lb := lineSet(a), lineSet(b)
	if len(la) != len(lb) {
		t.Fatalf("%d rollouts, uninterrupted run has %d", len(lb), len(la))
	}
	var ids []string
	for id, line := range la {
		if lb[id] != line {
			t.Fatalf("rollout %s:\n got %s\nwant %s", id, lb[id], line)
		}
		ids = append(ids, id)
	}
	ma, err := a.MeanActivations(ids)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.MeanActivations(ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		for l := range ma[i] {
			for j := range ma[i][l] {
				if ma[i][l][j] != mb[i][l][j] {
					t.Fatalf("rollout %s layer %d [%d]: %g, uninterrupted run has %g", ids[i], l, j, mb[i][l][j], ma[i][l][j])
				}
			}
		}
	}
}

// TestRunBadInput: another model's run directory, changed settings, a foreign directory, bad
// rollouts files and bad data sets are errors that say what is wrong.
func TestRunBadInput(t *testing.T) {
	m := openTiny(t, 3, "")
	dir := filepath.Join(t.TempDir(), "run")
	if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(dir)); err != nil {
		t.Fatal(err)
	}
	t.Run("another model", func(t *testing.T) {
		other := testmodels.Open(t, testmodels.Stories260K(t))
		_, err := ExecuteRun(t.Context(), other, tinyRunOptions(dir))
		if err == nil || !strings.Contains(err.Error(), "another model") || !strings.Contains(err.Error(), m.Name) ||
			!strings.Contains(err.Error(), other.Name) {
			t.Fatalf("error %v, want one naming both models", err)
		}
	})
	t.Run("other settings", func(t *testing.T) {
		o := tinyRunOptions(dir)
		o.MaxTokens = 9
		if _, err := ExecuteRun(t.Context(), m, o); err == nil || !strings.Contains(err.Error(), "other settings") {
			t.Fatalf("error %v", err)
		}
		o = tinyRunOptions(dir)
		o.Dataset = o.Dataset.Subset(1, 0, 0)
		if _, err := ExecuteRun(t.Context(), m, o); err == nil || !strings.Contains(err.Error(), "another data set") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("foreign directory", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, "notes.txt"), []byte("x"), 0o644)
		if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(d)); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("bad rollouts lines", func(t *testing.T) {
		for _, tc := range []struct{ name, content, want string }{
			{"malformed middle line", "{\"id\":\"default/p0/q0/s0\",\"shard\":\"x\"}\nnot json\n", "line 2: malformed JSON"},
			{"duplicate", "{\"id\":\"default/p0/q0/s0\",\"shard\":\"x\"}\n{\"id\":\"default/p0/q0/s0\",\"shard\":\"x\"}\n", "line 2: rollout \"default/p0/q0/s0\" already on line 1"},
			{"no id", "{\"shard\":\"x\"}\n", "line 1: missing"},
			{"unknown rollout", "{\"id\":\"wizard/p0/q0/s0\",\"shard\":\"x\"}\n", "wizard/p0/q0/s0"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				d := filepath.Join(t.TempDir(), "run")
				os.CopyFS(d, os.DirFS(dir))
				os.WriteFile(filepath.Join(d, RolloutsFileName), []byte(tc.content), 0o644)
				if _, err := ExecuteRun(t.Context(), m, tinyRunOptions(d)); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one containing %q", err, tc.want)
				}
			})
		}
	})
	t.Run("bad manifest", func(t *testing.T) {
		d := t.TempDir()
		os.WriteFile(filepath.Join(d, ManifestFileName), []byte(`{"format":"other/9","layers":1,"hidden_size":1}`), 0o644)
		if _, err := OpenRun(d); err == nil || !strings.Contains(err.Error(), "other/9") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("bad settings", func(t *testing.T) {
		o := tinyRunOptions(t.TempDir())
		o.MaxTokens = 0
		if _, err := ExecuteRun(t.Context(), m, o); err == nil || !strings.Contains(err.Error(), "max tokens 0") {
			t.Fatalf("error %v", err)
		}
		o = tinyRunOptions(t.TempDir())
		o.Dataset = &Dataset{Default: tinyDataset().Default, Questions: tinyDataset().Questions}
		if _, err := ExecuteRun(t.Context(), m, o); err == nil || !strings.Contains(err.Error(), "no roles") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestRunDatasetFiles: the data set errors a run meets through LoadDataset name the file and,
// for questions, the line.
func TestRunDatasetFiles(t *testing.T) {
	good := t.TempDir()
	if err := tinyDataset().WriteReference(filepath.Join(good, "roles"), filepath.Join(good, "q.jsonl")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		roleFile  string // written as roles/bad.json when not empty
		questions string // replaces q.jsonl when not empty
		want      string
	}{
		{"malformed role file", `{"instruction": [{"pos": "x"}`, "", "bad.json"},
		{"role without prompts", `{"instruction": []}`, "", "has no prompts"},
		{"questions bad line", "", "{\"question\": \"a\", \"id\": 1}\n{\"question\": 5}\n", "line 2"},
		{"questions not json", "", "{\"question\": \"a\", \"id\": 1}\n\nhello\n", "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			os.CopyFS(d, os.DirFS(good))
			if tc.roleFile != "" {
				os.WriteFile(filepath.Join(d, "roles", "bad.json"), []byte(tc.roleFile), 0o644)
			}
			if tc.questions != "" {
				os.WriteFile(filepath.Join(d, "q.jsonl"), []byte(tc.questions), 0o644)
			}
			_, err := LoadDataset(filepath.Join(d, "roles"), filepath.Join(d, "q.jsonl"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "default.json"), []byte(`{"instruction":[{"pos":""}]}`), 0o644)
	if _, err := LoadDataset(empty, ""); err == nil || !strings.Contains(err.Error(), "no role files") {
		t.Fatalf("roles directory with only the default: error %v", err)
	}
}

// TestRunResponsesFillTheContext: with max tokens past the context of stories260K (512), every
// response fills the context exactly; the run completes, records stop reason "context", and
// reads the activations over the ids as generated. Re-encoding the decoded conversation gives
// longer sequences here (the model writes "<s>", which reads back as BOS plus a "▁" token), which
// is what made such runs fail in capture.
func TestRunResponsesFillTheContext(t *testing.T) {
	m := testmodels.Open(t, testmodels.Stories260K(t))
	ctxLen := m.Config.MaxPositions
	ds := &Dataset{
		Default:   Role{Name: DefaultRoleName, Prompts: []string{""}},
		Roles:     []Role{{Name: "teller", Prompts: []string{"You tell stories."}}},
		Questions: []Question{{ID: 0, Text: "Once upon a time"}},
	}
	dir := filepath.Join(t.TempDir(), "run")
	sum, err := ExecuteRun(t.Context(), m, RunOptions{Dir: dir, Dataset: ds, Samples: 1, MaxTokens: ctxLen + 100, Batch: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Done != 2 || sum.New != 2 {
		t.Fatalf("summary %+v, want 2 rollouts done", sum)
	}
	run, err := OpenRun(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPrompter(m)
	longer := 0
	for _, r := range run.Rollouts() {
		prompt, err := p.Prompt(r.System, r.Question)
		if err != nil {
			t.Fatal(err)
		}
		if r.StopReason != "context" || len(prompt)+r.ResponseTokens != ctxLen {
			t.Errorf("rollout %s: stop reason %q, %d prompt + %d response tokens (want \"context\" and %d in all)",
				r.ID, r.StopReason, len(prompt), r.ResponseTokens, ctxLen)
		}
		if span, err := p.Span(Conversation{System: r.System, Question: r.Question, Response: r.Response}); err == nil && len(span.Tokens) > ctxLen {
			longer++
		}
	}
	if longer == 0 {
		t.Errorf("no response re-encodes longer than the context: the test no longer covers that case")
	}
	rs := run.Rollouts()
	means, err := run.MeanActivations([]string{rs[0].ID})
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := p.Prompt(rs[0].System, rs[0].Question)
	seq := append(append([]int{}, prompt...), rs[0].ResponseIDs...)
	for _, l := range []int{0, m.Config.NumLayers - 1} {
		assertClose(t, "stored mean of "+rs[0].ID, 0, l, means[0][l], forwardMean(t, m, seq, len(prompt), len(seq), l))
	}
}
