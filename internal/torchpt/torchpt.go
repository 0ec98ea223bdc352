// Package torchpt reads files written by PyTorch's torch.save (the zip
// format of PyTorch >= 1.6) into plain Go values, without Python and without
// executing anything from the pickle.
//
// Only data is accepted: the pickle's opcodes are checked before unpickling
// (no object-building opcodes), and the only globals are the ones torch.save
// writes for tensors: torch._utils._rebuild_tensor_v2, the float32, bfloat16
// and float16 storage classes, and collections.OrderedDict (backward hooks).
// Anything else is an error naming the file and the global.
//
// Values come back as: nil, bool, int64, *big.Int, float64, string, []byte,
// List, Tuple, *Dict (dict and OrderedDict, in order) and *Tensor.
package torchpt

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
	"github.com/x448/float16"
)

// Size limits: a data.pkl and a tensor larger than these are refused.
const (
	maxPickleBytes  = 64 << 20
	maxTensorValues = 1 << 31
	maxDepth        = 512
	// maxExpansion bounds how many values a view may hold per stored
	// element (views with stride 0 repeat elements), so that the work is
	// bounded by the file's size.
	maxExpansion = 256
)

// Tensor is a tensor read from a torch.save file, converted to float32
// (exact for all three supported dtypes) in row-major order.
type Tensor struct {
	DType string // "float32", "bfloat16" or "float16": the stored dtype
	Shape []int
	Data  []float32
}

// List is a Python list.
type List []any

// Tuple is a Python tuple.
type Tuple []any

// Item is one key/value pair of a Dict.
type Item struct {
	Key   any
	Value any
}

// Dict is a Python dict or OrderedDict, in insertion order.
type Dict struct {
	Items []Item
}

// Get returns the value stored under a string key.
func (d *Dict) Get(key string) (any, bool) {
	for _, it := range d.Items {
		if k, ok := it.Key.(string); ok && k == key {
			return it.Value, true
		}
	}
	return nil, false
}

// Keys returns the dict's string keys in order (other keys are skipped).
func (d *Dict) Keys() []string {
	var out []string
	for _, it := range d.Items {
		if k, ok := it.Key.(string); ok {
			out = append(out, k)
		}
	}
	return out
}

// dtype is a storage element type.
type dtype struct {
	name string
	size int
}

var storageClasses = map[string]dtype{
	"FloatStorage":    {"float32", 4},
	"BFloat16Storage": {"bfloat16", 2},
	"HalfStorage":     {"float16", 2},
}

func allowedGlobal(module, name string) bool {
	switch module {
	case "torch":
		_, ok := storageClasses[name]
		return ok
	case "torch._utils":
		return name == "_rebuild_tensor_v2"
	case "collections":
		return name == "OrderedDict"
	}
	return false
}

func forbiddenGlobal(module, name string) error {
	var storages []string
	for n := range storageClasses {
		storages = append(storages, "torch."+n)
	}
	sort.Strings(storages)
	return fmt.Errorf("forbidden global %s.%s: only torch._utils._rebuild_tensor_v2, %s and collections.OrderedDict are allowed (a torch.save of tensors and plain data)",
		module, name, strings.Join(storages, ", "))
}

// Load reads a torch.save file.
func Load(file string) (any, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("torchpt: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("torchpt: %w", err)
	}
	return Parse(file, f, st.Size())
}

// Parse reads a torch.save archive of size bytes from r; name is used in
// errors.
func Parse(name string, r io.ReaderAt, size int64) (any, error) {
	v, err := parse(name, r, size)
	if err != nil {
		return nil, fmt.Errorf("torchpt: %s: %w", name, err)
	}
	return v, nil
}

// archive is an opened torch.save zip.
type archive struct {
	prefix   string // "<name>/" holding data.pkl
	records  map[string]*zip.File
	size     int64
	storages map[string]*storage
}

func parse(name string, r io.ReaderAt, size int64) (any, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("not a torch.save zip archive (PyTorch >= 1.6 format): %w", err)
	}
	a := &archive{records: map[string]*zip.File{}, size: size, storages: map[string]*storage{}}
	var pkl *zip.File
	for _, f := range zr.File {
		a.records[f.Name] = f
		if path.Base(f.Name) == "data.pkl" && strings.Count(f.Name, "/") == 1 {
			if pkl != nil {
				return nil, fmt.Errorf("two data.pkl records (%s, %s), expected one", pkl.Name, f.Name)
			}
			pkl = f
		}
	}
	if pkl == nil {
		return nil, fmt.Errorf("no <archive>/data.pkl record: not a torch.save file")
	}
	a.prefix = path.Dir(pkl.Name) + "/"
	if bo, ok := a.records[a.prefix+"byteorder"]; ok {
		b, err := readRecord(bo, 16)
		if err != nil {
			return nil, fmt.Errorf("record %s: %w", bo.Name, err)
		}
		if s := strings.TrimSpace(string(b)); s != "little" {
			return nil, fmt.Errorf("record %s says %q, expected \"little\" (big-endian storages are not supported)", bo.Name, s)
		}
	}
	data, err := readRecord(pkl, maxPickleBytes)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", pkl.Name, err)
	}
	return a.unpickle(data)
}

// readRecord reads a whole zip record of at most limit bytes.
func readRecord(f *zip.File, limit int64) ([]byte, error) {
	if f.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, expected at most %d", f.UncompressedSize64, limit)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return b, nil
}

// unpickle checks and runs the pickle of data.pkl.
func (a *archive) unpickle(data []byte) (v any, err error) {
	if err := scan(data); err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("data.pkl: malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(data))
	u.FindClass = a.findClass
	u.PersistentLoad = a.persistentLoad
	raw, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("data.pkl: %w", err)
	}
	return convert(raw, 0)
}

// storageClass is the value of a torch.*Storage global.
type storageClass struct{ dt dtype }

// storage is a loaded storage record.
type storage struct {
	dt  dtype
	key string
	raw []byte
}

// rebuildTensor is torch._utils._rebuild_tensor_v2.
type rebuildTensor struct{}

func (a *archive) findClass(module, name string) (any, error) {
	if !allowedGlobal(module, name) {
		return nil, forbiddenGlobal(module, name)
	}
	if module == "torch" {
		return storageClass{storageClasses[name]}, nil
	}
	return rebuildTensor{}, nil // collections.OrderedDict is gopickle's own
}

// persistentLoad resolves ('storage', class, key, location, numel).
func (a *archive) persistentLoad(id any) (any, error) {
	t, ok := id.(*types.Tuple)
	if !ok || t.Len() != 5 {
		return nil, fmt.Errorf("persistent id %v: expected ('storage', storage class, key, location, numel)", id)
	}
	if s, _ := t.Get(0).(string); s != "storage" {
		return nil, fmt.Errorf("persistent id of type %v, expected 'storage'", t.Get(0))
	}
	cls, ok := t.Get(1).(storageClass)
	if !ok {
		return nil, fmt.Errorf("persistent id %v: second element is not a torch storage class", id)
	}
	key, ok := t.Get(2).(string)
	if !ok {
		return nil, fmt.Errorf("persistent id %v: key is not a string", id)
	}
	numel, ok := t.Get(4).(int)
	if !ok || numel < 0 || numel > maxTensorValues {
		return nil, fmt.Errorf("storage %q: element count %v, expected an integer in [0, %d]", key, t.Get(4), maxTensorValues)
	}
	if s, ok := a.storages[key]; ok {
		if s.dt != cls.dt || len(s.raw) != numel*s.dt.size {
			return nil, fmt.Errorf("storage %q is referenced as %d %s and as %d %s", key, len(s.raw)/s.dt.size, s.dt.name, numel, cls.dt.name)
		}
		return s, nil
	}
	rec, ok := a.records[a.prefix+"data/"+key]
	if !ok {
		return nil, fmt.Errorf("storage %q: no record %sdata/%s", key, a.prefix, key)
	}
	want := int64(numel) * int64(cls.dt.size)
	if rec.Method != zip.Store {
		return nil, fmt.Errorf("record %s is compressed (zip method %d); torch.save stores storages uncompressed", rec.Name, rec.Method)
	}
	if rec.UncompressedSize64 != uint64(want) || want > a.size {
		return nil, fmt.Errorf("record %s holds %d bytes, expected %d (%d %s values): truncated or mismatched storage",
			rec.Name, rec.UncompressedSize64, want, numel, cls.dt.name)
	}
	raw, err := readRecord(rec, want)
	if err != nil {
		return nil, fmt.Errorf("record %s: %w", rec.Name, err)
	}
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("record %s holds %d bytes, expected %d (%d %s values): truncated storage", rec.Name, len(raw), want, numel, cls.dt.name)
	}
	s := &storage{dt: cls.dt, key: key, raw: raw}
	a.storages[key] = s
	return s, nil
}

// Call rebuilds a tensor from (storage, storage_offset, size, stride,
// requires_grad, backward_hooks[, metadata]).
func (rebuildTensor) Call(args ...any) (any, error) {
	if len(args) < 6 || len(args) > 7 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %d arguments, expected 6 or 7", len(args))
	}
	s, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: first argument is %T, expected a storage", args[0])
	}
	offset, ok := args[1].(int)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: storage offset %v, expected a non-negative integer", args[1])
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(stride) != len(shape) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: size %v and stride %v have different ranks", shape, stride)
	}
	return s.gather(offset, shape, stride)
}

func intTuple(v any, what string) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %s is %T, expected a tuple of integers", what, v)
	}
	out := make([]int, t.Len())
	for i := range out {
		n, ok := t.Get(i).(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("_rebuild_tensor_v2: %s %v, expected non-negative integers", what, *t)
		}
		out[i] = n
	}
	return out, nil
}

// gather reads the strided view (offset, shape, stride) of s in row-major
// order.
func (s *storage) gather(offset int, shape, stride []int) (*Tensor, error) {
	numel := len(s.raw) / s.dt.size
	count, last := 1, offset
	for i, n := range shape {
		if n == 0 {
			count = 0
			break
		}
		if limit := max(numel, 1) * maxExpansion; count > limit/n {
			return nil, fmt.Errorf("tensor of size %v has more than %d values, %d per element of its storage %q (%d)", shape, limit, maxExpansion, s.key, numel)
		}
		count *= n
		if stride[i] > 0 && (n-1) > (math.MaxInt32-last)/stride[i] {
			return nil, fmt.Errorf("tensor view (offset %d, size %v, stride %v) overflows", offset, shape, stride)
		}
		last += (n - 1) * stride[i]
	}
	if count > 0 && last >= numel {
		return nil, fmt.Errorf("tensor view (offset %d, size %v, stride %v) reaches element %d of storage %q, which has %d",
			offset, shape, stride, last, s.key, numel)
	}
	t := &Tensor{DType: s.dt.name, Shape: shape, Data: make([]float32, count)}
	idx := make([]int, len(shape))
	for k := range count {
		e := offset
		for i, j := range idx {
			e += j * stride[i]
		}
		t.Data[k] = s.at(e)
		for i := len(idx) - 1; i >= 0; i-- {
			if idx[i]++; idx[i] < shape[i] {
				break
			}
			idx[i] = 0
		}
	}
	return t, nil
}

// at decodes element e (little-endian).
func (s *storage) at(e int) float32 {
	b := s.raw[e*s.dt.size:]
	switch s.dt.name {
	case "float32":
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case "bfloat16":
		return math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16)
	default:
		return float16.Frombits(binary.LittleEndian.Uint16(b)).Float32()
	}
}

// convert turns gopickle's values into this package's.
func convert(v any, depth int) (any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("data.pkl: values nested deeper than %d (or a cycle)", maxDepth)
	}
	switch x := v.(type) {
	case nil, bool, float64, string, *big.Int, *Tensor:
		return x, nil
	case int:
		return int64(x), nil
	case []byte:
		return x, nil
	case *types.Tuple:
		out, err := convertAll(*x, depth)
		return Tuple(out), err
	case *types.List:
		out, err := convertAll(*x, depth)
		return List(out), err
	case *types.Dict:
		d := &Dict{}
		for _, e := range *x {
			if err := d.add(e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *types.OrderedDict:
		d := &Dict{}
		for el := x.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			if err := d.add(e.Key, e.Value, depth); err != nil {
				return nil, err
			}
		}
		return d, nil
	case *storage:
		return nil, fmt.Errorf("data.pkl: a bare storage %q outside a tensor, expected tensors only", x.key)
	case *types.ObjectClass:
		return nil, fmt.Errorf("data.pkl: %w", forbiddenGlobal("__builtin__", "object"))
	case *types.Reconstructor:
		return nil, fmt.Errorf("data.pkl: %w", forbiddenGlobal("copy_reg", "_reconstructor"))
	case storageClass, rebuildTensor, *types.OrderedDictClass:
		return nil, fmt.Errorf("data.pkl: a class or function (%T) as a value, expected data", x)
	}
	return nil, fmt.Errorf("data.pkl: unsupported value of type %T, expected tensors and plain data", v)
}

func convertAll(xs []any, depth int) ([]any, error) {
	out := make([]any, len(xs))
	for i, x := range xs {
		c, err := convert(x, depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func (d *Dict) add(k, v any, depth int) error {
	ck, err := convert(k, depth+1)
	if err != nil {
		return err
	}
	cv, err := convert(v, depth+1)
	if err != nil {
		return err
	}
	d.Items = append(d.Items, Item{ck, cv})
	return nil
}
