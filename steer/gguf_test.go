package steer

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
)

// ggufBuilder writes GGUF bytes field by field, following the published
// layout directly (independently of encodeGGUF), so tests can also write
// malformed files.
type ggufBuilder struct {
	version uint32
	kvs     [][]byte
	tensors []builderTensor
	align   int
}

type builderTensor struct {
	name string
	dims []uint64
	typ  uint32
	data []byte
	// offset overrides the computed offset when >= 0.
	offset int64
}

func le32(x uint32) []byte { return binary.LittleEndian.AppendUint32(nil, x) }
func le64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }
func gstr(s string) []byte { return append(le64(uint64(len(s))), s...) }

func (b *ggufBuilder) kvString(key, val string) {
	b.kvs = append(b.kvs, slices.Concat(gstr(key), le32(8), gstr(val)))
}

func (b *ggufBuilder) kvU32(key string, val uint32) {
	b.kvs = append(b.kvs, slices.Concat(gstr(key), le32(4), le32(val)))
}

func (b *ggufBuilder) kvStringArray(key string, vals ...string) {
	kv := slices.Concat(gstr(key), le32(9), le32(8), le64(uint64(len(vals))))
	for _, v := range vals {
		kv = append(kv, gstr(v)...)
	}
	b.kvs = append(b.kvs, kv)
}

func f32bytes(vals ...float32) []byte {
	var out []byte
	for _, v := range vals {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
	}
	return out
}

func (b *ggufBuilder) direction(name string, vals ...float32) {
	b.tensors = append(b.tensors, builderTensor{name: name, dims: []uint64{uint64(len(vals))}, data: f32bytes(vals...), offset: -1})
}

func (b *ggufBuilder) bytes() []byte {
	align := b.align
	if align == 0 {
		align = 32
	}
	version := b.version
	if version == 0 {
		version = 3
	}
	out := slices.Concat([]byte("GGUF"), le32(version), le64(uint64(len(b.tensors))), le64(uint64(len(b.kvs))))
	for _, kv := range b.kvs {
		out = append(out, kv...)
	}
	var off uint64
	var offsets []uint64
	for _, t := range b.tensors {
		out = append(out, gstr(t.name)...)
		out = append(out, le32(uint32(len(t.dims)))...)
		for _, d := range t.dims {
			out = append(out, le64(d)...)
		}
		out = append(out, le32(t.typ)...)
		o := off
		if t.offset >= 0 {
			o = uint64(t.offset)
		}
		out = append(out, le64(o)...)
		offsets = append(offsets, off)
		off += uint64((len(t.data) + align - 1) / align * align)
	}
	for len(out)%align != 0 {
		out = append(out, 0)
	}
	start := len(out)
	for i, t := range b.tensors {
		for len(out) < start+int(offsets[i]) {
			out = append(out, 0)
		}
		out = append(out, t.data...)
	}
	for len(out)%align != 0 { // gguf writers pad the last tensor too
		out = append(out, 0)
	}
	return out
}

// repengStyle is a control vector as repeng / llama.cpp's generator write it.
func repengStyle() *ggufBuilder {
	b := &ggufBuilder{}
	b.kvString("general.architecture", "controlvector")
	b.kvString("controlvector.model_hint", "llama")
	b.kvU32("controlvector.layer_count", 2)
	b.direction("direction.1", 1, 2, 3)
	b.direction("direction.2", 4, 5, 6)
	return b
}

func TestParseControlVector(t *testing.T) {
	cv, err := ParseControlVector(repengStyle().bytes())
	if err != nil {
		t.Fatal(err)
	}
	if cv.Hidden != 3 || cv.ModelHint != "llama" || !slices.Equal(cv.Layers(), []int{1, 2}) ||
		!slices.Equal(cv.Directions[1], []float32{1, 2, 3}) || !slices.Equal(cv.Directions[2], []float32{4, 5, 6}) {
		t.Fatalf("parsed %+v", cv)
	}

	// Other metadata (arrays included) is skipped; a custom alignment and
	// GGUF v2 are honoured; duplicate layers are summed, as llama.cpp does.
	b := &ggufBuilder{version: 2, align: 64}
	b.kvStringArray("tokenizer.ggml.tokens", "a", "bb", "ccc")
	b.kvU32("general.alignment", 64)
	b.direction("direction.5", 1, 1)
	b.direction("direction.5", 0.5, -1)
	b.direction("direction.3", 2, 2)
	cv, err = ParseControlVector(b.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cv.Directions[5], []float32{1.5, 0}) || !slices.Equal(cv.Directions[3], []float32{2, 2}) {
		t.Fatalf("parsed %+v", cv.Directions)
	}
}

func TestParseControlVectorErrors(t *testing.T) {
	mod := func(f func(b *ggufBuilder)) []byte {
		b := repengStyle()
		f(b)
		return b.bytes()
	}
	good := repengStyle().bytes()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a GGUF file"},
		{"bad magic", append([]byte("GGUG"), good[4:]...), "not a GGUF file"},
		{"version 1", mod(func(b *ggufBuilder) { b.version = 1 }), "GGUF version 1"},
		{"truncated header", good[:40], "truncated"},
		{"truncated data", good[:len(good)-32+8], "run past the end"},
		{"model not control vector", mod(func(b *ggufBuilder) { b.kvs[0] = slices.Concat(gstr("general.architecture"), le32(8), gstr("llama")) }), "expected \"controlvector\""},
		{"direction.0", mod(func(b *ggufBuilder) { b.tensors[0].name = "direction.0" }), "layer index 0 is invalid"},
		{"bad name", mod(func(b *ggufBuilder) { b.tensors[0].name = "blk.1.attn_q.weight" }), "expected a name \"direction.N\""},
		{"negative index", mod(func(b *ggufBuilder) { b.tensors[0].name = "direction.-1" }), "expected a name \"direction.N\""},
		{"F16 tensor", mod(func(b *ggufBuilder) { b.tensors[0].typ = 1 }), "expected F32"},
		{"2-D tensor", mod(func(b *ggufBuilder) { b.tensors[0].dims = []uint64{1, 3} }), "expected 1-D"},
		{"mismatched lengths", mod(func(b *ggufBuilder) { b.tensors[1].dims = []uint64{2} }), "the previous directions have"},
		{"NaN value", mod(func(b *ggufBuilder) { b.tensors[1].data = f32bytes(1, float32(math.NaN()), 3) }), "is NaN"},
		{"unaligned offset", mod(func(b *ggufBuilder) { b.tensors[1].offset = 4 }), "not a multiple of the alignment"},
		{"offset past end", mod(func(b *ggufBuilder) { b.tensors[1].offset = 1 << 40 }), "run past the end"},
		{"huge dims", mod(func(b *ggufBuilder) { b.tensors[1].dims = []uint64{1 << 62} }), "out of bounds"},
		{"no tensors", mod(func(b *ggufBuilder) { b.tensors = nil }), "no direction tensors"},
		{"bad alignment", mod(func(b *ggufBuilder) { b.kvU32("general.alignment", 3) }), "general.alignment"},
		{"unknown kv type", mod(func(b *ggufBuilder) { b.kvs = append(b.kvs, slices.Concat(gstr("x"), le32(77))) }), "unknown metadata value type 77"},
		{"duplicate key", mod(func(b *ggufBuilder) { b.kvString("controlvector.model_hint", "again") }), "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseControlVector(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestControlVectorRoundTrip(t *testing.T) {
	cv := &ControlVector{Hidden: 5, ModelHint: "tiny", Directions: map[int][]float32{
		1: {1, -2, 3, 0.5, 0}, 7: {0, 0, 1e-9, -1e9, 2}, 3: {9, 8, 7, 6, 5}}}
	data, err := EncodeControlVector(cv)
	if err != nil {
		t.Fatal(err)
	}
	// The header our writer produces matches the independent builder's
	// layout byte for byte.
	b := &ggufBuilder{}
	b.kvString("general.architecture", "controlvector")
	b.kvString("controlvector.model_hint", "tiny")
	b.kvU32("controlvector.layer_count", 3)
	b.direction("direction.1", cv.Directions[1]...)
	b.direction("direction.3", cv.Directions[3]...)
	b.direction("direction.7", cv.Directions[7]...)
	if !bytes.Equal(data, b.bytes()) {
		t.Fatal("EncodeControlVector differs from the reference layout")
	}
	path := tempPath(t, "v.gguf")
	if err := WriteControlVector(path, cv); err != nil {
		t.Fatal(err)
	}
	back, err := ReadControlVector(path)
	if err != nil {
		t.Fatal(err)
	}
	for l, v := range cv.Directions {
		if !slices.Equal(back.Directions[l], v) {
			t.Fatalf("layer %d: %v, wrote %v", l, back.Directions[l], v)
		}
	}
	if _, err := EncodeControlVector(&ControlVector{Hidden: 2, Directions: map[int][]float32{0: {1, 2}}}); err == nil {
		t.Fatal("encoded a direction for layer 0")
	}
	adds, err := ControlVectorAdds(back, []int{3}, 2)
	if err != nil || len(adds) != 1 || adds[0].Alpha != 2 || adds[0].Layer != 3 {
		t.Fatalf("ControlVectorAdds = %+v, %v", adds, err)
	}
	if _, err := ControlVectorAdds(back, []int{2}, 1); err == nil || !strings.Contains(err.Error(), "no direction for layer 2") {
		t.Fatalf("missing layer: %v", err)
	}
}

func FuzzParseControlVector(f *testing.F) {
	f.Add(repengStyle().bytes())
	b := &ggufBuilder{version: 2, align: 64}
	b.kvStringArray("a", "x", "y")
	b.kvU32("general.alignment", 64)
	b.direction("direction.4", 1, 2)
	f.Add(b.bytes())
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cv, err := ParseControlVector(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes and parses back to the same vectors.
		enc, err := EncodeControlVector(cv)
		if err != nil {
			t.Fatalf("parsed %+v but cannot encode it: %v", cv, err)
		}
		back, err := ParseControlVector(enc)
		if err != nil {
			t.Fatal(err)
		}
		for l, v := range cv.Directions {
			if !bitEqual(back.Directions[l], v) {
				t.Fatalf("layer %d changed in a round trip", l)
			}
		}
	})
}
