package runstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/weights"
)

type testInner struct {
	Seeds []uint64 `json:"seeds"`
	Judge string   `json:"judge"`
}

type testSettings struct {
	Model     string    `json:"model"`
	MaxTokens int       `json:"max_tokens"`
	Inner     testInner `json:"inner"`
}

func baseSettings() testSettings {
	return testSettings{Model: "m", MaxTokens: 8, Inner: testInner{Seeds: []uint64{1, 2}, Judge: "none"}}
}

// TestOpenSettings: a resume with the same settings opens; any changed field is refused with
// an error naming exactly that field (a dotted JSON path) and both values.
func TestOpenSettings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	st, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	have, err := ReadSettings[testSettings](dir, "run.json")
	if err != nil || have.Model != "m" || have.MaxTokens != 8 || len(have.Inner.Seeds) != 2 {
		t.Fatalf("stored settings %+v, %v", have, err)
	}
	st, err = Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatalf("resume with the same settings: %v", err)
	}
	st.Close()
	for _, tc := range []struct {
		name   string
		change func(*testSettings)
		field  string
		values []string
	}{
		{"top-level number", func(s *testSettings) { s.MaxTokens = 5 }, "max_tokens", []string{"8", "5"}},
		{"top-level string", func(s *testSettings) { s.Model = "other" }, "model", []string{`"m"`, `"other"`}},
		{"nested slice", func(s *testSettings) { s.Inner.Seeds = []uint64{1} }, "inner.seeds", []string{"[1,2]", "[1]"}},
		{"nested string", func(s *testSettings) { s.Inner.Judge = "self" }, "inner.judge", []string{`"none"`, `"self"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := baseSettings()
			tc.change(&s)
			st, err := Open(dir, "run.json", s, Options[testSettings]{})
			if err == nil {
				st.Close()
				t.Fatal("resume with other settings opened")
			}
			want := "run.json " + tc.field + " is " + tc.values[0] + ", this run has " + tc.values[1]
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q, want it to contain %q", err, want)
			}
		})
	}
	t.Run("check function", func(t *testing.T) {
		s := baseSettings()
		s.MaxTokens = 5
		var gotHave testSettings
		refuse := errors.New("refused")
		_, err := Open(dir, "run.json", s, Options[testSettings]{Check: func(h, w testSettings) error {
			gotHave = h
			return refuse
		}})
		if !errors.Is(err, refuse) || gotHave.MaxTokens != 8 {
			t.Fatalf("error %v, check saw %+v", err, gotHave)
		}
	})
	t.Run("unreadable settings file", func(t *testing.T) {
		bad := t.TempDir()
		os.WriteFile(filepath.Join(bad, "run.json"), []byte("{not json"), 0o644)
		_, err := Open(bad, "run.json", baseSettings(), Options[testSettings]{})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, "run.json")) || !strings.Contains(err.Error(), "invalid JSON") {
			t.Fatalf("error %v, want one naming the file", err)
		}
	})
}

// TestOpenForeignDirectory: a directory with files but no settings file is refused unless
// AllowOtherFiles; hidden files do not count.
func TestOpenForeignDirectory(t *testing.T) {
	hidden := t.TempDir()
	os.WriteFile(filepath.Join(hidden, ".run.json.tmp-1"), []byte("x"), 0o644)
	st, err := Open(hidden, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatalf("directory with only hidden files: %v", err)
	}
	st.Close()

	foreign := t.TempDir()
	os.WriteFile(filepath.Join(foreign, "notes.txt"), []byte("x"), 0o644)
	if _, err := Open(foreign, "run.json", baseSettings(), Options[testSettings]{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("error %v, want one saying the directory is not empty", err)
	}
	for _, f := range []string{"run.json", LockFileName} {
		if _, err := os.Stat(filepath.Join(foreign, f)); !os.IsNotExist(err) {
			t.Fatalf("a refused directory got %s (%v)", f, err)
		}
	}
	st, err = Open(foreign, "run.json", baseSettings(), Options[testSettings]{AllowOtherFiles: true})
	if err != nil {
		t.Fatalf("AllowOtherFiles: %v", err)
	}
	st.Close()
}

type testRecord struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

// TestLogTornLineAndResume: a line torn by a crash is skipped by readers and cut off by a
// resumed writer, whose next records land right after the last complete line; every Ref reads
// back its own record.
func TestLogTornLineAndResume(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatal(err)
	}
	log, err := st.OpenLog("recs.jsonl", 0)
	if err != nil {
		t.Fatal(err)
	}
	first := []any{testRecord{"a", "x <b> & y"}, testRecord{"b", "line\nbreak"}}
	if _, err := log.Append(first...); err != nil {
		t.Fatal(err)
	}
	st.Close()
	path := filepath.Join(dir, "recs.jsonl")
	complete, _ := os.ReadFile(path)
	// A crash in the middle of appending the next line.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"c","te`)
	f.Close()

	var ids []string
	good, err := ScanRecords(path, func(r testRecord, line int, ref Ref) error {
		ids = append(ids, r.ID)
		return nil
	})
	if err != nil || good != int64(len(complete)) || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("scan: ids %v, %d good bytes (want %d), %v", ids, good, len(complete), err)
	}

	st, err = Open(dir, "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err = st.OpenLog("recs.jsonl", good)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := log.Append(testRecord{"c", "again"}, testRecord{"d", "é"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !bytes.HasPrefix(data, complete) || bytes.Count(data, []byte("\n")) != 4 || !bytes.HasSuffix(data, []byte("\n")) {
		t.Fatalf("file after resume:\n%s", data)
	}
	if refs[0].Offset != int64(len(complete)) || refs[1].Offset != refs[0].End() || refs[1].End() != int64(len(data)) {
		t.Fatalf("refs %v in a file of %d bytes after %d kept", refs, len(data), len(complete))
	}
	want := map[string]string{"a": "x <b> & y", "b": "line\nbreak", "c": "again", "d": "é"}
	n := 0
	if _, err := ScanRecords(path, func(r testRecord, line int, ref Ref) error {
		back, err := ReadRecord[testRecord](path, ref)
		if err != nil || back != r || want[r.ID] != r.Text || line != n+1 {
			t.Errorf("line %d: %+v, read back at %v as %+v (%v)", line, r, ref, back, err)
		}
		n++
		return nil
	}); err != nil || n != 4 {
		t.Fatalf("%d records, %v", n, err)
	}
}

// TestScanRecordsErrors: a malformed line in the middle is an error naming the file and line;
// a missing file has no records.
func TestScanRecordsErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.jsonl")
	if n, err := ScanRecords(path, func(testRecord, int, Ref) error { return nil }); n != 0 || err != nil {
		t.Fatalf("missing file: %d, %v", n, err)
	}
	os.WriteFile(path, []byte("{\"id\":\"a\"}\n\nnot json\n"), 0o644)
	_, err := ScanRecords(path, func(testRecord, int, Ref) error { return nil })
	if err == nil || !strings.Contains(err.Error(), path+": line 3: malformed JSON") {
		t.Fatalf("error %v", err)
	}
}

// failingFile fails every write after the first n bytes.
type failingFile struct {
	*os.File
	n int
}

func (f *failingFile) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.File.Write(p)
	}
	w, _ := f.File.Write(p[:f.n])
	f.n = 0
	return w, errors.New("disk full")
}

// TestLogRefusesAfterFailedAppend: after an append fails part way, the log refuses more
// appends instead of writing them at unknown offsets.
func TestLogRefusesAfterFailedAppend(t *testing.T) {
	st, err := Open(t.TempDir(), "run.json", baseSettings(), Options[testSettings]{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.OpenLog("r.jsonl", 0)
	if err != nil {
		t.Fatal(err)
	}
	log.Wrap(func(f *os.File) File { return &failingFile{File: f, n: 5} })
	if _, err := log.Append(testRecord{"a", "b"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("first append: %v", err)
	}
	if _, err := log.Append(testRecord{"c", "d"}); err == nil || !strings.Contains(err.Error(), "earlier append failed") {
		t.Fatalf("append after a failure: %v", err)
	}
}

// TestShardRoundTrip: a shard reads back bit for bit with its metadata, no temporary file is
// left, and a name outside the run directory is refused.
func TestShardRoundTrip(t *testing.T) {
	dir := t.TempDir()
	vals := []float32{1.5, -2, 3.25, 0, 1e-8, -7}
	ten, err := weights.NewF32Tensor("mean", []int{2, 3}, vals)
	if err != nil {
		t.Fatal(err)
	}
	name := "activations/shard-000001.safetensors"
	if err := WriteShard(dir, name, []weights.Tensor{ten}, map[string]string{"ids": `["a","b"]`}); err != nil {
		t.Fatal(err)
	}
	f, err := OpenShard(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, shape, err := f.Float32("mean")
	if err != nil || len(shape) != 2 || shape[0] != 2 || shape[1] != 3 || f.Metadata()["ids"] != `["a","b"]` {
		t.Fatalf("shape %v, metadata %v, %v", shape, f.Metadata(), err)
	}
	for i := range vals {
		if got[i] != vals[i] {
			t.Fatalf("value %d: %g, wrote %g", i, got[i], vals[i])
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "activations"))
	if len(entries) != 1 {
		t.Fatalf("activations holds %d entries, want only the shard", len(entries))
	}
	for _, bad := range []string{"../x.safetensors", "/abs.safetensors"} {
		if err := WriteShard(dir, bad, []weights.Tensor{ten}, nil); err == nil || !strings.Contains(err.Error(), "inside the run directory") {
			t.Errorf("shard name %q: %v", bad, err)
		}
	}
}

// TestFileSHA256 checks against the known sha256 of "abc" (FIPS 180-2 test vector).
func TestFileSHA256(t *testing.T) {
	path := filepath.Join(t.TempDir(), "abc")
	os.WriteFile(path, []byte("abc"), 0o644)
	sum, err := FileSHA256(path)
	if err != nil || sum != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("%s, %v", sum, err)
	}
}
