// Package cpubackend is tether's own GoMLX backend for the CPU, registered as
// "cpu". It implements only the operations tether's step graphs use (see
// docs/cpu-backend.md) and runs a compiled graph as a linear list of
// operations over pooled buffers: matrix products go to blocked kernels on a
// persistent worker pool, 16-bit weights (bfloat16, float16) stay 16-bit in
// memory and are widened inside the product, and DynamicUpdateSlice writes a
// donated KV cache in place.
package cpubackend

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

// BackendName is the name the backend is registered under.
const BackendName = "cpu"

func init() {
	backends.Register(BackendName, func(config string) (backends.Backend, error) { return New(config) })
}

// Backend is the CPU backend. It is safe for concurrent use.
type Backend struct {
	workers   int
	pool      *kernels.Pool
	mu        sync.Mutex
	free      map[poolKey][]any // released buffers by dtype and length
	freeBytes int               // total size of the released buffers kept
	finalized bool
}

var _ backends.Backend = (*Backend)(nil)

// poolKey identifies interchangeable flat buffers.
type poolKey struct {
	dtype dtypes.DType
	n     int
}

// maxPooledPerKey bounds how many released buffers of one dtype and length
// the backend keeps for reuse, and maxPooledBytes their total size (so that
// freed KV caches do not stay resident).
const (
	maxPooledPerKey = 16
	maxPooledBytes  = 256 << 20
)

// New returns a CPU backend. config is empty or "workers=N" (default:
// GOMAXPROCS).
func New(config string) (*Backend, error) {
	workers := runtime.GOMAXPROCS(0)
	for _, opt := range strings.Split(config, ",") {
		if opt == "" {
			continue
		}
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "workers":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("cpubackend: option %q: workers wants a positive integer, e.g. workers=2", opt)
			}
			workers = n
		default:
			return nil, fmt.Errorf("cpubackend: unknown option %q: valid options are workers=N", opt)
		}
	}
	return &Backend{workers: workers, pool: kernels.NewPool(workers), free: map[poolKey][]any{}}, nil
}

// Name returns "cpu".
func (b *Backend) Name() string { return BackendName }

// String returns "cpu".
func (b *Backend) String() string { return BackendName }

// Description describes the backend, its worker count and kernels.
func (b *Backend) Description() string {
	return fmt.Sprintf("tether CPU backend (%d workers, %s kernels)", b.workers, kernels.Features())
}

// NumDevices returns 1.
func (b *Backend) NumDevices() int { return 1 }

// DeviceDescription describes the only device.
func (b *Backend) DeviceDescription(backends.DeviceNum) string { return "CPU" }

// Capabilities lists the operations and dtypes the backend implements.
func (b *Backend) Capabilities() backends.Capabilities {
	c := backends.Capabilities{Operations: map[backends.OpType]bool{}, DTypes: map[dtypes.DType]bool{}}
	for op := range opKinds {
		c.Operations[op] = true
	}
	for dt := range supportedDTypes {
		c.DTypes[dt] = true
	}
	return c
}

// supportedDTypes are the dtypes buffers and operations accept.
var supportedDTypes = map[dtypes.DType]bool{
	dtypes.Float32: true, dtypes.Int32: true, dtypes.Bool: true,
	dtypes.BFloat16: true, dtypes.Float16: true,
}

// Builder returns a builder for a new computation.
func (b *Backend) Builder(name string) backends.Builder {
	return newBuilder(b, name)
}

// Finalize releases the worker pool; the backend is unusable afterwards.
func (b *Backend) Finalize() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.finalized {
		b.finalized = true
		b.pool.Close()
		b.free = nil
	}
}

// IsFinalized reports whether Finalize was called.
func (b *Backend) IsFinalized() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.finalized
}

// Buffer is the backend's tensor storage: a flat Go slice ([]float32,
// []int32, []bool, []bfloat16.BFloat16 or []float16.Float16) and its shape.
type Buffer struct {
	shape shapes.Shape
	flat  any
	// readOnly marks storage the backend does not own (NewReadOnlyBuffer):
	// it is only ever read.
	readOnly bool
}

// NewReadOnlyBuffer returns a buffer of shape (float32, bfloat16 or
// float16) over data, its little-endian bytes, without copying them:
// typically a weight where it lies in a memory-mapped checkpoint, which may
// be mapped read-only. The backend only reads such a buffer: an execution
// never owns it (donating it is the same as passing it), so no result is
// written over it and it is never released to the pool; BufferFinalize
// drops it without pooling it. data must be aligned to the dtype's size and
// stay mapped and unchanged until the buffer is finalized.
func (b *Backend) NewReadOnlyBuffer(shape shapes.Shape, data []byte) (backends.Buffer, error) {
	n := shape.Size()
	if len(data) != n*shape.DType.Size() || n == 0 {
		return nil, fmt.Errorf("cpubackend: read-only buffer %s: %d bytes, expected %d (and at least one value)", shape, len(data), n*shape.DType.Size())
	}
	if !CanView(shape.DType, data) {
		return nil, fmt.Errorf("cpubackend: read-only buffer %s: data must be little-endian on a little-endian host and aligned to %d bytes", shape, shape.DType.Size())
	}
	p := unsafe.Pointer(&data[0])
	var flat any
	switch shape.DType {
	case dtypes.Float32:
		flat = unsafe.Slice((*float32)(p), n)
	case dtypes.BFloat16:
		flat = unsafe.Slice((*bfloat16.BFloat16)(p), n)
	case dtypes.Float16:
		flat = unsafe.Slice((*float16.Float16)(p), n)
	default:
		return nil, fmt.Errorf("cpubackend: read-only buffer %s: dtype %s, expected float32, bfloat16 or float16", shape, shape.DType)
	}
	return &Buffer{shape: shape, flat: flat, readOnly: true}, nil
}

// CanView reports whether NewReadOnlyBuffer can read data, little-endian
// values of dtype, where it lies: the host is little-endian and data is
// aligned to the dtype's size (a caller copies the values otherwise).
func CanView(dtype dtypes.DType, data []byte) bool {
	return littleEndian && len(data) > 0 && uintptr(unsafe.Pointer(&data[0]))%uintptr(dtype.Size()) == 0
}

// littleEndian reports whether the host stores values little-endian.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// alloc returns a flat slice of n values of dtype, reusing a released one
// when available. Its contents are arbitrary.
func (b *Backend) alloc(dtype dtypes.DType, n int) any {
	key := poolKey{dtype, n}
	b.mu.Lock()
	if list := b.free[key]; len(list) > 0 {
		f := list[len(list)-1]
		b.free[key] = list[:len(list)-1]
		b.freeBytes -= n * dtype.Size()
		b.mu.Unlock()
		return f
	}
	b.mu.Unlock()
	return makeFlat(dtype, n)
}

// release hands flat back for reuse.
func (b *Backend) release(dtype dtypes.DType, flat any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.releaseLocked(poolKey{dtype, flatLen(flat)}, flat)
}

// releaseLocked pools flat (of key) when there is room; b.mu is held.
func (b *Backend) releaseLocked(key poolKey, flat any) {
	size := key.n * key.dtype.Size()
	if b.free != nil && len(b.free[key]) < maxPooledPerKey && b.freeBytes+size <= maxPooledBytes {
		b.free[key] = append(b.free[key], flat)
		b.freeBytes += size
	}
}

// releaseMany hands back flats[i], of dtype and length keys[i], under one
// lock.
func (b *Backend) releaseMany(keys []poolKey, flats []any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, f := range flats {
		b.releaseLocked(keys[i], f)
	}
}

func (b *Backend) buffer(x backends.Buffer) (*Buffer, error) {
	buf, ok := x.(*Buffer)
	if !ok || buf == nil {
		return nil, fmt.Errorf("cpubackend: buffer %T is not a %q backend buffer", x, BackendName)
	}
	if buf.flat == nil {
		return nil, fmt.Errorf("cpubackend: buffer %s was already finalized or donated", buf.shape)
	}
	return buf, nil
}

// BufferFinalize releases the buffer's storage for reuse (a read-only
// buffer's is only dropped: it is not the backend's).
func (b *Backend) BufferFinalize(x backends.Buffer) error {
	buf, err := b.buffer(x)
	if err != nil {
		return err
	}
	if !buf.readOnly {
		b.release(buf.shape.DType, buf.flat)
	}
	buf.flat = nil
	return nil
}

// BufferShape returns the buffer's shape.
func (b *Backend) BufferShape(x backends.Buffer) (shapes.Shape, error) {
	buf, err := b.buffer(x)
	if err != nil {
		return shapes.Invalid(), err
	}
	return buf.shape, nil
}

// BufferDeviceNum returns 0.
func (b *Backend) BufferDeviceNum(x backends.Buffer) (backends.DeviceNum, error) {
	if _, err := b.buffer(x); err != nil {
		return 0, err
	}
	return 0, nil
}

// BufferToFlatData copies the buffer into flat, a slice of its dtype and size.
func (b *Backend) BufferToFlatData(x backends.Buffer, flat any) error {
	buf, err := b.buffer(x)
	if err != nil {
		return err
	}
	return copyFlat(flat, buf.flat)
}

// BufferFromFlatData copies flat into a new buffer of the given shape.
func (b *Backend) BufferFromFlatData(deviceNum backends.DeviceNum, flat any, shape shapes.Shape) (backends.Buffer, error) {
	if deviceNum != 0 {
		return nil, fmt.Errorf("cpubackend: device %d does not exist (only 0)", deviceNum)
	}
	if !supportedDTypes[shape.DType] {
		return nil, fmt.Errorf("cpubackend: dtype %s is not supported (float32, int32, bool, bfloat16, float16)", shape.DType)
	}
	buf := &Buffer{shape: shape, flat: b.alloc(shape.DType, shape.Size())}
	if err := copyFlat(buf.flat, flat); err != nil {
		return nil, err
	}
	return buf, nil
}

// HasSharedBuffers returns true: buffers live in host memory.
func (b *Backend) HasSharedBuffers() bool { return true }

// NewSharedBuffer returns a zeroed buffer and its flat storage.
func (b *Backend) NewSharedBuffer(deviceNum backends.DeviceNum, shape shapes.Shape) (backends.Buffer, any, error) {
	if deviceNum != 0 {
		return nil, nil, fmt.Errorf("cpubackend: device %d does not exist (only 0)", deviceNum)
	}
	if !supportedDTypes[shape.DType] {
		return nil, nil, fmt.Errorf("cpubackend: dtype %s is not supported (float32, int32, bool, bfloat16, float16)", shape.DType)
	}
	buf := &Buffer{shape: shape, flat: makeFlat(shape.DType, shape.Size())}
	return buf, buf.flat, nil
}

// BufferData returns the buffer's flat storage (for a read-only buffer,
// storage that must not be written: GoMLX reads it as a tensor's constant
// data and copies it before any mutable access).
func (b *Backend) BufferData(x backends.Buffer) (any, error) {
	buf, err := b.buffer(x)
	if err != nil {
		return nil, err
	}
	return buf.flat, nil
}

// BufferCopyToDevice copies the buffer (there is only one device).
func (b *Backend) BufferCopyToDevice(x backends.Buffer, deviceNum backends.DeviceNum) (backends.Buffer, error) {
	buf, err := b.buffer(x)
	if err != nil {
		return nil, err
	}
	return b.BufferFromFlatData(deviceNum, buf.flat, buf.shape)
}
