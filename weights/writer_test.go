package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sampleTensors returns tensors of several dtypes with distinct contents.
func sampleTensors(t *testing.T) []Tensor {
	t.Helper()
	mk := func(name string, dt DType, shape []int, vals ...float32) Tensor {
		tt, err := NewFloatTensor(name, dt, shape, vals)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	return []Tensor{
		mk("z.half", F16, []int{3}, 1, 2, 3),
		mk("a.bf16", BF16, []int{1, 3}, -1, 0.5, 4),
		mk("m.f32", F32, []int{2, 2}, 1, 2, 3, 4),
		mk("b.f32", F32, []int{1}, 9),
		{Name: "ids", DType: I64, Shape: []int{2}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		mk("empty", F32, []int{0, 4}),
	}
}

func TestWriteFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.safetensors")
	tensors := sampleTensors(t)
	meta := map[string]string{"format": "pt", "quote": `a "b" <c>`}
	if err := WriteFile(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	header := raw[8 : 8+n]
	if trimmed := bytes.TrimRight(header, " "); !json.Valid(trimmed) || len(header)-len(trimmed) >= 8 {
		t.Errorf("header is not JSON padded with fewer than 8 spaces: %q", header)
	}
	// Independent reading of the header with encoding/json.
	var generic map[string]any
	if err := json.Unmarshal(header, &generic); err != nil {
		t.Fatal(err)
	}
	if generic["__metadata__"].(map[string]any)["quote"] != meta["quote"] {
		t.Errorf("metadata not preserved: %v", generic["__metadata__"])
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, want := range tensors {
		b, info, err := f.Bytes(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want.Data) || info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) {
			t.Errorf("%s: read %v %v %v, wrote %v %v %v", want.Name, info.DType, info.Shape, b, want.DType, want.Shape, want.Data)
		}
		if sz := int64(want.DType.Size()); info.Offset%sz != 0 {
			t.Errorf("%s: offset %d not aligned to %d", want.Name, info.Offset, sz)
		}
	}
	if got := f.Metadata(); got["quote"] != meta["quote"] || got["format"] != "pt" {
		t.Errorf("metadata = %v", got)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm()&0o444 != 0o444 {
		t.Errorf("written file mode %v, want readable by all", st.Mode())
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the output", len(entries))
	}
}

func TestWriteFileDeterministic(t *testing.T) {
	dir := t.TempDir()
	tensors := sampleTensors(t)
	reversed := make([]Tensor, len(tensors))
	for i, tt := range tensors {
		reversed[len(tensors)-1-i] = tt
	}
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	if err := WriteFile(a, tensors, map[string]string{"x": "1", "y": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(b, reversed, map[string]string{"y": "2", "x": "1"}); err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Error("the same tensors in another order gave different files")
	}
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := Tensor{Name: "a", DType: F32, Shape: []int{1}, Data: le32(1)}
	tests := []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"duplicate", []Tensor{good, good}, `"a" appears twice`},
		{"short data", []Tensor{{Name: "a", DType: F32, Shape: []int{2}, Data: le32(1)}}, "got 4 bytes, expected 8"},
		{"unknown dtype", []Tensor{{Name: "a", DType: "Q4", Shape: []int{1}, Data: []byte{1}}}, `unknown dtype "Q4"`},
		{"reserved name", []Tensor{{Name: "__metadata__", DType: F32, Shape: []int{1}, Data: le32(1)}}, "not allowed"},
		{"negative shape", []Tensor{{Name: "a", DType: F32, Shape: []int{-1}}}, "negative"},
	}
	for _, tc := range tests {
		path := filepath.Join(dir, tc.name+".safetensors")
		err := WriteFile(path, tc.tensors, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: a file was left at %s", tc.name, path)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary files left: %d", len(entries))
	}
	if _, err := NewF32Tensor("x", []int{2, 2}, []float32{1, 2, 3}); err == nil {
		t.Error("NewF32Tensor accepted 3 values for shape [2 2]")
	}
}

func TestStreamWriterOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.safetensors")
	infos := []TensorInfo{{Name: "b", DType: F32, Shape: []int{2}}, {Name: "a", DType: F32, Shape: []int{2}}}
	w, err := NewStreamWriter(path, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("b", le32(1, 2)); err == nil || !strings.Contains(err.Error(), `expected "a"`) {
		t.Errorf("out-of-order write: %v", err)
	}
	if err := w.WriteTensorPart("a", le32(1)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorPart("a", le32(2, 3)); err == nil {
		t.Error("overlong part accepted")
	}
	if err := w.WriteTensorPart("a", le32(2)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("early Close: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("incomplete file was renamed into place")
	}
}
