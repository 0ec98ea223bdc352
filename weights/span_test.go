package weights

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckpointSpan checks Span against the bytes the tensors were written
// from: tensors stored back to back in the order asked are one view,
// anything else (another order, a gap, two shards, a missing name) is not.
func TestCheckpointSpan(t *testing.T) {
	tensors := manyTensors(t, 7) // a..g, stored sorted by name, 400 bytes each
	want := map[string][]byte{}
	for _, tt := range tensors {
		want[tt.Name] = tt.Data
	}
	single, sharded := t.TempDir(), t.TempDir()
	if err := WriteFile(filepath.Join(single, SingleFileName), tensors, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeSharded(sharded, tensors, 1000); err != nil { // a,b | c,d | e,f | g
		t.Fatal(err)
	}
	name := func(c byte) string { return "model.layers." + string(c) + ".weight" }
	for _, c := range []struct {
		dir   string
		parts string // tensor letters; '?' is a missing tensor
		ok    bool
	}{
		{single, "a", true},
		{single, "ab", true},
		{single, "bcd", true},
		{single, "abcdefg", true},
		{single, "ba", false},
		{single, "ac", false},
		{single, "a?", false},
		{sharded, "ab", true},
		{sharded, "cd", true},
		{sharded, "bc", false},
	} {
		ck, err := OpenCheckpoint(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		var expect []byte
		for i := range len(c.parts) {
			names = append(names, name(c.parts[i]))
			expect = append(expect, want[name(c.parts[i])]...)
		}
		got, ok := ck.Span(names...)
		if ok != c.ok {
			t.Errorf("%s: Span(%s) ok = %v, want %v", filepath.Base(c.dir), c.parts, ok, c.ok)
		}
		if ok && !bytes.Equal(got, expect) {
			t.Errorf("%s: Span(%s) is not the written bytes of its tensors", filepath.Base(c.dir), c.parts)
		}
		ck.Close()
	}
}

// mappings counts the lines of /proc/self/maps that map path.
func mappings(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skipf("no /proc/self/maps: %v", err)
	}
	return strings.Count(string(data), path+"\n")
}

// TestCheckpointRetain checks that a retained checkpoint's files stay
// mapped, with the written bytes, after Close until the release, and are
// unmapped then (as Close alone unmaps them).
func TestCheckpointRetain(t *testing.T) {
	tensors := manyTensors(t, 3)
	dir := t.TempDir()
	path := filepath.Join(dir, SingleFileName)
	if err := WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	expect := append(append([]byte(nil), tensors[0].Data...), tensors[1].Data...)

	plain, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if mappings(t, path) == 0 {
		t.Fatalf("%s is not in /proc/self/maps while open", path)
	}
	plain.Close()
	if n := mappings(t, path); n != 0 {
		t.Fatalf("Close without Retain left %d mappings of %s", n, path)
	}

	ck, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	release, err := ck.Retain()
	if err != nil {
		t.Fatal(err)
	}
	view, ok := ck.Span(tensors[0].Name, tensors[1].Name)
	if !ok {
		t.Fatal("Span of the first two tensors failed")
	}
	ck.Close()
	if _, ok := ck.Span(tensors[0].Name); ok {
		t.Error("Span succeeded on a closed checkpoint")
	}
	if _, err := ck.Retain(); err == nil {
		t.Error("Retain succeeded on a closed checkpoint")
	}
	if mappings(t, path) == 0 {
		t.Fatal("a retained checkpoint was unmapped by Close")
	}
	if !bytes.Equal(view, expect) {
		t.Error("the retained view no longer holds the written bytes")
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if n := mappings(t, path); n != 0 {
		t.Errorf("release left %d mappings of %s", n, path)
	}
	if err := release(); err != nil {
		t.Errorf("second release: %v", err)
	}
}
