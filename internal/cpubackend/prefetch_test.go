package cpubackend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"

	"tether/internal/kernels"
)

// TestPrefetchPlan checks which products the prefetcher reads ahead: those of a few rows
// against a weight parameter of at least prefetchMinBytes (also through a reshape), not
// prefill-sized products, small weights or products of two computed values.
func TestPrefetchPlan(t *testing.T) {
	const rows, in = 512, 256 // 512 KiB of float32 weights
	cases := []struct {
		name   string
		xRows  int
		wDims  []int
		dtype  dtypes.DType
		viaRes bool // the weight reaches the product through a reshape
		want   bool
	}{
		{"decode row, weight [1, rows, in]", 1, []int{1, rows, in}, dtypes.Float32, false, true},
		{"decode row, bfloat16 weight", 1, []int{1, rows, in}, dtypes.BFloat16, false, true},
		{"16 rows", 16, []int{1, rows, in}, dtypes.Float32, false, true},
		{"prefill, 64 rows", 64, []int{1, rows, in}, dtypes.Float32, false, false},
		{"weight through a reshape", 1, []int{rows * in}, dtypes.Float32, true, true},
		{"small weight", 1, []int{1, 8, in}, dtypes.Float32, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			be, err := New("")
			if err != nil {
				t.Fatal(err)
			}
			defer be.Finalize()
			b := be.Builder("plan").(*Builder)
			x := must(b.Parameter("x", shapes.Make(c.dtype, 1, c.xRows, in), nil))
			w := must(b.Parameter("w", shapes.Make(c.dtype, c.wDims...), nil))
			if c.viaRes {
				w = must(b.Reshape(w, 1, rows, in))
			}
			y := must(b.DotGeneral(x, []int{2}, []int{0}, w, []int{2}, []int{0}))
			e := compileExec(t, b, y)
			got := len(e.reads) == 1 && e.reads[0].param == 1
			if got != c.want || len(e.reads) > 1 {
				t.Errorf("reads %+v, want the weight read ahead: %v", e.reads, c.want)
			}
		})
	}
	t.Run("product of two computed values", func(t *testing.T) {
		be, _ := New("")
		defer be.Finalize()
		b := be.Builder("plan").(*Builder)
		x := must(b.Parameter("x", shapes.Make(dtypes.Float32, 1, 1, in), nil))
		w := must(b.Parameter("w", shapes.Make(dtypes.Float32, 1, rows, in), nil))
		w2 := must(b.Add(w, w))
		e := compileExec(t, b, must(b.DotGeneral(x, []int{2}, []int{0}, w2, []int{2}, []int{0})))
		if len(e.reads) != 0 {
			t.Errorf("reads %+v of a computed operand", e.reads)
		}
	})
}

// TestPrefetchedProductsSameResults runs a chain of decode-shaped products over weights large
// enough to be read ahead, donated or not, many times, and checks every result against the
// same chain computed with a plain loop: reading ahead changes no value, and a donated weight
// (which the execution may overwrite) is never among those read ahead.
func TestPrefetchedProductsSameResults(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Finalize()
	const dim, layers = 256, 6 // 256 KiB per weight
	b := be.Builder("chain").(*Builder)
	x := must(b.Parameter("x", shapes.Make(dtypes.Float32, 1, 1, dim), nil))
	var ws []backends.Op
	h := x
	for l := range layers {
		w := must(b.Parameter(fmt.Sprintf("w%d", l), shapes.Make(dtypes.Float32, 1, dim, dim), nil))
		ws = append(ws, w)
		h = must(b.DotGeneral(h, []int{2}, []int{0}, w, []int{2}, []int{0}))
		h = must(b.Reshape(h, 1, 1, dim))
		if l%2 == 1 {
			h = must(b.Tanh(h)) // a small operation between products, as in a decode step
		}
	}
	e := compileExec(t, b, h)
	if len(e.reads) != layers {
		t.Fatalf("%d products read ahead, want %d", len(e.reads), layers)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	xv := randFloats(rng, dim)
	wv := make([][]float32, layers)
	for l := range wv {
		wv[l] = randFloats(rng, dim*dim)
		for i := range wv[l] {
			wv[l][i] /= 16
		}
	}
	want := slices.Clone(xv)
	for l := range layers {
		next := make([]float32, dim)
		for j := range dim {
			var s float32
			for k := range dim {
				s += want[k] * wv[l][j*dim+k]
			}
			next[j] = s
		}
		if l%2 == 1 {
			for j := range next {
				next[j] = float32(math.Tanh(float64(next[j])))
			}
		}
		want = next
	}
	for rep := range 50 {
		donateWeights := rep%2 == 1
		inputs := []backends.Buffer{mustBuf(t, be, dtypes.Float32, xv, 1, 1, dim)}
		donate := []bool{false}
		for l := range layers {
			inputs = append(inputs, mustBuf(t, be, dtypes.Float32, wv[l], 1, dim, dim))
			donate = append(donate, donateWeights)
		}
		outs, err := e.Execute(inputs, donate, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := outs[0].(*Buffer).flat.([]float32)
		if d := maxRel(got, want); d > 1e-4 {
			t.Fatalf("repetition %d (weights donated: %v): max rel diff %g from the plain loop", rep, donateWeights, d)
		}
		for _, buf := range append(inputs, outs...) {
			if bb := buf.(*Buffer); bb.flat != nil {
				_ = be.BufferFinalize(buf)
			}
		}
	}
}

func must(op backends.Op, err error) backends.Op {
	if err != nil {
		panic(err)
	}
	return op
}

func compileExec(t *testing.T, b *Builder, out backends.Op) *Executable {
	t.Helper()
	e, err := b.Compile([]backends.Op{out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.(*Executable)
}

func mustBuf(t *testing.T, be backends.Backend, dtype dtypes.DType, flat []float32, dims ...int) backends.Buffer {
	t.Helper()
	buf, err := be.BufferFromFlatData(0, slices.Clone(flat), shapes.Make(dtype, dims...))
	if err != nil {
		t.Fatal(err)
	}
	return buf
}

// TestPrefetcherSkipsOwnedStorage checks that a parameter whose storage the execution owns (a
// donated buffer, which it may write) is never read ahead, and that the stream of segments
// follows the plan's order.
func TestPrefetcherSkipsOwnedStorage(t *testing.T) {
	pool := kernels.NewPool(2)
	defer pool.Close()
	a, b, c := make([]float32, 1<<16), make([]float32, 1<<16), make([]float32, 1<<15)
	params := []*storage{{flat: a}, {flat: b, owned: true}, {flat: c}}
	reads := []weightRead{{step: 3, param: 0}, {step: 5, param: 1}, {step: 9, param: 2}}
	pf := newPrefetcher(pool, reads, params)
	if pf == nil {
		t.Fatal("no prefetcher for a plan of three products")
	}
	defer pf.stop()
	if !slices.Equal(pf.steps, []int{3, 9}) {
		t.Errorf("segments at steps %v, want [3 9] (the donated one left out)", pf.steps)
	}
	if !slices.Equal(pf.off, []int64{0, int64(len(a) * 4)}) {
		t.Errorf("segment offsets %v", pf.off)
	}
	if got := newPrefetcher(kernels.NewPool(1), reads, params); got != nil {
		t.Error("a prefetcher on a pool without workers")
	}
}
