package cpubackend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/x448/float16"
)

// fusedSteps compiles fn on a fresh cpu backend and counts its fused steps
// and its views.
func fusedSteps(t *testing.T, fn func([]*G.Node) []*G.Node, inputs []any) (fusedN, views int) {
	t.Helper()
	inner, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	be := &capturing{Backend: inner}
	run(t, be, fn, inputs)
	compiled := be.last
	if compiled == nil {
		t.Fatal("no executable compiled")
	}
	for _, s := range compiled.steps {
		if s.fused != nil {
			fusedN++
		}
		if s.view {
			views++
		}
	}
	return fusedN, views
}

// capturing is the cpu backend, keeping the last Executable compiled.
type capturing struct {
	*Backend
	last *Executable
}

func (c *capturing) Builder(name string) backends.Builder {
	return &capturingBuilder{Builder: c.Backend.Builder(name).(*Builder), c: c}
}

type capturingBuilder struct {
	*Builder
	c *capturing
}

func (b *capturingBuilder) Compile(outs []backends.Op, sh []*backends.ShardingSpec) (backends.Executable, error) {
	e, err := b.Builder.Compile(outs, sh)
	if err == nil {
		b.c.last = e.(*Executable)
	}
	return e, err
}

// sameBits reports whether a and b hold the same float32 bit patterns.
func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

// TestRoundedDotSameBits checks the fused 16-bit product (a float32 input
// rounded to the weights' dtype, the product widened back) against the
// same operations run one by one (the product also returned as an output,
// which keeps it from being fused): the results must have the same bits.
// The bfloat16 case is also checked against simplego.
func TestRoundedDotSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const N, K, R = 3, 37, 29
	x := tensors.FromFlatDataAndDimensions(randFloats(rng, N*K), N, K)
	w1 := tensors.FromFlatDataAndDimensions(randFloats(rng, R*K), 1, R, K)
	w2 := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*R*K), 2, R, K)
	wKN := tensors.FromFlatDataAndDimensions(randFloats(rng, K*R), 1, K, R)
	for _, dt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
		for _, tc := range []struct {
			name   string
			w      *tensors.Tensor
			eq     string
			repeat bool
			fuses  int
		}{
			{"one block", w1, "pbi,poi->pbo", false, 1},
			{"gate|up broadcast", w2, "pbi,poi->pbo", true, 1},
			{"weights K×N (not fused)", wKN, "pbi,pio->pbo", false, 0},
		} {
			t.Run(dt.String()+"/"+tc.name, func(t *testing.T) {
				P := tc.w.Shape().Dimensions[0]
				product := func(in []*G.Node) *G.Node {
					xb := G.Reshape(G.ConvertDType(in[0], dt), 1, N, K)
					if tc.repeat {
						xb = G.BroadcastToDims(xb, P, N, K)
					}
					return G.Einsum(tc.eq, xb, G.ConvertDType(in[1], dt))
				}
				fusedFn := func(in []*G.Node) []*G.Node { return []*G.Node{G.ConvertDType(product(in), dtypes.Float32)} }
				apart := func(in []*G.Node) []*G.Node {
					p := product(in)
					return []*G.Node{G.ConvertDType(p, dtypes.Float32), p}
				}
				inputs := []any{x, tc.w}
				if n, _ := fusedSteps(t, fusedFn, inputs); n != tc.fuses {
					t.Fatalf("%d fused steps, want %d", n, tc.fuses)
				}
				if n, _ := fusedSteps(t, apart, inputs); n != 0 {
					t.Fatalf("the product returned as an output was fused (%d fused steps)", n)
				}
				be, err := New("")
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, be, fusedFn, inputs)[0]
				want := run(t, be, apart, inputs)[0]
				if !sameBits(got, want) {
					t.Errorf("fused product differs from the operations one by one: max rel %g", maxRel(got, want))
				}
				if dt == dtypes.BFloat16 {
					ref, err := simplego.New("ops_sequential")
					if err != nil {
						t.Fatal(err)
					}
					// simplego sums in another order, then rounds to bfloat16.
					if d := maxRel(got, run(t, ref, fusedFn, inputs)[0]); d > 1e-2 {
						t.Errorf("fused product differs from simplego by %g", d)
					}
				}
			})
		}
	}
}

// TestNonFiniteCountFused checks the fused finite check against a count
// by hand over planted NaN, infinities and values whose square overflows,
// with and without a mask (broadcast or whole) and a square.
func TestNonFiniteCountFused(t *testing.T) {
	const B, T, H = 2, 3, 5
	vals := make([]float32, B*T*H)
	for i := range vals {
		vals[i] = float32(i%7) - 3
	}
	vals[2] = float32(math.NaN())                           // b0 t0
	vals[H+1] = float32(math.Inf(1))                        // b0 t1
	vals[2*H+4] = 3e19                                      // b0 t2: finite, its square is not
	vals[3*H] = float32(math.Inf(-1))                       // b1 t0
	vals[4*H+2] = -2e19                                     // b1 t1: square overflows
	vals[5*H+3] = float32(math.NaN())                       // b1 t2
	rowMask := []bool{true, false, true, false, true, true} // [B, T]
	x := tensors.FromFlatDataAndDimensions(vals, B, T, H)
	mask := tensors.FromFlatDataAndDimensions(rowMask, B, T)
	count := func(sq bool, m []bool) float32 {
		n := 0
		for i, v := range vals {
			if sq {
				v = float32(v * v)
			}
			if (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) && (m == nil || m[i/H]) {
				n++
			}
		}
		return float32(n)
	}
	fullMask := make([]bool, B*T*H)
	for i := range fullMask {
		fullMask[i] = rowMask[i/H]
	}
	check := func(x, m *G.Node, sq bool) *G.Node {
		if sq {
			x = G.Square(x)
		}
		bad := G.LogicalNot(G.IsFinite(x))
		if m != nil {
			bad = G.LogicalAnd(bad, m)
		}
		return G.ConvertDType(G.ReduceAllSum(G.ConvertDType(bad, dtypes.Int32)), dtypes.Float32)
	}
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sq   bool
		mask string // "", "broadcast", "whole"
	}{
		{"plain", false, ""}, {"square", true, ""},
		{"square, broadcast mask", true, "broadcast"}, {"broadcast mask", false, "broadcast"},
		{"square, whole mask", true, "whole"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m []bool
			fn := func(in []*G.Node) []*G.Node {
				var mk *G.Node
				switch tc.mask {
				case "broadcast":
					mk = G.BroadcastToDims(G.Reshape(in[1], B, T, 1), B, T, H)
				case "whole":
					mk = in[2]
				}
				return []*G.Node{check(in[0], mk, tc.sq)}
			}
			switch tc.mask {
			case "broadcast":
				m = rowMask
			case "whole":
				m = rowMask
			}
			inputs := []any{x, mask, tensors.FromFlatDataAndDimensions(fullMask, B, T, H)}
			if n, _ := fusedSteps(t, fn, inputs); n != 1 {
				t.Fatalf("%d fused steps, want 1", n)
			}
			got := run(t, be, fn, inputs)[0][0]
			if want := count(tc.sq, m); got != want {
				t.Errorf("count %v, want %v", got, want)
			}
		})
	}
}

// TestSliceViews checks slices read in place (a contiguous range of their
// operand): their values against simplego, and the ownership rules: an
// element-wise operation or an update that could write over the operand
// waits until the views are done (their later users see the old values),
// and an output that is a view (or a reshape of one) gets its own copy.
func TestSliceViews(t *testing.T) {
	ref, err := simplego.New("ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	a := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*4*6), 2, 4, 6)
	row := tensors.FromFlatDataAndDimensions(randFloats(rng, 1*8), 1, 8)
	fn := func(in []*G.Node) []*G.Node {
		g := in[0].Graph()
		p := G.Add(in[0], G.Const(g, float32(1)))                              // owned by the execution
		gate := G.Slice(p, G.AxisRange(0, 1))                                  // [1, 4, 6]: a view
		up := G.Slice(p, G.AxisRange(1, 2))                                    // a view
		mid := G.Slice(p, G.AxisRange(1, 2), G.AxisRange(1, 3))                // one run: a view
		strided := G.Slice(p, G.AxisRange(), G.AxisRange(), G.AxisRange(0, 3)) // not a run: a copy
		scaled := G.Mul(p, G.Const(g, float32(3)))                             // p's last direct use, with views still to be read
		q := G.Slice(in[1], G.AxisRange(), G.AxisRange(2, 5))                  // a view of a parameter
		return []*G.Node{
			scaled,
			G.Mul(gate, G.Logistic(gate)), G.Add(up, G.Const(g, float32(0))),
			mid, G.Reshape(mid, 12), strided, q,
			G.Mul(G.Reshape(G.Const(g, []float32{1, 2, 3}), 1, 3), q), // a reshaped constant
		}
	}
	inputs := []any{a, row}
	if _, views := fusedSteps(t, fn, inputs); views != 4 {
		t.Errorf("%d views, want 4 (gate, up, mid, q)", views)
	}
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, be, fn, inputs)
	want := run(t, ref, fn, inputs)
	for i := range want {
		if d := maxRel(got[i], want[i]); d > 1e-6 {
			t.Errorf("output %d: max rel diff %g from simplego", i, d)
		}
	}
}

// TestViewOfDonatedCache checks that an update of a donated operand is not
// done in place while a view of the operand is still to be read: the view's
// user sees the values from before the update.
func TestViewOfDonatedCache(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	e, err := G.NewExec(be, func(cache, kv *G.Node) (*G.Node, *G.Node) {
		zero := G.Const(cache.Graph(), int32(0))
		first := G.Slice(cache, G.AxisRange(0, 1)) // a view of row 0
		upd := G.DynamicUpdateSlice(cache, kv, []*G.Node{zero, zero})
		return upd, G.Add(first, G.Const(cache.Graph(), float32(0)))
	})
	if err != nil {
		t.Fatal(err)
	}
	cache := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 3, 2)
	kv := tensors.FromFlatDataAndDimensions([]float32{9, 9}, 1, 2)
	first, err := e.Exec(cache, kv)
	if err != nil {
		t.Fatal(err)
	}
	donated, err := G.DonateTensorBuffer(first[0], be, 0)
	if err != nil {
		t.Fatal(err)
	}
	kv2 := tensors.FromFlatDataAndDimensions([]float32{7, 8}, 1, 2)
	out, err := e.Exec(donated, kv2)
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](out[0]); !sameBits(got, []float32{7, 8, 3, 4, 5, 6}) {
		t.Errorf("update = %v", got)
	}
	if got := tensors.MustCopyFlatData[float32](out[1]); !sameBits(got, []float32{9, 9}) {
		t.Errorf("the view read %v after the update, want the row before it, [9 9]", got)
	}
}

// TestContiguousSlice checks which slices are views, by the rule: one run
// of the operand's values.
func TestContiguousSlice(t *testing.T) {
	for _, tc := range []struct {
		in, starts, limits, strides []int
		view                        bool
		off                         int
	}{
		{[]int{2, 16, 8}, []int{1, 0, 0}, []int{2, 16, 8}, nil, true, 128},          // gate|up split
		{[]int{1, 960}, []int{0, 576}, []int{1, 768}, nil, true, 576},               // q/k/v split of a row
		{[]int{1, 1, 3, 64}, []int{0, 0, 0, 32}, []int{1, 1, 3, 64}, nil, false, 0}, // rope half
		{[]int{4, 6}, []int{2, 1}, []int{3, 5}, nil, true, 13},                      // inside one row
		{[]int{4, 6}, []int{0, 0}, []int{4, 6}, []int{2, 1}, false, 0},              // strided
		{[]int{4, 6}, []int{1, 0}, []int{3, 6}, nil, true, 6},                       // whole rows
		{[]int{4, 6}, []int{1, 1}, []int{3, 6}, nil, false, 0},                      // two partial rows
	} {
		be, err := New("")
		if err != nil {
			t.Fatal(err)
		}
		b := be.Builder("slice").(*Builder)
		x, err := b.Parameter("x", shapes.Make(dtypes.Float32, tc.in...), nil)
		if err != nil {
			t.Fatal(err)
		}
		strides := tc.strides
		if strides == nil {
			strides = make([]int, len(tc.in))
			for i := range strides {
				strides[i] = 1
			}
		}
		op, err := b.Slice(x, tc.starts, tc.limits, strides)
		if err != nil {
			t.Fatal(err)
		}
		off, view := contiguousSlice(op.(*node))
		if view != tc.view || (view && off != tc.off) {
			t.Errorf("slice %v..%v of %v: view %v at %d, want %v at %d", tc.starts, tc.limits, tc.in, view, off, tc.view, tc.off)
		}
	}
}

// TestConcurrentExecute runs one executable from several goroutines at
// once: each execution has its own scratch, so every result matches.
func TestConcurrentExecute(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	e, err := G.NewExec(be, func(x *G.Node) *G.Node {
		h := G.Mul(x, G.Logistic(x))
		return G.ReduceSum(G.Add(G.Slice(h, G.AxisRange(0, 1)), G.Slice(h, G.AxisRange(1, 2))), -1)
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals := make([]float32, 2*50)
			for i := range vals {
				vals[i] = float32(g) + float32(i%50)/100
			}
			var want float32
			for i := range 50 {
				a, b := vals[i], vals[50+i]
				want += a*float32(1/(1+math.Exp(-float64(a)))) + b*float32(1/(1+math.Exp(-float64(b))))
			}
			for range 20 {
				out, err := e.Exec(tensors.FromFlatDataAndDimensions(vals, 2, 50))
				if err != nil {
					errs <- err.Error()
					return
				}
				got := tensors.MustCopyFlatData[float32](out[0])[0]
				if math.Abs(float64(got-want)) > 1e-4*math.Abs(float64(want)) {
					errs <- "wrong sum"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

// TestRotateHalfSameBits checks the fused rotary step against the same
// operations one by one (a product also returned as an output keeps them
// apart): same bits; and against simplego.
func TestRotateHalfSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const B, T, H, hd = 2, 3, 5, 8
	x := tensors.FromFlatDataAndDimensions(randFloats(rng, B*T*H*hd), B, T, H, hd)
	cos := tensors.FromFlatDataAndDimensions(randFloats(rng, B*T*hd/2), B, T, 1, hd/2)
	sin := tensors.FromFlatDataAndDimensions(randFloats(rng, T*hd/2), 1, T, 1, hd/2)
	rope := func(in []*G.Node, apart bool) []*G.Node {
		x1 := G.Slice(in[0], G.AxisRange(), G.AxisRange(), G.AxisRange(), G.AxisRange(0, hd/2))
		x2 := G.Slice(in[0], G.AxisRange(), G.AxisRange(), G.AxisRange(), G.AxisRange(hd/2, hd))
		m := G.Mul(x1, in[1])
		out := []*G.Node{G.Concatenate([]*G.Node{G.Sub(m, G.Mul(x2, in[2])), G.Add(G.Mul(x2, in[1]), G.Mul(x1, in[2]))}, 3)}
		if apart {
			out = append(out, m)
		}
		return out
	}
	fusedFn := func(in []*G.Node) []*G.Node { return rope(in, false) }
	apartFn := func(in []*G.Node) []*G.Node { return rope(in, true) }
	inputs := []any{x, cos, sin}
	checkFusion(t, "rotary step", fusedFn, apartFn, inputs, 1, 1e-6)
}

// TestRMSNormSameBits checks the fused RMS norm (built as the engine builds
// it) against the same operations one by one (the mean also returned as an
// output keeps them apart): same bits; and against simplego.
func TestRMSNormSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, dims := range [][]int{{2, 3, 37}, {1, 2, 5, 16}, {1, 1, 576}} {
		size, H := 1, dims[len(dims)-1]
		for _, d := range dims {
			size *= d
		}
		x := tensors.FromFlatDataAndDimensions(randFloats(rng, size), dims...)
		w := tensors.FromFlatDataAndDimensions(randFloats(rng, H), H)
		norm := func(in []*G.Node, apart bool) []*G.Node {
			x, w := in[0], in[1]
			rank := x.Rank()
			meanSq := G.ReduceAndKeep(G.Square(x), G.ReduceMean, rank-1)
			normed := G.Mul(x, G.Rsqrt(G.Add(meanSq, G.Const(x.Graph(), float32(1e-5)))))
			wd := make([]int, rank)
			for i := range wd {
				wd[i] = 1
			}
			wd[rank-1] = H
			out := []*G.Node{G.Mul(normed, G.Reshape(w, wd...))}
			if apart {
				out = append(out, meanSq)
			}
			return out
		}
		fusedFn := func(in []*G.Node) []*G.Node { return norm(in, false) }
		apartFn := func(in []*G.Node) []*G.Node { return norm(in, true) }
		inputs := []any{x, w}
		checkFusion(t, fmt.Sprintf("%v RMS norm", dims), fusedFn, apartFn, inputs, 1, 1e-5)
	}
}

// TestSoftmaxSameBits checks the fused softmax, alone and with the
// engine's scaled and masked scores, against the same operations one by
// one (an intermediate also returned as an output keeps them apart): same
// bits; and against simplego.
func TestSoftmaxSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	const B, Hh, T, S = 1, 3, 2, 11
	x := tensors.FromFlatDataAndDimensions(randFloats(rng, B*Hh*T*S), B, Hh, T, S)
	m := make([]bool, B*Hh*T*S)
	for i := range m {
		m[i] = i%S <= (i/S)%T+5 // a causal-like mask, every row with some values
	}
	mask := tensors.FromFlatDataAndDimensions(m, B, Hh, T, S)
	for _, masked := range []bool{false, true} {
		sm := func(in []*G.Node, apart bool) []*G.Node {
			logits := in[0]
			if masked {
				scaled := G.Mul(in[0], G.Const(in[0].Graph(), float32(0.125)))
				logits = G.Where(in[1], scaled, G.Const(in[0].Graph(), float32(-1e30)))
			}
			if !apart {
				return []*G.Node{G.Softmax(logits, -1)}
			}
			// GoMLX's Softmax written out, its Exp also returned: nothing fuses.
			e := G.Exp(G.Sub(logits, G.ReduceAndKeep(logits, G.ReduceMax, -1)))
			return []*G.Node{G.Div(e, G.ReduceAndKeep(e, G.ReduceSum, -1)), e, logits}
		}
		fusedFn := func(in []*G.Node) []*G.Node { return sm(in, false) }
		apartFn := func(in []*G.Node) []*G.Node { return sm(in, true) }
		inputs := []any{x, mask}
		checkFusion(t, fmt.Sprintf("softmax (masked %v)", masked), fusedFn, apartFn, inputs, 1, 1e-5)
	}
}

// TestUnusedDonatedInput checks that a donated input nothing reads is
// consumed (handed back to the pool) without disturbing the result.
func TestUnusedDonatedInput(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	b := be.Builder("unused")
	if _, err := b.Parameter("unused", shapes.Make(dtypes.Float32, 3), nil); err != nil {
		t.Fatal(err)
	}
	x, err := b.Parameter("x", shapes.Make(dtypes.Float32, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	y, err := b.Add(x, x)
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Compile([]backends.Op{y}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ub, err := be.BufferFromFlatData(0, []float32{1, 2, 3}, shapes.Make(dtypes.Float32, 3))
	if err != nil {
		t.Fatal(err)
	}
	xb, err := be.BufferFromFlatData(0, []float32{4, 5}, shapes.Make(dtypes.Float32, 2))
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Execute([]backends.Buffer{ub, xb}, []bool{true, false}, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2)
	if err := be.BufferToFlatData(out[0], got); err != nil {
		t.Fatal(err)
	}
	if !sameBits(got, []float32{8, 10}) {
		t.Errorf("x+x = %v, want [8 10]", got)
	}
	if _, err := be.BufferShape(ub); err == nil {
		t.Errorf("the donated input is still usable after the execution consumed it")
	}
	if be.free[poolKey{dtypes.Float32, 3}] == nil {
		t.Errorf("the donated input was not handed back to the pool")
	}
}

// TestSwiGLUSameBits checks the fused SiLU(gate) times up (gate and up
// views of one product, as in the engine) against the same operations one
// by one (the activation also returned keeps them apart): same bits; and
// against simplego.
func TestSwiGLUSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	gu := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*3*19), 2, 3, 19)
	sw := func(in []*G.Node, apart bool) []*G.Node {
		gate := G.Reshape(G.Slice(in[0], G.AxisRange(0, 1)), 3, 19)
		up := G.Reshape(G.Slice(in[0], G.AxisRange(1, 2)), 3, 19)
		act := G.Mul(gate, G.Logistic(gate))
		out := []*G.Node{G.Mul(act, up)}
		if apart {
			out = append(out, act)
		}
		return out
	}
	fusedFn := func(in []*G.Node) []*G.Node { return sw(in, false) }
	apartFn := func(in []*G.Node) []*G.Node { return sw(in, true) }
	inputs := []any{gu}
	checkFusion(t, "SwiGLU", fusedFn, apartFn, inputs, 1, 1e-5)
}

// TestWidenedDotSameBits checks the product over a 16-bit operand widened
// to float32 (attention over a bfloat16 or float16 KV cache), in the N × K
// (keys) and K × N (values) layouts the engine uses: fused into one step,
// with the bits of the conversion and the product one by one (the widened
// operand also returned, which keeps them apart), and for bfloat16 within
// 1e-5 of simplego (which has no float16 conversion).
func TestWidenedDotSameBits(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	w32 := randFloats(rng, 2*3*40*64) // the cache [B, kvH, S, hd]
	for _, dt := range []dtypes.DType{dtypes.BFloat16, dtypes.Float16} {
		var w any
		if dt == dtypes.BFloat16 {
			w = tensors.FromFlatDataAndDimensions(toBF16(w32), 2, 3, 40, 64)
		} else {
			w = tensors.FromFlatDataAndDimensions(toF16(w32), 2, 3, 40, 64)
		}
		for _, c := range []struct {
			name, eq string
			lhs      []int
		}{
			{"keys (N × K)", "bkgd,bksd->bkgs", []int{2, 3, 4, 64}},
			{"values (K × N)", "bkgs,bksd->bkgd", []int{2, 3, 4, 40}},
		} {
			what := fmt.Sprintf("%s %s", dt, c.name)
			x := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*3*4*c.lhs[3]), c.lhs...)
			prod := func(in []*G.Node, apart bool) []*G.Node {
				widened := G.ConvertDType(in[1], dtypes.Float32)
				out := []*G.Node{G.Einsum(c.eq, in[0], widened)}
				if apart {
					out = append(out, widened)
				}
				return out
			}
			fusedFn := func(in []*G.Node) []*G.Node { return prod(in, false) }
			apartFn := func(in []*G.Node) []*G.Node { return prod(in, true) }
			inputs := []any{x, w}
			if dt == dtypes.BFloat16 {
				checkFusion(t, what, fusedFn, apartFn, inputs, 1, 1e-5)
				continue
			}
			if n, _ := fusedSteps(t, fusedFn, inputs); n != 1 {
				t.Fatalf("%s: %d fused steps, want 1", what, n)
			}
			be, err := New("")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := run(t, be, fusedFn, inputs)[0], run(t, be, apartFn, inputs)[0]; !sameBits(got, want) {
				t.Errorf("%s: fused step differs from the operations one by one: max rel %g", what, maxRel(got, want))
			}
		}
	}
}

// toBF16 and toF16 round float32 values to bfloat16 and float16.
func toBF16(v []float32) []bfloat16.BFloat16 {
	out := make([]bfloat16.BFloat16, len(v))
	for i, x := range v {
		out[i] = bfloat16.FromFloat32(x)
	}
	return out
}

func toF16(v []float32) []float16.Float16 {
	out := make([]float16.Float16, len(v))
	for i, x := range v {
		out[i] = float16.Fromfloat32(x)
	}
	return out
}

// TestPrefetchPlansFusedProducts checks that the weight of a fused 16-bit
// product (its input rounded to bfloat16, its result widened back) is
// still read ahead, as the plain product's is (TestPrefetchPlan).
func TestPrefetchPlansFusedProducts(t *testing.T) {
	const rows, in = 512, 256 // 256 KiB of bfloat16 weights
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	defer be.Finalize()
	b := be.Builder("plan").(*Builder)
	x := must(b.Parameter("x", shapes.Make(dtypes.Float32, 1, 1, in), nil))
	w := must(b.Parameter("w", shapes.Make(dtypes.BFloat16, 1, rows, in), nil))
	y := must(b.DotGeneral(must(b.ConvertDType(x, dtypes.BFloat16)), []int{2}, []int{0}, w, []int{2}, []int{0}))
	e := compileExec(t, b, must(b.ConvertDType(y, dtypes.Float32)))
	if len(e.steps) != 1 || e.steps[0].fused == nil {
		t.Fatalf("%d steps, want one fused product", len(e.steps))
	}
	if len(e.reads) != 1 || e.reads[0].param != 1 || e.reads[0].step != 0 {
		t.Errorf("reads %+v, want the weight (parameter 1) read ahead for step 0", e.reads)
	}
}

// checkFusion checks a fused step (what names it in errors): fusedFn compiles
// to wantFused fused steps and apartFn (the same operations with an
// intermediate also returned, which keeps them apart) to none; the fused
// result has the same bits as the operations one by one, and is within tol
// of simplego's.
func checkFusion(t *testing.T, what string, fusedFn, apartFn func([]*G.Node) []*G.Node, inputs []any, wantFused int, tol float64) {
	t.Helper()
	if n, _ := fusedSteps(t, fusedFn, inputs); n != wantFused {
		t.Fatalf("%s: %d fused steps, want %d", what, n, wantFused)
	}
	if n, _ := fusedSteps(t, apartFn, inputs); n != 0 {
		t.Fatalf("%s: %d fused steps with an intermediate returned, want 0", what, n)
	}
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	got := run(t, be, fusedFn, inputs)[0]
	if want := run(t, be, apartFn, inputs)[0]; !sameBits(got, want) {
		t.Errorf("%s: fused step differs from the operations one by one: max rel %g", what, maxRel(got, want))
	}
	ref, err := simplego.New("ops_sequential")
	if err != nil {
		t.Fatal(err)
	}
	if d := maxRel(got, run(t, ref, fusedFn, inputs)[0]); d > tol {
		t.Errorf("%s: fused step differs from simplego by %g", what, d)
	}
}
