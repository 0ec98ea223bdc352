package weights

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"unicode/utf8"
)

// TensorInfo describes one tensor of a safetensors file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Offset is the tensor's first byte relative to the start of the data
	// section (the header's data_offsets[0]); Length is its size in bytes.
	Offset, Length int64
}

// NumElements returns the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// maxHeaderBytes bounds the JSON header, as the reference implementation does.
const maxHeaderBytes = 100 << 20

// metadataKey is the reserved header entry that holds string metadata.
const metadataKey = "__metadata__"

// parsedFile is the result of validating a whole safetensors file image.
type parsedFile struct {
	tensors   []TensorInfo // sorted by Offset
	metadata  map[string]string
	dataStart int64 // 8 + header length
}

// parseSafetensors validates a complete safetensors file image (the 8-byte
// header length, the JSON header and the extent of the data section) and
// returns its tensors. source names the file in errors.
func parseSafetensors(data []byte, source string) (*parsedFile, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("weights: %s: file is %d bytes, expected at least 8 (header length)", source, len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("weights: %s: header length %d exceeds the %d bytes after the length field", source, n, len(data)-8)
	}
	if n > maxHeaderBytes {
		return nil, fmt.Errorf("weights: %s: header length %d exceeds the limit of %d bytes", source, n, maxHeaderBytes)
	}
	dataStart := int64(8 + n)
	tensors, meta, err := parseHeader(data[8:dataStart], int64(len(data))-dataStart, source)
	if err != nil {
		return nil, err
	}
	return &parsedFile{tensors: tensors, metadata: meta, dataStart: dataStart}, nil
}

// headerEntry is one tensor's JSON object in the header.
type headerEntry struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

// parseHeader validates the JSON header of a safetensors file whose data
// section is dataLen bytes long. Tensors come back sorted by offset.
func parseHeader(header []byte, dataLen int64, source string) ([]TensorInfo, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, fmt.Errorf("weights: %s: header is not valid UTF-8", source)
	}
	trimmed := bytes.TrimRight(header, " ")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("weights: %s: header is not a JSON object (expected it to start with '{')", source)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("weights: %s: header JSON: %w", source, err)
	}
	var tensors []TensorInfo
	var meta map[string]string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("weights: %s: header JSON: %w", source, err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("weights: %s: header JSON: expected a string key, got %v", source, tok)
		}
		if seen[name] {
			return nil, nil, fmt.Errorf("weights: %s: header: key %q appears twice", source, name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("weights: %s: header JSON: value of %q: %w", source, name, err)
		}
		if name == metadataKey {
			if err := json.Unmarshal(raw, &meta); err != nil {
				return nil, nil, fmt.Errorf("weights: %s: header: %s: expected an object of string to string: %w", source, metadataKey, err)
			}
			continue
		}
		info, err := parseEntry(name, raw, dataLen, source)
		if err != nil {
			return nil, nil, err
		}
		tensors = append(tensors, info)
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, nil, fmt.Errorf("weights: %s: header JSON: %w", source, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("weights: %s: header JSON: unexpected content after the closing brace", source)
	}
	if err := checkOverlaps(tensors, source); err != nil {
		return nil, nil, err
	}
	return tensors, meta, nil
}

// parseEntry validates one tensor's header object.
func parseEntry(name string, raw json.RawMessage, dataLen int64, source string) (TensorInfo, error) {
	var e headerEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: expected {dtype, shape, data_offsets}: %w", source, name, err)
	}
	if e.DType == nil || e.Shape == nil || e.DataOffsets == nil {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: expected fields dtype, shape and data_offsets", source, name)
	}
	dt := DType(*e.DType)
	if !dt.Known() {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: unknown dtype %q (expected one of F32, BF16, F16, F64, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2)", source, name, dt)
	}
	offs := *e.DataOffsets
	if len(offs) != 2 {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: data_offsets has %d entries, expected 2", source, name, len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < begin || end > dataLen {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: data_offsets [%d, %d] outside the %d-byte data section", source, name, begin, end, dataLen)
	}
	shape := make([]int, len(*e.Shape))
	elems := int64(1)
	for i, d := range *e.Shape {
		if d < 0 {
			return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: shape %v has invalid dimension %d", source, name, *e.Shape, d)
		}
		shape[i] = int(d)
		if d != 0 && elems > math.MaxInt64/8/d {
			return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: shape %v is too large", source, name, *e.Shape)
		}
		elems *= d
	}
	if want := elems * int64(dt.Size()); want != end-begin {
		return TensorInfo{}, fmt.Errorf("weights: %s: tensor %q: shape %v of %s needs %d bytes, data_offsets [%d, %d] give %d", source, name, shape, dt, want, begin, end, end-begin)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, Offset: begin, Length: end - begin}, nil
}

// checkOverlaps sorts tensors by offset and rejects any two whose byte ranges
// intersect (empty tensors never overlap).
func checkOverlaps(tensors []TensorInfo, source string) error {
	sort.Slice(tensors, func(i, j int) bool {
		if tensors[i].Offset != tensors[j].Offset {
			return tensors[i].Offset < tensors[j].Offset
		}
		return tensors[i].Name < tensors[j].Name
	})
	var prevEnd int64
	prev := ""
	for _, t := range tensors {
		if t.Length == 0 {
			continue
		}
		if t.Offset < prevEnd {
			return fmt.Errorf("weights: %s: tensor %q (bytes %d..%d) overlaps tensor %q (ending at %d)", source, t.Name, t.Offset, t.Offset+t.Length, prev, prevEnd)
		}
		prevEnd, prev = t.Offset+t.Length, t.Name
	}
	return nil
}
