package weights

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Checkpoint is the set of safetensors files of one model directory. It
// implements TensorSource: names given to Float32, Has, Info and Raw are the
// standard Hugging Face names, looked up with the checkpoint's prefix.
type Checkpoint struct {
	dir    string
	files  []*File
	where  map[string]*File // full stored name -> file
	prefix string
	closed bool
}

// OpenCheckpoint opens the weights of a model directory: model.safetensors,
// a sharded checkpoint described by model.safetensors.index.json (every
// listed file must exist and hold the tensors the index assigns to it), or
// else every *.safetensors file in the directory. A tensor name stored in two
// files is an error.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	c := &Checkpoint{dir: dir, where: map[string]*File{}}
	indexPath := filepath.Join(dir, IndexFileName)
	single := filepath.Join(dir, SingleFileName)
	var err error
	switch {
	case fileExists(indexPath):
		err = c.openIndexed(indexPath)
	case fileExists(single):
		err = c.add(single)
	default:
		err = c.openAll()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// fileExists reports whether path names an existing regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// openIndexed opens the shards named by an index file and checks the index
// against their contents.
func (c *Checkpoint) openIndexed(indexPath string) error {
	data, err := os.ReadFile(indexPath)
	if err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	var idx shardIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("weights: %s: expected {\"weight_map\": {tensor: file}}: %w", indexPath, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("weights: %s: weight_map is empty or missing", indexPath)
	}
	fileSet := map[string]bool{}
	for name, file := range idx.WeightMap {
		if file == "" || filepath.Base(file) != file {
			return fmt.Errorf("weights: %s: tensor %q: file %q must be a plain file name in the same directory", indexPath, name, file)
		}
		fileSet[file] = true
	}
	files := make([]string, 0, len(fileSet))
	for f := range fileSet {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		p := filepath.Join(c.dir, f)
		if !fileExists(p) {
			return fmt.Errorf("weights: %s: shard %q listed in the index does not exist", indexPath, p)
		}
		if err := c.add(p); err != nil {
			return err
		}
	}
	for name, file := range idx.WeightMap {
		f, ok := c.where[name]
		if !ok {
			return fmt.Errorf("weights: %s: tensor %q: index says %s, but no shard holds it", indexPath, name, file)
		}
		if filepath.Base(f.Path()) != file {
			return fmt.Errorf("weights: %s: tensor %q: index says %s, but it is in %s", indexPath, name, file, filepath.Base(f.Path()))
		}
	}
	for name, f := range c.where {
		if _, ok := idx.WeightMap[name]; !ok {
			return fmt.Errorf("weights: %s: tensor %q in %s is not listed in the index", indexPath, name, filepath.Base(f.Path()))
		}
	}
	return nil
}

// openAll opens every *.safetensors file of the directory.
func (c *Checkpoint) openAll() error {
	paths, err := filepath.Glob(filepath.Join(c.dir, "*.safetensors"))
	if err != nil {
		return fmt.Errorf("weights: %s: %w", c.dir, err)
	}
	if len(paths) == 0 {
		if _, err := os.Stat(c.dir); err != nil {
			return fmt.Errorf("weights: %w", err)
		}
		return fmt.Errorf("weights: %s: no %s, %s or *.safetensors files", c.dir, SingleFileName, IndexFileName)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := c.add(p); err != nil {
			return err
		}
	}
	return nil
}

// add opens one file and registers its tensors.
func (c *Checkpoint) add(path string) error {
	f, err := OpenFile(path)
	if err != nil {
		return err
	}
	c.files = append(c.files, f)
	for _, t := range f.parsed.tensors {
		if prev, dup := c.where[t.Name]; dup {
			return fmt.Errorf("weights: %s: tensor %q is stored in both %s and %s", c.dir, t.Name, filepath.Base(prev.Path()), filepath.Base(path))
		}
		c.where[t.Name] = f
	}
	return nil
}

// Dir returns the model directory.
func (c *Checkpoint) Dir() string { return c.dir }

// SetPrefix sets the prefix prepended to standard names (Config.TensorPrefix).
// With the prefix "language_model." a name "model.X" is also found under
// "model.language_model.X", the layout newer transformers versions write for
// multimodal models.
func (c *Checkpoint) SetPrefix(prefix string) { c.prefix = prefix }

// Prefix returns the prefix set by SetPrefix.
func (c *Checkpoint) Prefix() string { return c.prefix }

// resolve maps a standard name to the stored name and its file.
func (c *Checkpoint) resolve(name string) (string, *File, bool) {
	full := c.prefix + name
	if f, ok := c.where[full]; ok {
		return full, f, true
	}
	if c.prefix == "language_model." {
		var alt string
		if rest, ok := strings.CutPrefix(name, "model."); ok {
			alt = "model.language_model." + rest
		} else if name == "lm_head.weight" {
			alt = name
		}
		if f, ok := c.where[alt]; ok && alt != "" {
			return alt, f, true
		}
	}
	return full, nil, false
}

// Has reports whether the checkpoint holds the tensor with this standard name.
func (c *Checkpoint) Has(name string) bool {
	_, _, ok := c.resolve(name)
	return ok
}

// Info describes the tensor with this standard name.
func (c *Checkpoint) Info(name string) (TensorInfo, error) {
	full, f, ok := c.resolve(name)
	if !ok {
		return TensorInfo{}, c.notFound(full)
	}
	info, _ := f.Info(full)
	return info, nil
}

// notFound is the error for a missing tensor.
func (c *Checkpoint) notFound(full string) error {
	return fmt.Errorf("weights: %s: tensor %q: %w", c.dir, full, ErrTensorNotFound)
}

// ErrTensorNotFound is wrapped by the errors for tensors a source lacks.
var ErrTensorNotFound = errors.New("tensor not found")

// Raw returns a zero-copy view of the tensor's stored bytes and its description.
func (c *Checkpoint) Raw(name string) ([]byte, TensorInfo, error) {
	full, f, ok := c.resolve(name)
	if !ok {
		return nil, TensorInfo{}, c.notFound(full)
	}
	return f.Bytes(full)
}

// Float32 returns the tensor converted to float32 and its shape; aligned F32
// tensors are views of the mapped file and must not be modified.
func (c *Checkpoint) Float32(name string) ([]float32, []int, error) {
	full, f, ok := c.resolve(name)
	if !ok {
		return nil, nil, c.notFound(full)
	}
	return f.Float32(full)
}

// Names returns every stored tensor name (with any prefix), sorted.
func (c *Checkpoint) Names() []string {
	out := make([]string, 0, len(c.where))
	for n := range c.where {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Files returns the paths of the opened safetensors files.
func (c *Checkpoint) Files() []string {
	out := make([]string, len(c.files))
	for i, f := range c.files {
		out[i] = f.Path()
	}
	return out
}

// TotalBytes returns the total size of all tensor data in the checkpoint.
func (c *Checkpoint) TotalBytes() int64 {
	var n int64
	for _, f := range c.files {
		for _, t := range f.parsed.tensors {
			n += t.Length
		}
	}
	return n
}

// Span returns a zero-copy view of the stored bytes of the tensors with
// these standard names when they lie back to back in one file, in this
// order (so the view is their concatenation), and false otherwise (a
// missing tensor, different files, a gap, another order, or a closed
// checkpoint). Like Raw, the view is valid until Close, or until the
// release of a Retain, and must not be written to.
func (c *Checkpoint) Span(names ...string) ([]byte, bool) {
	if c.closed || len(names) == 0 {
		return nil, false
	}
	var file *File
	var first, end int64
	for i, name := range names {
		full, f, ok := c.resolve(name)
		if !ok || (file != nil && f != file) {
			return nil, false
		}
		info, _ := f.Info(full)
		if i == 0 {
			file, first = f, info.Offset
		} else if info.Offset != end {
			return nil, false
		}
		end = info.Offset + info.Length
	}
	start, stop := file.parsed.dataStart+first, file.parsed.dataStart+end
	return file.data[start:stop:stop], true
}

// Retain keeps every file of the checkpoint mapped until release is called,
// even after Close, so that views of it (Raw, Span, aligned Float32) stay
// valid for a holder that outlives the checkpoint: an engine model that
// reads its weights where they lie. Close still closes the checkpoint for
// every other use. release may be called more than once; only the first
// call counts. Retain fails on a closed checkpoint.
func (c *Checkpoint) Retain() (release func() error, err error) {
	if c.closed {
		return nil, fmt.Errorf("weights: %s: checkpoint is closed", c.dir)
	}
	files := slices.Clone(c.files)
	for i, f := range files {
		if err := f.retain(); err != nil {
			for _, g := range files[:i] {
				_ = g.release()
			}
			return nil, err
		}
	}
	var once sync.Once
	return func() error {
		var first error
		once.Do(func() {
			for _, f := range files {
				if err := f.release(); err != nil && first == nil {
					first = err
				}
			}
		})
		return first
	}, nil
}

// Close closes every file; their mappings are unmapped unless retained (see
// Retain). Views returned earlier become invalid when their file is
// unmapped.
func (c *Checkpoint) Close() error {
	c.closed = true
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	c.files = nil
	c.where = map[string]*File{}
	return first
}
