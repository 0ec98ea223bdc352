package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFunc: a successful write replaces the file with mode 0644 and
// leaves no temporary file; a failing write leaves the old content and no
// temporary file, and the error names the path; a missing directory is an
// error.
func TestWriteFunc(t *testing.T) {
	boom := errors.New("boom")
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		path    string
		write   func(io.Writer) error
		want    string // content of path afterwards
		wantErr error
	}{
		{"replace", path, func(w io.Writer) error { _, err := w.Write([]byte("new")); return err }, "new", nil},
		{"failed write keeps the old file", path, func(w io.Writer) error { w.Write([]byte("partial")); return boom }, "new", boom},
		{"missing directory", filepath.Join(dir, "no", "f.json"), func(io.Writer) error { return nil }, "new", os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteFunc(tc.path, tc.write)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name %s", err, tc.path)
			}
			got, rerr := os.ReadFile(path)
			if rerr != nil || string(got) != tc.want {
				t.Fatalf("content %q (%v), want %q", got, rerr, tc.want)
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", st.Mode().Perm())
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != "f.json" {
					t.Errorf("left %s behind", e.Name())
				}
			}
		})
	}
	if err := Write(path, []byte("bytes")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "bytes" {
		t.Fatalf("Write: content %q", got)
	}
}
