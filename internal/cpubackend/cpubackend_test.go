package cpubackend

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

func randFloats(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// run executes fn on backend be with the given inputs and returns the
// outputs as float32 (bool and int32 outputs converted).
func run(t *testing.T, be backends.Backend, fn func([]*G.Node) []*G.Node, inputs []any) [][]float32 {
	t.Helper()
	e, err := G.NewExec(be, fn)
	if err != nil {
		t.Fatal(err)
	}
	local := make([]any, len(inputs))
	for i, in := range inputs {
		local[i] = in
		if tt, ok := in.(*tensors.Tensor); ok {
			c, err := tt.LocalClone()
			if err != nil {
				t.Fatal(err)
			}
			local[i] = c
		}
	}
	outs, err := e.Exec(local...)
	if err != nil {
		t.Fatalf("%s: %v", be.Name(), err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = tensors.MustCopyFlatData[float32](convertOut(t, be, o))
	}
	return res
}

// convertOut returns o as a float32 tensor.
func convertOut(t *testing.T, be backends.Backend, o *tensors.Tensor) *tensors.Tensor {
	t.Helper()
	if o.DType() == dtypes.Float32 {
		return o
	}
	e, err := G.NewExec(be, func(x *G.Node) *G.Node { return G.ConvertDType(x, dtypes.Float32) })
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(o)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

func maxRel(a, b []float32) float64 {
	var worst float64
	for i := range a {
		d := math.Abs(float64(a[i] - b[i]))
		s := math.Max(math.Abs(float64(b[i])), 1)
		worst = math.Max(worst, d/s)
	}
	return worst
}

// TestOpsMatchSimplego builds small graphs with every operation tether's
// step graph uses, in several layouts (odd sizes, transposed and batched
// products, broadcasting, 16-bit operands), and compares the results with
// GoMLX's simplego, an independent implementation. simplego lacks
// DynamicUpdateSlice and float16: see TestDonatedUpdateInPlace and
// TestFloat16Weights.
func TestOpsMatchSimplego(t *testing.T) {
	cpu, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := simplego.New("ops_sequential") // parallel ops can deadlock simplego v0.26.0 here
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	a := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*3*5*7), 2, 3, 5, 7)
	b := tensors.FromFlatDataAndDimensions(randFloats(rng, 2*3*7*4), 2, 3, 7, 4)
	w := tensors.FromFlatDataAndDimensions(randFloats(rng, 3*11*7), 3, 11, 7)
	x := tensors.FromFlatDataAndDimensions(randFloats(rng, 5*7), 5, 7)
	idx := tensors.FromFlatDataAndDimensions([]int32{2, 0, 4, 4, 1, 9}, 3, 2)
	cases := []struct {
		name   string
		fn     func([]*G.Node) []*G.Node
		inputs []any
		tol    float64
	}{
		{"einsum layouts", func(in []*G.Node) []*G.Node {
			return []*G.Node{
				G.Einsum("bhmk,bhkn->bhmn", in[0], in[1]),
				G.Einsum("bhmk,bhkn->bhnm", in[0], in[1]),
				G.Einsum("bhmk,bhnk->bhmn", in[0], G.TransposeAllDims(in[1], 0, 1, 3, 2)),
				G.Einsum("mk,pnk->pmn", in[3], in[2]),
				G.Einsum("bhmk,bhnk->bhmn", G.ConvertDType(in[0], dtypes.BFloat16), G.ConvertDType(G.TransposeAllDims(in[1], 0, 1, 3, 2), dtypes.BFloat16)),
			}
		}, []any{a, b, w, x}, 1e-5},
		{"elementwise and reductions", func(in []*G.Node) []*G.Node {
			v := in[0]
			return []*G.Node{
				G.Softmax(v, -1), G.Rsqrt(G.Add(G.Square(v), G.Const(v.Graph(), float32(1)))),
				G.Tanh(v), G.Logistic(v), G.Cos(v), G.Sin(v), G.Max(v, G.Mul(v, G.Const(v.Graph(), float32(-0.5)))), G.Min(v, G.Const(v.Graph(), float32(0.2))),
				G.ReduceSum(v, 1, 3), G.ReduceMax(v, 0), G.ReduceMean(v, -1),
				G.Where(G.GreaterThan(v, G.Reshape(G.ReduceMean(v, 2), 2, 3, 1, 7)), v, G.Const(v.Graph(), float32(-1e30))),
				// Every comparison, each against the same threshold, as 0/1 values.
				G.ConvertDType(G.LessThan(v, G.Const(v.Graph(), float32(0.1))), dtypes.Float32),
				G.ConvertDType(G.LessOrEqual(v, G.Const(v.Graph(), float32(0.1))), dtypes.Float32),
				G.ConvertDType(G.GreaterOrEqual(v, G.Const(v.Graph(), float32(0.1))), dtypes.Float32),
				G.ConvertDType(G.Equal(v, G.Slice(v, G.AxisRange(), G.AxisRange(), G.AxisRange(), G.AxisRange(0, 1))), dtypes.Float32),
				G.ConvertDType(G.LessThan(iotaInt(v.Graph(), 9), G.Const(v.Graph(), int32(4))), dtypes.Float32),
				G.ConvertDType(G.ReduceAllSum(G.ConvertDType(G.LogicalNot(G.IsFinite(G.Div(v, v))), dtypes.Int32)), dtypes.Float32),
				// IsFinite of 1 (v > 0) and -Inf (v < 0), then of 0 and NaN (-Inf - -Inf).
				G.ConvertDType(G.IsFinite(G.Div(v, G.Max(v, G.Const(v.Graph(), float32(0))))), dtypes.Float32),
				G.ConvertDType(G.IsFinite(G.Sub(G.Div(v, G.Max(v, G.Const(v.Graph(), float32(0)))), G.Div(v, G.Max(v, G.Const(v.Graph(), float32(0)))))), dtypes.Float32),
				G.Add(v, G.Reshape(G.Iota(v.Graph(), shapes.Make(dtypes.Float32, 7), 0), 1, 1, 1, 7)),
				G.Sub(v, G.ReduceAndKeep(v, G.ReduceMean, -1)), G.Div(v, G.Add(G.Square(v), G.Const(v.Graph(), float32(1)))),
				// A single value on the left; both operands whole; trailing
				// and leading reductions of several axes.
				G.Sub(G.Const(v.Graph(), float32(0.5)), v), G.Div(G.Const(v.Graph(), float32(2)), G.Add(G.Square(v), G.Const(v.Graph(), float32(1)))),
				G.Mul(G.Const(v.Graph(), float32(3)), v), G.Add(G.Const(v.Graph(), float32(3)), v),
				G.Max(v, G.Mul(v, G.Const(v.Graph(), float32(-1)))), G.Min(v, G.Mul(v, v)), G.Sub(v, G.Mul(v, v)),
				G.ReduceSum(v, 2, 3), G.ReduceMax(v, -1), G.ReduceMax(v, 1, 2, 3), G.ReduceSum(v, 0, 1),
				G.ConvertDType(G.ReduceSum(G.ConvertDType(G.GreaterThan(v, G.Const(v.Graph(), float32(0))), dtypes.Int32), -1), dtypes.Float32),
				G.ConvertDType(G.Add(G.Div(iotaInt(v.Graph(), 40), G.Const(v.Graph(), int32(7))), G.Mul(G.Rem(iotaInt(v.Graph(), 40), G.Const(v.Graph(), int32(7))), G.Const(v.Graph(), int32(100)))), dtypes.Float32),
			}
		}, []any{a}, 1e-5},
		{"data movement", func(in []*G.Node) []*G.Node {
			v := in[0]
			return []*G.Node{
				G.TransposeAllDims(v, 2, 0, 3, 1),
				G.Slice(v, G.AxisRange(), G.AxisRange(1, 3), G.AxisRange(), G.AxisRange(2, 7)),
				G.Concatenate([]*G.Node{G.Slice(v, G.AxisRange(), G.AxisRange(), G.AxisRange(0, 1)), v}, 2),
				G.BroadcastToDims(G.Reshape(G.Slice(v, G.AxisRange(0, 1)), 1, 3, 5, 7), 4, 3, 5, 7),
				G.Stack([]*G.Node{v, v}, -1),
				G.Gather(in[1], in[2]),
				// Views: a transpose moving only axes of size 1, a broadcast
				// repeating nothing, a slice of everything.
				G.TransposeAllDims(G.Reshape(v, 2, 1, 3, 1, 35), 1, 0, 3, 2, 4),
				G.BroadcastToDims(G.Reshape(v, 1, 210), 1, 210),
				G.Slice(v, G.AxisRange(), G.AxisRange(0, 3)),
				G.Add(G.TransposeAllDims(G.Reshape(v, 2, 1, 105), 1, 0, 2), G.Const(v.Graph(), float32(1))),
				G.Gather(G.ConvertDType(in[1], dtypes.BFloat16), in[2]),
			}
		}, []any{a, tensors.FromFlatDataAndDimensions(randFloats(rng, 5*10*3), 5, 10, 3), idx}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := run(t, ref, tc.fn, tc.inputs)
			// Both the CPU's SIMD kernels and the portable fallback.
			kernels.SetGeneric(true)
			generic := run(t, cpu, tc.fn, tc.inputs)
			kernels.SetGeneric(false)
			for i := range want {
				if d := maxRel(generic[i], want[i]); d > tc.tol {
					t.Errorf("portable kernels: output %d: max rel diff %g from simplego (tolerance %g)", i, d, tc.tol)
				}
			}
			got := run(t, cpu, tc.fn, tc.inputs)
			for i := range want {
				if len(got[i]) != len(want[i]) {
					t.Fatalf("output %d: %d values, simplego has %d", i, len(got[i]), len(want[i]))
				}
				if d := maxRel(got[i], want[i]); d > tc.tol {
					t.Errorf("output %d: max rel diff %g from simplego (tolerance %g)", i, d, tc.tol)
				}
			}
		})
	}
}

// iotaInt returns 0..n-1 as int32.
func iotaInt(g *G.Graph, n int) *G.Node { return G.Iota(g, shapes.Make(dtypes.Int32, n), 0) }

// TestFloat16Weights checks a product with float16 weights (which simplego
// lacks) against a plain float64 loop over the same float16-rounded values.
func TestFloat16Weights(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const P, M, N, K = 3, 5, 11, 37
	x := make([]float16.Float16, M*K)
	w := make([]float16.Float16, P*N*K)
	for i := range x {
		x[i] = float16.Fromfloat32(float32(rng.NormFloat64()))
	}
	for i := range w {
		w[i] = float16.Fromfloat32(float32(rng.NormFloat64()))
	}
	e, err := G.NewExec(be, func(x, w *G.Node) *G.Node {
		return G.ConvertDType(G.Einsum("pmk,pnk->pmn", G.BroadcastToDims(G.Reshape(x, 1, M, K), P, M, K), w), dtypes.Float32)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Exec(tensors.FromFlatDataAndDimensions(x, M, K), tensors.FromFlatDataAndDimensions(w, P, N, K))
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out[0])
	want := make([]float32, P*M*N)
	for p := range P {
		for m := range M {
			for n := range N {
				var s float64
				for k := range K {
					s += float64(x[m*K+k].Float32()) * float64(w[(p*N+n)*K+k].Float32())
				}
				want[(p*M+m)*N+n] = float32(s)
			}
		}
	}
	// The float16 output rounds to 11 significant bits.
	if d := maxRel(got, want); d > 1e-3 {
		t.Errorf("float16 product differs from the float64 loop by %g", d)
	}
}

// TestDataMovementViews checks that a transpose moving only axes of size
// 1, a broadcast repeating nothing and a slice of the whole operand copy
// nothing (their values are checked against simplego in
// TestOpsMatchSimplego), while real ones stay operations.
func TestDataMovementViews(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	b := be.Builder("views").(*Builder)
	x, err := b.Parameter("x", shapes.Make(dtypes.Float32, 2, 1, 3), nil)
	if err != nil {
		t.Fatal(err)
	}
	kind := func(op backends.Op, err error) backends.OpType {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return op.(*node).kind
	}
	cases := []struct {
		name string
		got  backends.OpType
		want backends.OpType
	}{
		{"transpose of a size-1 axis", kind(b.Transpose(x, 1, 0, 2)), backends.OpTypeReshape},
		{"transpose", kind(b.Transpose(x, 2, 1, 0)), backends.OpTypeTranspose},
		{"broadcast adding an axis of 1", kind(b.BroadcastInDim(x, shapes.Make(dtypes.Float32, 2, 1, 1, 3), []int{0, 1, 3})), backends.OpTypeReshape},
		{"broadcast", kind(b.BroadcastInDim(x, shapes.Make(dtypes.Float32, 2, 4, 3), []int{0, 1, 2})), backends.OpTypeBroadcastInDim},
		{"broadcast reordering", kind(b.BroadcastInDim(x, shapes.Make(dtypes.Float32, 3, 1, 2), []int{2, 1, 0})), backends.OpTypeBroadcastInDim},
		{"slice of everything", kind(b.Slice(x, []int{0, 0, 0}, []int{2, 1, 3}, []int{1, 1, 1})), backends.OpTypeParameter},
		{"slice", kind(b.Slice(x, []int{1, 0, 0}, []int{2, 1, 3}, []int{1, 1, 1})), backends.OpTypeSlice},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s: built %s, want %s", c.name, c.got, c.want)
		}
	}
}

// TestDonatedUpdateInPlace checks that a donated operand of
// DynamicUpdateSlice is written in place (the result is the same storage)
// and that an operand not donated is left untouched.
func TestDonatedUpdateInPlace(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	e, err := G.NewExec(be, func(cache, kv, slot *G.Node) *G.Node {
		zero := G.Const(cache.Graph(), int32(0))
		return G.DynamicUpdateSlice(cache, kv, []*G.Node{zero, slot, zero})
	})
	if err != nil {
		t.Fatal(err)
	}
	orig := make([]float32, 2*8*3)
	cache := tensors.FromFlatDataAndDimensions(append([]float32(nil), orig...), 2, 8, 3)
	kv := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4, 5, 6}, 2, 1, 3)
	out, err := e.Exec(cache, kv, int32(5))
	if err != nil {
		t.Fatal(err)
	}
	if got := tensors.MustCopyFlatData[float32](cache); maxRel(got, orig) != 0 {
		t.Errorf("a cache that was not donated changed: %v", got)
	}
	first := tensors.MustCopyFlatData[float32](out[0])
	want := append([]float32(nil), orig...)
	copy(want[5*3:], []float32{1, 2, 3})
	copy(want[8*3+5*3:], []float32{4, 5, 6})
	if maxRel(first, want) != 0 {
		t.Fatalf("update = %v, want %v", first, want)
	}
	buf, err := out[0].Buffer(be, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := buf.(*Buffer).flat.([]float32)
	donated, err := G.DonateTensorBuffer(out[0], be, 0)
	if err != nil {
		t.Fatal(err)
	}
	out2, err := e.Exec(donated, kv, int32(7)) // slot 7: the last one
	if err != nil {
		t.Fatal(err)
	}
	buf2, err := out2[0].Buffer(be, 0)
	if err != nil {
		t.Fatal(err)
	}
	if after := buf2.(*Buffer).flat.([]float32); &after[0] != &before[0] {
		t.Errorf("a donated cache was copied instead of updated in place")
	}
	copy(want[7*3:], []float32{1, 2, 3})
	copy(want[8*3+7*3:], []float32{4, 5, 6})
	if got := tensors.MustCopyFlatData[float32](out2[0]); maxRel(got, want) != 0 {
		t.Errorf("in-place update = %v, want %v", got, want)
	}
}

// TestUnsupportedIsAnError checks that what the backend does not implement
// fails with a clear error naming it, not a panic.
func TestUnsupportedIsAnError(t *testing.T) {
	be, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	add, err := G.NewExec(be, func(x *G.Node) *G.Node { return G.Add(x, x) })
	if err != nil {
		t.Fatal(err)
	}
	_, err = add.Exec(tensors.FromFlatDataAndDimensions([]float64{1, 2}, 2))
	if err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("float64 input: got %v, want an error naming float64", err)
	}
	erf, err := G.NewExec(be, func(x *G.Node) *G.Node { return G.Erf(x) })
	if err != nil {
		t.Fatal(err)
	}
	_, err = erf.Exec([]float32{1, 2})
	if err == nil || !strings.Contains(err.Error(), "not implemented") {
		t.Errorf("Erf: got %v, want a \"not implemented\" error", err)
	}
	if _, err := New("workers=0"); err == nil {
		t.Errorf("workers=0: expected an error")
	}
}
