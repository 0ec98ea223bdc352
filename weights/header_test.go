package weights

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// rawSafetensors assembles a file image by hand, following the format's
// specification (8-byte little-endian header length, JSON, data), without
// using this package's writer.
func rawSafetensors(header string, data []byte) []byte {
	out := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(out, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

// le32 encodes float32 values little-endian.
func le32(vals ...float32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func TestParseSafetensorsValid(t *testing.T) {
	// Two F32 tensors and a BF16 one, written by hand. BF16 0x3FC0 is 1.5,
	// 0xC000 is -2.
	data := append(le32(1, 2, 3, 4, 5, 6), le32(7)...)
	data = append(data, 0xC0, 0x3F, 0x00, 0xC0)
	header := `{"__metadata__":{"format":"pt","note":"hi"},` +
		`"b":{"dtype":"F32","shape":[],"data_offsets":[24,28]},` +
		`"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},` +
		`"c":{"dtype":"BF16","shape":[2],"data_offsets":[28,32]}}  `
	img := rawSafetensors(header, data)
	p, err := parseSafetensors(img, "x.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.metadata["note"]; got != "hi" {
		t.Errorf("metadata note = %q, want hi", got)
	}
	names := []string{}
	for _, ti := range p.tensors {
		names = append(names, ti.Name)
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("tensors in offset order = %v, want a,b,c", names)
	}
	f, err := newFile("x.safetensors", img)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shape []int
		want  []float32
	}{
		{"a", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		{"b", []int{}, []float32{7}},
		{"c", []int{2}, []float32{1.5, -2}},
	}
	for _, tc := range tests {
		vals, shape, err := f.Float32(tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(shape, tc.shape) || !slices.Equal(vals, tc.want) {
			t.Errorf("%s: got %v %v, want %v %v", tc.name, shape, vals, tc.shape, tc.want)
		}
	}
}

func TestParseSafetensorsBadInput(t *testing.T) {
	twelve := make([]byte, 12)
	tests := []struct {
		name, header string
		data         []byte
		raw          []byte // when set, the whole image
		wantErr      string
	}{
		{name: "truncated length", raw: []byte{1, 2, 3}, wantErr: "expected at least 8"},
		{name: "header longer than file", raw: append([]byte{200, 0, 0, 0, 0, 0, 0, 0}, `{}`...), wantErr: "header length 200 exceeds"},
		{name: "not JSON", header: `not json`, wantErr: "not a JSON object"},
		{name: "bad JSON", header: `{"a":`, wantErr: "header JSON"},
		{name: "invalid UTF-8", header: "{\"\xff\":1}", wantErr: "not valid UTF-8"},
		{name: "trailing garbage", header: `{} x`, wantErr: "after the closing brace"},
		{name: "unknown dtype", header: `{"a":{"dtype":"Q4","shape":[3],"data_offsets":[0,12]}}`, data: twelve, wantErr: `tensor "a": unknown dtype "Q4"`},
		{name: "shape mismatch", header: `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}`, data: twelve, wantErr: `tensor "a": shape [2] of F32 needs 8 bytes`},
		{name: "negative shape", header: `{"a":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}}`, data: twelve, wantErr: "invalid dimension -3"},
		{name: "offsets past end", header: `{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, data: twelve, wantErr: "outside the 12-byte data section"},
		{name: "offsets reversed", header: `{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}`, data: twelve, wantErr: "outside"},
		{name: "one offset", header: `{"a":{"dtype":"F32","shape":[0],"data_offsets":[0]}}`, data: twelve, wantErr: "expected 2"},
		{name: "missing field", header: `{"a":{"dtype":"F32","shape":[3]}}`, data: twelve, wantErr: "expected fields dtype, shape and data_offsets"},
		{name: "overlap", header: `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, data: twelve, wantErr: `tensor "b" (bytes 4..12) overlaps tensor "a"`},
		{name: "duplicate key", header: `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, data: twelve, wantErr: `key "a" appears twice`},
		{name: "metadata not strings", header: `{"__metadata__":{"n":1}}`, wantErr: "__metadata__: expected an object of string to string"},
		{name: "huge shape", header: `{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,12]}}`, data: twelve, wantErr: "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := tc.raw
			if img == nil {
				img = rawSafetensors(tc.header, tc.data)
			}
			_, err := parseSafetensors(img, "bad.safetensors")
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Errorf("error %q does not name the file and contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestOpenFileMapsAndReportsUnsupported(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	// I64 tensor: readable as bytes, not convertible to float32.
	data := append(le32(0.25, -8), 5, 0, 0, 0, 0, 0, 0, 0)
	header := `{"f":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"i":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}`
	if err := os.WriteFile(path, rawSafetensors(header, data), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vals, _, err := f.Float32("f")
	if err != nil || !slices.Equal(vals, []float32{0.25, -8}) {
		t.Errorf("Float32(f) = %v, %v", vals, err)
	}
	b, info, err := f.Bytes("i")
	if err != nil || info.DType != I64 || binary.LittleEndian.Uint64(b) != 5 {
		t.Errorf("Bytes(i) = %v %+v %v", b, info, err)
	}
	if _, _, err := f.Float32("i"); err == nil || !strings.Contains(err.Error(), "I64 cannot be converted") {
		t.Errorf("Float32(i) error = %v, want a clear unsupported-dtype error", err)
	}
	if _, _, err := f.Float32("nope"); err == nil || !strings.Contains(err.Error(), `"nope" not found`) {
		t.Errorf("missing tensor error = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Bytes("f"); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Bytes after Close: %v, want a file-closed error", err)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.safetensors")
	os.WriteFile(short, []byte{1, 0}, 0o644)
	trunc := filepath.Join(dir, "trunc.safetensors")
	full := rawSafetensors(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, le32(1, 2, 3, 4))
	os.WriteFile(trunc, full[:len(full)-5], 0o644)
	tests := []struct{ path, want string }{
		{filepath.Join(dir, "absent.safetensors"), "no such file"},
		{short, "expected at least 8"},
		{trunc, "outside the 11-byte data section"},
		{dir, "not a regular file"},
	}
	for _, tc := range tests {
		_, err := OpenFile(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("OpenFile(%s) error = %v, want %q", tc.path, err, tc.want)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, le32(1, 2)))
	f.Add(rawSafetensors(`{"__metadata__":{"k":"v"},"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[0,2]}}`, []byte{1, 2}))
	f.Add(rawSafetensors(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, make([]byte, 12)))
	f.Add(rawSafetensors(`{}`, nil))
	f.Add([]byte{255, 255, 255, 255, 255, 255, 255, 255, '{'})
	f.Fuzz(func(t *testing.T, img []byte) {
		p, err := parseSafetensors(img, "fuzz")
		if err != nil {
			return
		}
		// Invariants of an accepted file: every tensor lies in the data
		// section, its length matches its shape, and none overlap.
		dataLen := int64(len(img)) - p.dataStart
		var prevEnd int64
		for _, ti := range p.tensors {
			if ti.Offset < 0 || ti.Offset+ti.Length > dataLen {
				t.Fatalf("tensor %q out of range", ti.Name)
			}
			if ti.NumElements()*int64(ti.DType.Size()) != ti.Length {
				t.Fatalf("tensor %q length mismatch", ti.Name)
			}
			if ti.Length > 0 {
				if ti.Offset < prevEnd {
					t.Fatalf("tensor %q overlaps", ti.Name)
				}
				prevEnd = ti.Offset + ti.Length
			}
		}
		fl, err := newFile("fuzz", img)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range p.tensors {
			if b, _, err := fl.Bytes(ti.Name); err != nil || int64(len(b)) != ti.Length {
				t.Fatalf("Bytes(%q) = %d bytes, %v", ti.Name, len(b), err)
			}
			if ti.DType.IsFloat() {
				if _, _, err := fl.Float32(ti.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
