package weights

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Tensor is a named tensor held in memory, ready to be written.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte // little-endian, row-major; len == product(Shape) * DType.Size()
}

// Info returns the tensor's description (Offset is 0).
func (t Tensor) Info() TensorInfo {
	return TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape, Length: int64(len(t.Data))}
}

// NewF32Tensor builds an F32 tensor from values.
func NewF32Tensor(name string, shape []int, values []float32) (Tensor, error) {
	return NewFloatTensor(name, F32, shape, values)
}

// NewFloatTensor builds a tensor of type dt (F32, BF16 or F16) from values,
// checking that the shape holds exactly len(values) elements.
func NewFloatTensor(name string, dt DType, shape []int, values []float32) (Tensor, error) {
	n, err := shapeElements(shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("weights: tensor %q: %w", name, err)
	}
	if n != int64(len(values)) {
		return Tensor{}, fmt.Errorf("weights: tensor %q: shape %v holds %d elements, got %d values", name, shape, n, len(values))
	}
	data, err := EncodeFloat32(dt, values)
	if err != nil {
		return Tensor{}, fmt.Errorf("weights: tensor %q: %w", name, err)
	}
	return Tensor{Name: name, DType: dt, Shape: append([]int(nil), shape...), Data: data}, nil
}

// shapeElements returns the product of a shape, rejecting negative dimensions.
func shapeElements(shape []int) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// WriteFile writes tensors and metadata as a safetensors file at path,
// atomically: the data goes to a temporary file in the same directory, which
// is synced and then renamed over path.
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	infos := make([]TensorInfo, len(tensors))
	byName := make(map[string][]byte, len(tensors))
	for i, t := range tensors {
		infos[i] = t.Info()
		byName[t.Name] = t.Data
	}
	w, err := NewStreamWriter(path, infos, metadata)
	if err != nil {
		return err
	}
	for _, info := range w.Order() {
		if err := w.WriteTensor(info.Name, byName[info.Name]); err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

// StreamWriter writes a safetensors file tensor by tensor, so that large
// models never need to be held in memory at once. Tensors must be written in
// the order given by Order. Close finishes the file atomically; Abort removes
// the temporary file.
type StreamWriter struct {
	path    string
	tmp     *os.File
	buf     *bufio.Writer
	order   []TensorInfo
	next    int   // index in order of the tensor being written
	written int64 // bytes of order[next] written so far
	done    bool
}

// writeChunk is the size of the StreamWriter's writes. Written 4 MiB or more at a time, a file
// lands in the page cache in large folios, which a later mapping can map 2 MiB at a time (see
// mapFile); written 1 MiB at a time, it lands in 4 KiB folios, and a model mapped from it
// decoded at 0.90 to 0.93 of a heap copy until the pages left the cache (measured on ext4,
// Linux 6.18; docs/cpu-backend.md).
const writeChunk = 8 << 20

// NewStreamWriter validates the tensor descriptions (Name, DType, Shape;
// Offset and Length are computed), lays out the file and writes its header
// to a temporary file beside path.
func NewStreamWriter(path string, tensors []TensorInfo, metadata map[string]string) (*StreamWriter, error) {
	order, header, err := layoutHeader(tensors, metadata)
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	// CreateTemp makes the file private; a model file is as readable as any.
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	w := &StreamWriter{path: path, tmp: tmp, buf: bufio.NewWriterSize(tmp, writeChunk), order: order}
	var lenField [8]byte
	binary.LittleEndian.PutUint64(lenField[:], uint64(len(header)))
	if _, err := w.buf.Write(lenField[:]); err != nil {
		w.Abort()
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	if _, err := w.buf.Write(header); err != nil {
		w.Abort()
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	return w, nil
}

// Order returns the tensors in the order their data must be written, with
// their offsets in the data section.
func (w *StreamWriter) Order() []TensorInfo {
	return append([]TensorInfo(nil), w.order...)
}

// WriteTensor writes the whole data of the next tensor in Order.
func (w *StreamWriter) WriteTensor(name string, data []byte) error {
	if w.written != 0 {
		return fmt.Errorf("weights: %s: tensor %q: WriteTensor after a partial write", w.path, name)
	}
	if w.next < len(w.order) && w.order[w.next].Name == name && int64(len(data)) != w.order[w.next].Length {
		want := w.order[w.next]
		return fmt.Errorf("weights: %s: tensor %q: got %d bytes, expected %d for %s %v", w.path, name, len(data), want.Length, want.DType, want.Shape)
	}
	return w.WriteTensorPart(name, data)
}

// WriteTensorPart writes the next part of the current tensor's data; the
// writer moves to the next tensor in Order once all its bytes are written.
func (w *StreamWriter) WriteTensorPart(name string, part []byte) error {
	if w.done {
		return fmt.Errorf("weights: %s: write after close", w.path)
	}
	if w.next >= len(w.order) {
		return fmt.Errorf("weights: %s: tensor %q: all %d tensors already written", w.path, name, len(w.order))
	}
	want := w.order[w.next]
	if want.Name != name {
		return fmt.Errorf("weights: %s: tensor %q written out of order, expected %q", w.path, name, want.Name)
	}
	if w.written+int64(len(part)) > want.Length {
		return fmt.Errorf("weights: %s: tensor %q: %d bytes written, more than the %d expected for %s %v", w.path, name, w.written+int64(len(part)), want.Length, want.DType, want.Shape)
	}
	if _, err := w.buf.Write(part); err != nil {
		return fmt.Errorf("weights: %s: tensor %q: %w", w.path, name, err)
	}
	w.written += int64(len(part))
	if w.written == want.Length {
		w.next++
		w.written = 0
	}
	return nil
}

// Close checks that every tensor was written, syncs the temporary file and
// renames it to the final path.
func (w *StreamWriter) Close() error {
	if w.done {
		return nil
	}
	if w.next != len(w.order) {
		name := w.order[w.next].Name
		w.Abort()
		return fmt.Errorf("weights: %s: closed after %d of %d tensors (next was %q)", w.path, w.next, len(w.order), name)
	}
	w.done = true
	err := w.buf.Flush()
	if err == nil {
		err = w.tmp.Sync()
	}
	if cerr := w.tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.tmp.Name())
		return fmt.Errorf("weights: %s: %w", w.path, err)
	}
	syncDir(filepath.Dir(w.path))
	return nil
}

// Abort discards the partially written file.
func (w *StreamWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.tmp.Close()
	os.Remove(w.tmp.Name())
}

// syncDir makes a rename durable; failures are ignored (not all file systems
// support syncing directories).
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// layoutHeader orders tensors (larger element size first, then by name, as
// the Python library does, so every tensor stays aligned), assigns offsets and
// encodes the JSON header padded with spaces to a multiple of 8 bytes.
func layoutHeader(tensors []TensorInfo, metadata map[string]string) ([]TensorInfo, []byte, error) {
	order := make([]TensorInfo, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		if t.Name == "" || t.Name == metadataKey {
			return nil, nil, fmt.Errorf("tensor name %q is not allowed", t.Name)
		}
		if seen[t.Name] {
			return nil, nil, fmt.Errorf("tensor %q appears twice", t.Name)
		}
		seen[t.Name] = true
		if !t.DType.Known() {
			return nil, nil, fmt.Errorf("tensor %q: unknown dtype %q", t.Name, t.DType)
		}
		n, err := shapeElements(t.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		order[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: append([]int(nil), t.Shape...), Length: n * int64(t.DType.Size())}
	}
	sort.Slice(order, func(i, j int) bool {
		si, sj := order[i].DType.Size(), order[j].DType.Size()
		if si != sj {
			return si > sj
		}
		return order[i].Name < order[j].Name
	})
	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		h.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
	}
	var off int64
	for i := range order {
		order[i].Offset = off
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, order[i].Name)
		h.WriteString(`:{"dtype":"`)
		h.WriteString(string(order[i].DType))
		h.WriteString(`","shape":[`)
		for j, d := range order[i].Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.FormatInt(off, 10))
		h.WriteByte(',')
		off += order[i].Length
		h.WriteString(strconv.FormatInt(off, 10))
		h.WriteString(`]}`)
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	return order, h.Bytes(), nil
}

// writeJSONString appends s as a JSON string literal.
func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // marshalling a string cannot fail
	b.Write(enc)
}
