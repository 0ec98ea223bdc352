package cpubackend

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"golang.org/x/sys/unix"
)

// mapReadOnly writes values to a file and maps it PROT_READ, so that any
// write through the mapping faults; the mapping is removed at cleanup.
func mapReadOnly(t *testing.T, values []float32) []byte {
	t.Helper()
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	path := filepath.Join(t.TempDir(), "weights.bin")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := unix.Mmap(int(f.Fd()), 0, len(raw), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	t.Cleanup(func() { _ = unix.Munmap(data) })
	return data
}

// overlaps reports whether flat's storage overlaps data's.
func overlaps(flat any, data []byte) bool {
	v := reflect.ValueOf(flat)
	if v.Len() == 0 {
		return false
	}
	start := v.Pointer()
	end := start + uintptr(v.Len())*v.Type().Elem().Size()
	lo := reflect.ValueOf(data).Pointer()
	return start < lo+uintptr(len(data)) && lo < end
}

// TestReadOnlyBufferNeverWritten runs, over a buffer on a PROT_READ mapping,
// the graphs whose results the executor writes over a dying operand
// (element-wise operations, DynamicUpdateSlice), donated and not, plus the
// buffer returned as an output directly and reshaped. Each result must
// equal the host computation, the mapping must keep its values, no output
// may share its storage and the pool must never hold it. A write attempt
// would fault (turned into an error here by SetPanicOnFault).
func TestReadOnlyBufferNeverWritten(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	const rows, cols = 4, 6
	orig := make([]float32, rows*cols)
	for i := range orig {
		orig[i] = float32(i%7) - 2.5
	}
	data := mapReadOnly(t, orig)
	ro, err := be.NewReadOnlyBuffer(shapes.Make(dtypes.Float32, rows, cols), data)
	if err != nil {
		t.Fatal(err)
	}
	upd := []float32{10, 11, 12, 13, 14, 15}
	const slot = 2
	elementwise := func(f func(float64) float64) func([]float32) []float32 {
		return func(w []float32) []float32 {
			out := make([]float32, len(w))
			for i, v := range w {
				out[i] = float32(f(float64(v)))
			}
			return out
		}
	}
	for _, c := range []struct {
		name  string
		graph func(w, u, s *G.Node) *G.Node
		want  func(w []float32) []float32
		tol   float64
	}{
		{"add", func(w, u, s *G.Node) *G.Node { return G.AddScalar(w, 1) },
			elementwise(func(x float64) float64 { return x + 1 }), 0},
		{"mul then exp", func(w, u, s *G.Node) *G.Node { return G.Exp(G.Mul(w, w)) },
			elementwise(func(x float64) float64 { return math.Exp(x * x) }), 1e-6},
		{"logistic", func(w, u, s *G.Node) *G.Node { return G.Logistic(w) },
			elementwise(func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }), 1e-6},
		{"dynamic update slice", func(w, u, s *G.Node) *G.Node {
			return G.DynamicUpdateSlice(w, u, []*G.Node{s, G.Const(w.Graph(), int32(0))})
		}, func(w []float32) []float32 {
			out := append([]float32(nil), w...)
			copy(out[slot*cols:], upd)
			return out
		}, 0},
		{"output as is", func(w, u, s *G.Node) *G.Node { return w },
			func(w []float32) []float32 { return append([]float32(nil), w...) }, 0},
		{"reshaped output", func(w, u, s *G.Node) *G.Node { return G.Reshape(w, cols, rows) },
			func(w []float32) []float32 { return append([]float32(nil), w...) }, 0},
	} {
		e, err := G.NewExec(be, c.graph)
		if err != nil {
			t.Fatal(err)
		}
		for _, donate := range []bool{false, true} {
			for run := range 3 { // later runs take buffers from the pool
				w, err := tensors.FromBuffer(be, ro)
				if err != nil {
					t.Fatal(err)
				}
				var in any = w
				if donate {
					if in, err = G.DonateTensorBuffer(w, be, 0); err != nil {
						t.Fatal(err)
					}
				}
				u := tensors.FromFlatDataAndDimensions(append([]float32(nil), upd...), 1, cols)
				outs, err := e.Exec(in, u, int32(slot))
				if err != nil {
					t.Fatalf("%s (donated %v, run %d): %v", c.name, donate, run, err)
				}
				buf, err := outs[0].Buffer(be, 0)
				if err != nil {
					t.Fatal(err)
				}
				if overlaps(buf.(*Buffer).flat, data) {
					t.Errorf("%s (donated %v): the output is the read-only storage", c.name, donate)
				}
				got := tensors.MustCopyFlatData[float32](outs[0])
				if d := maxRel(got, c.want(orig)); d > c.tol || math.IsNaN(d) {
					t.Errorf("%s (donated %v): result differs from the host computation by %g", c.name, donate, d)
				}
				if err := outs[0].FinalizeAll(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := ro.(*Buffer).flat.([]float32); maxRel(got, orig) != 0 {
			t.Fatalf("%s: the read-only storage changed", c.name)
		}
		assertNotPooled(t, be, data)
	}
	if err := be.BufferFinalize(ro); err != nil {
		t.Fatal(err)
	}
	assertNotPooled(t, be, data)
	if err := be.BufferFinalize(ro); err == nil {
		t.Error("finalizing a read-only buffer twice: expected an error")
	}
}

// assertNotPooled fails when the backend's pool holds storage overlapping data.
func assertNotPooled(t *testing.T, be *Backend, data []byte) {
	t.Helper()
	be.mu.Lock()
	defer be.mu.Unlock()
	for key, list := range be.free {
		for _, flat := range list {
			if overlaps(flat, data) {
				t.Fatalf("the pool holds the read-only storage (%s, %d values)", key.dtype, key.n)
			}
		}
	}
}

// TestReadOnlyBufferErrors checks that storage the backend cannot read as
// the shape is refused with an error, not wrapped.
func TestReadOnlyBufferErrors(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 4*6+1)
	for _, c := range []struct {
		name  string
		shape shapes.Shape
		data  []byte
	}{
		{"short", shapes.Make(dtypes.Float32, 2, 3), raw[:20]},
		{"misaligned", shapes.Make(dtypes.Float32, 2, 3), raw[1:25]},
		{"int32", shapes.Make(dtypes.Int32, 2, 3), raw[:24]},
		{"empty", shapes.Make(dtypes.Float32, 0), raw[:0]},
	} {
		var buf backends.Buffer
		if buf, err = be.NewReadOnlyBuffer(c.shape, c.data); err == nil {
			t.Errorf("%s: NewReadOnlyBuffer accepted it (%v)", c.name, buf)
		}
	}
}
