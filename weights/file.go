package weights

import (
	"fmt"
	"os"
	"sync"
)

// File is a safetensors file mapped read-only into memory. Slices returned by
// Bytes and Float32 alias the mapping: they stay valid until Close (or, for
// a holder of Checkpoint.Retain, until its release) and must not be written
// to.
type File struct {
	path     string
	data     []byte // the whole mapped file; nil for an empty mapping
	parsed   *parsedFile
	byName   map[string]int
	readOnly bool // data is a mapping to unmap once no one holds it
	closed   bool

	mu   sync.Mutex // guards refs and the unmapping
	refs int        // holders of the mapping: the File until Close, plus each retain
}

// OpenFile maps a safetensors file and validates its header and the extent of
// every tensor.
func OpenFile(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("weights: %s: not a regular file", path)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("weights: %s: file is %d bytes, expected at least 8 (header length)", path, size)
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("weights: %s: file of %d bytes is too large to map", path, size)
	}
	data, err := mapFile(int(fd.Fd()), int(size))
	if err != nil {
		return nil, fmt.Errorf("weights: %s: %w", path, err)
	}
	f, err := newFile(path, data)
	if err != nil {
		_ = unmapFile(data)
		return nil, err
	}
	f.readOnly, f.refs = true, 1
	return f, nil
}

// newFile validates an in-memory file image. The File does not unmap data.
func newFile(path string, data []byte) (*File, error) {
	p, err := parseSafetensors(data, path)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, data: data, parsed: p, byName: make(map[string]int, len(p.tensors))}
	for i, t := range p.tensors {
		f.byName[t.Name] = i
	}
	return f, nil
}

// Path returns the file's path as given to OpenFile.
func (f *File) Path() string { return f.path }

// Tensors returns every tensor of the file in the order of their data.
func (f *File) Tensors() []TensorInfo {
	out := make([]TensorInfo, len(f.parsed.tensors))
	copy(out, f.parsed.tensors)
	return out
}

// Metadata returns the header's __metadata__ map (nil when absent).
func (f *File) Metadata() map[string]string {
	if f.parsed.metadata == nil {
		return nil
	}
	out := make(map[string]string, len(f.parsed.metadata))
	for k, v := range f.parsed.metadata {
		out[k] = v
	}
	return out
}

// Info returns the description of the named tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.parsed.tensors[i], true
}

// Bytes returns a zero-copy view of the named tensor's raw little-endian
// bytes and its description.
func (f *File) Bytes(name string) ([]byte, TensorInfo, error) {
	if f.closed {
		return nil, TensorInfo{}, fmt.Errorf("weights: %s: file is closed", f.path)
	}
	info, ok := f.Info(name)
	if !ok {
		return nil, TensorInfo{}, fmt.Errorf("weights: %s: tensor %q not found", f.path, name)
	}
	start := f.parsed.dataStart + info.Offset
	return f.data[start : start+info.Length : start+info.Length], info, nil
}

// Float32 returns the named tensor as float32 values (a view of the mapping
// for aligned F32 data, a new slice otherwise) and its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	b, info, err := f.Bytes(name)
	if err != nil {
		return nil, nil, err
	}
	vals, err := ToFloat32(info.DType, b)
	if err != nil {
		return nil, nil, fmt.Errorf("weights: %s: tensor %q: %w", f.path, name, err)
	}
	return vals, append([]int(nil), info.Shape...), nil
}

// Has reports whether the file holds the named tensor.
func (f *File) Has(name string) bool {
	_, ok := f.byName[name]
	return ok
}

// Close closes the file: its tensors can no longer be looked up, and the
// mapping is unmapped unless retained (see retain), in which case the last
// release unmaps it. Views returned earlier become invalid then.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.parsed = &parsedFile{}
	f.byName = nil
	return f.dropLocked()
}

// retain keeps the mapping alive after Close until a matching release.
func (f *File) retain() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("weights: %s: file is closed", f.path)
	}
	f.refs++
	return nil
}

// release ends one retain; the last holder unmaps the file.
func (f *File) release() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropLocked()
}

// dropLocked ends one hold of the mapping and unmaps it after the last.
// Callers hold f.mu.
func (f *File) dropLocked() error {
	f.refs--
	if f.refs > 0 || f.data == nil {
		return nil
	}
	data := f.data
	f.data = nil
	if !f.readOnly {
		return nil
	}
	if err := unmapFile(data); err != nil {
		return fmt.Errorf("weights: %s: munmap: %w", f.path, err)
	}
	return nil
}
