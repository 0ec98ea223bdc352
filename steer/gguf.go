package steer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// This file holds a minimal GGUF (v2/v3) reader and a v3 writer for the
// subset control vectors use: any metadata (read and skipped when not
// needed), and F32 tensors. Layout, all little-endian:
//
//	"GGUF" u32 version, u64 tensor_count, u64 kv_count
//	kv:     string key, u32 type, value      (string = u64 length + bytes)
//	tensor: string name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset
//	padding to general.alignment (default 32), then tensor data; every
//	tensor's offset is relative to the data start and aligned.

// GGUF metadata value types.
const (
	ggufUint8   = 0
	ggufInt8    = 1
	ggufUint16  = 2
	ggufInt16   = 3
	ggufUint32  = 4
	ggufInt32   = 5
	ggufFloat32 = 6
	ggufBool    = 7
	ggufString  = 8
	ggufArray   = 9
	ggufUint64  = 10
	ggufInt64   = 11
	ggufFloat64 = 12

	ggmlTypeF32      = 0
	ggufDefaultAlign = 32
	ggufMagic        = "GGUF"
)

// Limits that keep a malformed file from asking for absurd allocations.
const (
	ggufMaxString  = 1 << 20
	ggufMaxCount   = 1 << 20
	ggufMaxDims    = 4
	ggufMaxElement = 1 << 31
)

// ggufTensor is one tensor's header entry.
type ggufTensor struct {
	name   string
	dims   []uint64
	typ    uint32
	offset uint64
}

// ggufFile is a parsed GGUF file: scalar and string metadata (arrays are
// skipped) and tensor headers; data holds the whole file.
type ggufFile struct {
	version   uint32
	meta      map[string]any
	tensors   []ggufTensor
	dataStart uint64
	data      []byte
}

// ggufReader reads little-endian values from a byte slice with bounds checks.
type ggufReader struct {
	b   []byte
	off uint64
	err error
}

func (r *ggufReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b))-r.off {
		r.err = fmt.Errorf("truncated at byte %d: need %d more bytes, file has %d", r.off, n, uint64(len(r.b))-r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *ggufReader) u32() uint32 {
	if s := r.take(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *ggufReader) u64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

func (r *ggufReader) str() string {
	n := r.u64()
	if r.err == nil && n > ggufMaxString {
		r.err = fmt.Errorf("string of %d bytes at byte %d exceeds the limit of %d", n, r.off-8, ggufMaxString)
	}
	return string(r.take(n))
}

// value reads one metadata value of type t; arrays are skipped (nil).
func (r *ggufReader) value(t uint32, depth int) any {
	switch t {
	case ggufUint8, ggufInt8, ggufBool:
		s := r.take(1)
		if s == nil {
			return nil
		}
		switch t {
		case ggufUint8:
			return uint64(s[0])
		case ggufInt8:
			return int64(int8(s[0]))
		}
		return s[0] != 0
	case ggufUint16, ggufInt16:
		s := r.take(2)
		if s == nil {
			return nil
		}
		v := binary.LittleEndian.Uint16(s)
		if t == ggufInt16 {
			return int64(int16(v))
		}
		return uint64(v)
	case ggufUint32:
		return uint64(r.u32())
	case ggufInt32:
		return int64(int32(r.u32()))
	case ggufFloat32:
		return float64(math.Float32frombits(r.u32()))
	case ggufUint64:
		return r.u64()
	case ggufInt64:
		return int64(r.u64())
	case ggufFloat64:
		return math.Float64frombits(r.u64())
	case ggufString:
		return r.str()
	case ggufArray:
		if depth > 2 {
			r.err = fmt.Errorf("arrays nested too deeply at byte %d", r.off)
			return nil
		}
		et := r.u32()
		n := r.u64()
		if r.err == nil && n > ggufMaxCount*16 {
			r.err = fmt.Errorf("array of %d elements at byte %d exceeds the limit", n, r.off)
		}
		for i := uint64(0); i < n && r.err == nil; i++ {
			r.value(et, depth+1)
		}
		return nil
	}
	if r.err == nil {
		r.err = fmt.Errorf("unknown metadata value type %d at byte %d", t, r.off-4)
	}
	return nil
}

// parseGGUF parses the header of a GGUF v2 or v3 file held in b.
func parseGGUF(b []byte) (*ggufFile, error) {
	r := &ggufReader{b: b}
	if magic := r.take(4); magic == nil || string(magic) != ggufMagic {
		return nil, errors.New("not a GGUF file (expected the magic \"GGUF\")")
	}
	f := &ggufFile{meta: map[string]any{}, data: b}
	f.version = r.u32()
	if r.err == nil && f.version != 2 && f.version != 3 {
		return nil, fmt.Errorf("GGUF version %d, expected 2 or 3", f.version)
	}
	nTensors, nKV := r.u64(), r.u64()
	if r.err != nil {
		return nil, r.err
	}
	if nTensors > ggufMaxCount || nKV > ggufMaxCount {
		return nil, fmt.Errorf("header claims %d tensors and %d metadata entries, more than the limit %d", nTensors, nKV, ggufMaxCount)
	}
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		key := r.str()
		t := r.u32()
		v := r.value(t, 0)
		if r.err == nil {
			if _, dup := f.meta[key]; dup {
				return nil, fmt.Errorf("metadata key %q appears twice", key)
			}
			f.meta[key] = v
		}
	}
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		var t ggufTensor
		t.name = r.str()
		nd := r.u32()
		if r.err == nil && nd > ggufMaxDims {
			return nil, fmt.Errorf("tensor %q has %d dimensions, more than %d", t.name, nd, ggufMaxDims)
		}
		for d := uint32(0); d < nd && r.err == nil; d++ {
			t.dims = append(t.dims, r.u64())
		}
		t.typ = r.u32()
		t.offset = r.u64()
		f.tensors = append(f.tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	align := uint64(ggufDefaultAlign)
	if v, ok := f.meta["general.alignment"]; ok {
		a, isU := v.(uint64)
		if !isU || a == 0 || a&(a-1) != 0 || a > 1<<16 {
			return nil, fmt.Errorf("metadata general.alignment is %v, expected a power of two", v)
		}
		align = a
	}
	f.dataStart = (r.off + align - 1) / align * align
	for _, t := range f.tensors {
		if t.offset%align != 0 {
			return nil, fmt.Errorf("tensor %q: offset %d is not a multiple of the alignment %d", t.name, t.offset, align)
		}
	}
	return f, nil
}

// f32Tensor returns the values of an F32 tensor, bounds-checked.
func (f *ggufFile) f32Tensor(t ggufTensor) ([]float32, error) {
	if t.typ != ggmlTypeF32 {
		return nil, fmt.Errorf("tensor %q has ggml type %d, expected F32 (0)", t.name, t.typ)
	}
	n := uint64(1)
	for _, d := range t.dims {
		if d == 0 || d > ggufMaxElement || n*d > ggufMaxElement {
			return nil, fmt.Errorf("tensor %q has dimensions %v, out of bounds", t.name, t.dims)
		}
		n *= d
	}
	start := f.dataStart + t.offset
	if start < f.dataStart || start > uint64(len(f.data)) || n*4 > uint64(len(f.data))-start {
		return nil, fmt.Errorf("tensor %q: %d values at offset %d run past the end of the file (%d bytes)", t.name, n, t.offset, len(f.data))
	}
	raw := f.data[start : start+n*4]
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, nil
}

// ggufKV is one metadata entry to write.
type ggufKV struct {
	key   string
	value any // string, uint32, int32 or float32
}

// ggufOut is one F32 tensor to write.
type ggufOut struct {
	name   string
	values []float32
}

// encodeGGUF lays out a GGUF v3 file with the given metadata and 1-D F32
// tensors, aligned to 32 bytes.
func encodeGGUF(kvs []ggufKV, tensors []ggufOut) ([]byte, error) {
	var b bytes.Buffer
	le := binary.LittleEndian
	putStr := func(s string) {
		binary.Write(&b, le, uint64(len(s)))
		b.WriteString(s)
	}
	b.WriteString(ggufMagic)
	binary.Write(&b, le, uint32(3))
	binary.Write(&b, le, uint64(len(tensors)))
	binary.Write(&b, le, uint64(len(kvs)))
	for _, kv := range kvs {
		putStr(kv.key)
		switch v := kv.value.(type) {
		case string:
			binary.Write(&b, le, uint32(ggufString))
			putStr(v)
		case uint32:
			binary.Write(&b, le, uint32(ggufUint32))
			binary.Write(&b, le, v)
		case int32:
			binary.Write(&b, le, uint32(ggufInt32))
			binary.Write(&b, le, v)
		case float32:
			binary.Write(&b, le, uint32(ggufFloat32))
			binary.Write(&b, le, v)
		default:
			return nil, fmt.Errorf("metadata %q: unsupported value type %T", kv.key, kv.value)
		}
	}
	var offset uint64
	for _, t := range tensors {
		putStr(t.name)
		binary.Write(&b, le, uint32(1))
		binary.Write(&b, le, uint64(len(t.values)))
		binary.Write(&b, le, uint32(ggmlTypeF32))
		binary.Write(&b, le, offset)
		offset += alignUp(uint64(len(t.values))*4, ggufDefaultAlign)
	}
	pad := func() {
		for b.Len()%ggufDefaultAlign != 0 {
			b.WriteByte(0)
		}
	}
	pad()
	for _, t := range tensors {
		for _, x := range t.values {
			binary.Write(&b, le, math.Float32bits(x))
		}
		pad()
	}
	return b.Bytes(), nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// ControlVector is a llama.cpp / repeng control vector: per layer, a vector
// added to the output of that 0-based decoder block.
type ControlVector struct {
	// Directions maps a 0-based block index (= N of the tensor "direction.N")
	// to its vector.
	Directions map[int][]float32
	Hidden     int
	// ModelHint is controlvector.model_hint (informational; llama.cpp does
	// not read it).
	ModelHint string
}

// Layers lists the layers that have a direction, in order.
func (cv *ControlVector) Layers() []int { return sortedKeys(cv.Directions) }

// ParseControlVector reads a control vector from the bytes of a GGUF file,
// with llama.cpp's rules: every tensor must be named "direction.N" with
// N >= 1, be 1-D F32 and have the same length; tensors for the same layer
// are summed. general.architecture, when present, must be "controlvector".
func ParseControlVector(b []byte) (*ControlVector, error) {
	f, err := parseGGUF(b)
	if err != nil {
		return nil, err
	}
	if arch, ok := f.meta["general.architecture"]; ok && arch != "controlvector" {
		return nil, fmt.Errorf("general.architecture is %q, expected \"controlvector\" (is this a model rather than a control vector?)", arch)
	}
	cv := &ControlVector{Directions: map[int][]float32{}, Hidden: -1}
	if h, ok := f.meta["controlvector.model_hint"].(string); ok {
		cv.ModelHint = h
	}
	if len(f.tensors) == 0 {
		return nil, errors.New("no direction tensors")
	}
	for _, t := range f.tensors {
		num, ok := strings.CutPrefix(t.name, "direction.")
		layer, err := strconv.Atoi(num)
		if !ok || err != nil || layer < 0 || strconv.Itoa(layer) != num {
			return nil, fmt.Errorf("tensor %q: expected a name \"direction.N\" with N a layer index", t.name)
		}
		if layer == 0 {
			return nil, fmt.Errorf("tensor %q: layer index 0 is invalid in control vectors (llama.cpp rejects it; direction.N steers block N's output, N >= 1)", t.name)
		}
		if len(t.dims) != 1 {
			return nil, fmt.Errorf("tensor %q has %d dimensions, expected 1-D [hidden]", t.name, len(t.dims))
		}
		v, err := f.f32Tensor(t)
		if err != nil {
			return nil, err
		}
		if cv.Hidden == -1 {
			cv.Hidden = len(v)
		} else if len(v) != cv.Hidden {
			return nil, fmt.Errorf("tensor %q has %d values, the previous directions have %d", t.name, len(v), cv.Hidden)
		}
		if err := checkFinite(v); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.name, err)
		}
		if old, dup := cv.Directions[layer]; dup {
			for i := range v {
				v[i] += old[i]
			}
		}
		cv.Directions[layer] = v
	}
	return cv, nil
}

// ReadControlVector reads a control vector GGUF file.
func ReadControlVector(path string) (*ControlVector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("steer: control vector: %w", err)
	}
	cv, err := ParseControlVector(b)
	if err != nil {
		return nil, fmt.Errorf("steer: control vector %s: %w", path, err)
	}
	return cv, nil
}

// EncodeControlVector returns the GGUF v3 bytes of cv, in the form
// llama.cpp's cvector-generator and repeng write: general.architecture
// "controlvector", controlvector.model_hint, controlvector.layer_count, and
// one F32 tensor "direction.N" per layer in increasing N.
func EncodeControlVector(cv *ControlVector) ([]byte, error) {
	layers := cv.Layers()
	if len(layers) == 0 {
		return nil, errors.New("control vector has no directions")
	}
	var tensors []ggufOut
	for _, l := range layers {
		v := cv.Directions[l]
		if l < 1 {
			return nil, fmt.Errorf("layer %d: control vectors cannot hold layers below 1 (llama.cpp never steers block 0)", l)
		}
		if len(v) != cv.Hidden || cv.Hidden <= 0 {
			return nil, fmt.Errorf("layer %d: direction has %d values, expected hidden size %d", l, len(v), cv.Hidden)
		}
		if err := checkFinite(v); err != nil {
			return nil, fmt.Errorf("layer %d: %w", l, err)
		}
		tensors = append(tensors, ggufOut{name: "direction." + strconv.Itoa(l), values: v})
	}
	kvs := []ggufKV{
		{"general.architecture", "controlvector"},
		{"controlvector.model_hint", cv.ModelHint},
		{"controlvector.layer_count", uint32(len(layers))},
	}
	return encodeGGUF(kvs, tensors)
}

// WriteControlVector writes cv as a GGUF file, atomically.
func WriteControlVector(path string, cv *ControlVector) error {
	b, err := EncodeControlVector(cv)
	if err != nil {
		return fmt.Errorf("steer: control vector %s: %w", path, err)
	}
	return WriteFileAtomic(path, func(w io.Writer) error { _, err := w.Write(b); return err })
}

// ControlVectorAdds returns an add of coef times the file's direction on
// each selected layer (all of the file's layers when layers is nil).
func ControlVectorAdds(cv *ControlVector, layers []int, coef float32) ([]Intervention, error) {
	if layers == nil {
		layers = cv.Layers()
	}
	var out []Intervention
	for _, l := range layers {
		v, ok := cv.Directions[l]
		if !ok {
			return nil, fmt.Errorf("steer: control vector has no direction for layer %d (it has %s)", l, FormatLayers(cv.Layers()))
		}
		out = append(out, Intervention{Kind: KindAdd, Layer: l, Vector: slices.Clone(v), Alpha: coef})
	}
	return out, nil
}
