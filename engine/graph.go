package engine

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	G "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// stepPlan is the structure of one compiled step graph. Everything that is
// not in the plan (token values, positions, hook vectors and thresholds) is
// a graph input, so changing it never recompiles.
type stepPlan struct {
	allLogits bool       // return logits of every position, not only the last
	hooks     []hookSpec // sorted by layer
	capture   []int      // sorted layers whose output is returned
	// rowClamps > 0 gives every layer row hooks with that many clamps
	// (rowhooks.go); plans with row hooks have no hooks.
	rowClamps int
	// rowSlots makes the slot input [B]: each row writes and queries its
	// own cache slots (the Batcher's rows sit at different positions).
	rowSlots bool
}

// stepInputs are the step graph's inputs by name. Inside the graph builder
// V is *G.Node; on the host it is any (tensors, or cache buffers donated to
// the step). each is the one place that fixes their order.
type stepInputs[V any] struct {
	tokens V                  // [B, T] int32
	pad    V                  // [B] int32: left padding of each sequence (its first real slot)
	slot   V                  // scalar int32: cache slot of the first token of this step
	caches []V                // 2L: layer i's K cache at 2i, V cache at 2i+1, each [B, kvHeads, S, HeadDim]
	hooks  []hookInputs[V]    // one per plan.hooks entry, in that order
	rows   []rowHookInputs[V] // one per layer when plan.rowClamps > 0
	params []V                // Model.params, indexed as Model.embed, Model.layers etc. say
}

// newStepInputs returns empty inputs laid out for plan on a model with
// layers blocks and params weight tensors.
func newStepInputs[V any](plan stepPlan, layers, params int) *stepInputs[V] {
	in := &stepInputs[V]{caches: make([]V, 2*layers), hooks: make([]hookInputs[V], len(plan.hooks)), params: make([]V, params)}
	for i, s := range plan.hooks {
		in.hooks[i].spec = s
	}
	if plan.rowClamps > 0 {
		in.rows = make([]rowHookInputs[V], layers)
	}
	return in
}

// each visits every input in the order the compiled graph takes them.
func (in *stepInputs[V]) each(visit func(*V)) {
	visit(&in.tokens)
	visit(&in.pad)
	visit(&in.slot)
	for i := range in.caches {
		visit(&in.caches[i])
	}
	for i := range in.hooks {
		in.hooks[i].each(visit)
	}
	for i := range in.rows {
		in.rows[i].each(visit)
	}
	for i := range in.params {
		visit(&in.params[i])
	}
}

// list returns the inputs in the order the compiled graph takes them.
func (in *stepInputs[V]) list() []V {
	var out []V
	in.each(func(v *V) { out = append(out, *v) })
	return out
}

// read fills the inputs from flat, in the order of list.
func (in *stepInputs[V]) read(flat []V) error {
	return readInOrder(in.each, flat, "step graph inputs")
}

// stepOutputs are the step graph's outputs by name (V as for stepInputs:
// *G.Node in the builder, *tensors.Tensor on the host).
type stepOutputs[V any] struct {
	logits   V                  // [B, V], or [B, T, V] with plan.allLogits
	caches   []V                // 2L updated caches, laid out as stepInputs.caches
	captured []V                // [B, T, H] per plan.capture layer, in that order
	records  []hookRecording[V] // one per recording hook, in plan.hooks order
	// nonFinite is the finite check [L+1] int32 (see nonFiniteCount): per
	// block, the values of its output (after its hook; padding excluded)
	// that are not finite, then the non-finite logits.
	nonFinite V
}

// hookRecording is a recording hook's telemetry output.
type hookRecording[V any] struct {
	layer         int
	before, after V // [B, T, clamps]: projections before each clamp and after the whole hook
}

// newStepOutputs returns empty outputs laid out for plan on a model with
// layers blocks.
func newStepOutputs[V any](plan stepPlan, layers int) *stepOutputs[V] {
	out := &stepOutputs[V]{caches: make([]V, 2*layers), captured: make([]V, len(plan.capture))}
	for _, s := range plan.hooks {
		if s.record {
			out.records = append(out.records, hookRecording[V]{layer: s.layer})
		}
	}
	if plan.rowClamps > 0 {
		for l := range layers {
			out.records = append(out.records, hookRecording[V]{layer: l})
		}
	}
	return out
}

// each visits every output in the order the compiled graph returns them.
func (out *stepOutputs[V]) each(visit func(*V)) {
	visit(&out.logits)
	for i := range out.caches {
		visit(&out.caches[i])
	}
	for i := range out.captured {
		visit(&out.captured[i])
	}
	for i := range out.records {
		visit(&out.records[i].before)
		visit(&out.records[i].after)
	}
	visit(&out.nonFinite)
}

// list returns the outputs in the order the compiled graph returns them.
func (out *stepOutputs[V]) list() []V {
	var flat []V
	out.each(func(v *V) { flat = append(flat, *v) })
	return flat
}

// read fills the outputs from flat, in the order of list.
func (out *stepOutputs[V]) read(flat []V) error {
	return readInOrder(out.each, flat, "step graph outputs")
}

// readInOrder assigns flat to the fields each visits, checking the count.
func readInOrder[V any](each func(func(*V)), flat []V, what string) error {
	n := 0
	each(func(v *V) {
		if n < len(flat) {
			*v = flat[n]
		}
		n++
	})
	if n != len(flat) {
		return fmt.Errorf("engine: %d %s, expected %d", len(flat), what, n)
	}
	return nil
}

// stepGraph returns the graph-building function for plan.
func (m *Model) stepGraph(plan stepPlan) func([]*G.Node) []*G.Node {
	return func(flat []*G.Node) []*G.Node {
		m.compiles.Add(1)
		in := newStepInputs[*G.Node](plan, m.cfg.NumLayers, len(m.params))
		if err := in.read(flat); err != nil {
			panic(err) // a bug in this file; Exec turns it into an error
		}
		b := &stepBuilder{m: m, plan: plan}
		return b.build(in).list()
	}
}

// stepBuilder holds the state of building one step graph.
type stepBuilder struct {
	m      *Model
	plan   stepPlan
	g      *G.Graph
	params []*G.Node // Model.params (shapes noted there and on layerParams)

	batch, steps, slots int
	slot                *G.Node    // scalar int32, or [B] with plan.rowSlots
	querySlots          *G.Node    // [1, T] int32 ([B, T] with plan.rowSlots): slot of each query position
	slotIota            *G.Node    // [S] int32
	mask, slidingMask   *G.Node    // [B, T, S] bool
	fullMasks           [2]*G.Node // global and sliding masks as [B, kvH, G, T, S]
	cacheCond           *G.Node    // [B, kvH, S, hd]: slots written this step
	cosG, sinG          *G.Node    // [B, T, 1, hd/2] for global layers
	cosL, sinL          *G.Node    // same for sliding layers
}

// build builds the whole step from its inputs: embedding, blocks with
// hooks, final norm and logits.
func (sb *stepBuilder) build(in *stepInputs[*G.Node]) *stepOutputs[*G.Node] {
	m, cfg := sb.m, sb.m.cfg
	L := cfg.NumLayers
	tokens, pad, caches := in.tokens, in.pad, in.caches
	sb.slot = in.slot
	sb.params = in.params
	hooks := map[int]hookInputs[*G.Node]{}
	for _, hk := range in.hooks {
		hooks[hk.spec.layer] = hk
	}
	sb.g = tokens.Graph()
	g := sb.g
	sb.batch, sb.steps = tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	sb.slots = caches[0].Shape().Dimensions[2]
	B, T, S, H := sb.batch, sb.steps, sb.slots, cfg.HiddenSize

	// Positions: the query at step position t sits in slot slot+t; sequence
	// b's position there is slot+t-pad[b] (0 at its first real token).
	if sb.plan.rowSlots {
		sb.querySlots = G.Add(G.Reshape(G.Iota(g, shapeInt32(T), 0), 1, T), G.Reshape(sb.slot, B, 1))
	} else {
		sb.querySlots = G.Reshape(G.Add(G.Iota(g, shapeInt32(T), 0), sb.slot), 1, T)
	}
	positions := G.Sub(sb.querySlots, G.Reshape(pad, B, 1)) // [B, T]
	sb.slotIota = G.Iota(g, shapeInt32(S), 0)
	sb.buildMasks(pad)
	posF := G.ConvertDType(positions, dtypes.Float32)
	sb.cosG, sb.sinG = sb.rope(posF, m.ropeGlobal)
	sb.cosL, sb.sinL = sb.cosG, sb.sinG
	if m.cfg.RopeLocalTheta > 0 {
		sb.cosL, sb.sinL = sb.rope(posF, m.ropeLocal)
	}

	x := sb.embed(tokens) // [B, T, H]
	if cfg.EmbedScale {
		x = G.Mul(x, G.Const(g, float32(math.Sqrt(float64(H)))))
	}
	out := newStepOutputs[*G.Node](sb.plan, L)
	captured := map[int]*G.Node{}
	recorded := 0                  // out.records filled so far (blocks run in plan.hooks' layer order)
	bad := make([]*G.Node, 0, L+1) // the finite check
	// Left padding is not checked: its values are never attended to.
	unpadded := G.GreaterOrEqual(sb.querySlots, G.Reshape(pad, B, 1)) // [B, T]
	for i := range L {
		var k, v *G.Node
		x, k, v = sb.block(i, x, caches[2*i], caches[2*i+1])
		out.caches[2*i], out.caches[2*i+1] = k, v
		if hk, ok := hooks[i]; ok {
			var before, after *G.Node
			x, before, after = sb.hook(x, hk)
			if hk.spec.record {
				out.records[recorded].before, out.records[recorded].after = before, after
				recorded++
			}
		}
		if sb.plan.rowClamps > 0 {
			var before, after *G.Node
			x, before, after = sb.rowHook(x, in.rows[i])
			out.records[recorded].before, out.records[recorded].after = before, after
			recorded++
		}
		captured[i] = x
		bad = append(bad, nonFiniteCount(G.Square(x), unpadded))
	}
	if !sb.plan.allLogits {
		x = G.Slice(x, G.AxisRange(), G.AxisRange(T-1, T)) // [B, 1, H]
	}
	rows := x.Shape().Dimensions[0] * x.Shape().Dimensions[1]
	x = sb.rmsNorm(x, sb.params[m.norm])
	logits := sb.linear(G.Reshape(x, rows, H), sb.params[m.lmHead]) // [rows, V]
	if cfg.FinalSoftcap > 0 {
		logits = softcap(logits, cfg.FinalSoftcap)
	}
	if sb.plan.allLogits {
		logits = G.Reshape(logits, B, T, cfg.VocabSize)
	} else {
		logits = G.Reshape(logits, B, cfg.VocabSize)
	}
	out.logits = logits
	for i, layer := range sb.plan.capture {
		out.captured[i] = captured[layer]
	}
	if sb.plan.allLogits {
		bad = append(bad, nonFiniteCount(logits, unpadded))
	} else {
		bad = append(bad, nonFiniteCount(logits, nil)) // the last position is never padding
	}
	out.nonFinite = G.Stack(bad, 0)
	return out
}

// nonFiniteCount returns how many values of x [B, T, ...] (or [B, ...] when
// unpadded is nil) at positions where unpadded [B, T] holds are NaN or
// infinite, as a scalar int32. The residual stream is checked through its
// square, so that values too large for the next RMS norm (|x| > 1.8e19,
// whose square overflows float32 and silently zeroes the normalised stream)
// count too.
func nonFiniteCount(x, unpadded *G.Node) *G.Node {
	bad := G.LogicalNot(G.IsFinite(x))
	if unpadded != nil {
		dims := x.Shape().Dimensions
		bad = G.LogicalAnd(bad, G.BroadcastToDims(G.Reshape(unpadded, dims[0], dims[1], 1), dims...))
	}
	return G.ReduceAllSum(G.ConvertDType(bad, dtypes.Int32))
}

// shapeInt32 returns the shape of an int32 vector of length n.
func shapeInt32(n int) shapes.Shape {
	return shapes.Make(dtypes.Int32, n)
}

// buildMasks computes which cache slots each query may attend to:
// causal (slot <= query slot), not padding (slot >= pad[b], except a padding
// query sees itself so its softmax stays finite) and, for sliding layers,
// inside the window (slot > query slot - window).
func (sb *stepBuilder) buildMasks(pad *G.Node) {
	B, T, S := sb.batch, sb.steps, sb.slots
	key := G.Reshape(sb.slotIota, 1, 1, S)
	query := G.ExpandAxes(sb.querySlots, -1)               // [1 or B, T, 1]
	causal := G.LessOrEqual(key, query)                    // [1 or B, T, S]
	real := G.GreaterOrEqual(key, G.Reshape(pad, B, 1, 1)) // [B, 1, S]
	self := G.Equal(key, query)                            // [1 or B, T, S]
	full := []int{B, T, S}
	sb.mask = G.LogicalAnd(G.BroadcastToDims(causal, full...),
		G.LogicalOr(G.BroadcastToDims(real, full...), G.BroadcastToDims(self, full...)))
	sb.slidingMask = sb.mask
	if w := sb.m.cfg.SlidingWindow; w > 0 {
		inWindow := G.GreaterThan(key, G.Sub(query, G.Const(sb.g, int32(w)))) // [1 or B, T, S]
		sb.slidingMask = G.LogicalAnd(sb.mask, G.BroadcastToDims(inWindow, full...))
	}
}

// rope returns cos and sin of positions * invFreq, shaped [B, T, 1, hd/2].
func (sb *stepBuilder) rope(positions *G.Node, invFreq []float32) (cos, sin *G.Node) {
	B, T := sb.batch, sb.steps
	half := len(invFreq)
	freq := G.Reshape(G.Const(sb.g, invFreq), 1, 1, half)
	angles := G.Mul(G.Reshape(positions, B, T, 1), freq) // [B, T, half]
	angles = G.Reshape(angles, B, T, 1, half)
	return G.Cos(angles), G.Sin(angles)
}

// applyRope rotates x [B, T, heads, hd] by the rotate-half convention:
// (x1, x2) -> (x1*cos - x2*sin, x2*cos + x1*sin).
func applyRope(x, cos, sin *G.Node) *G.Node {
	hd := x.Shape().Dimensions[3]
	x1 := G.Slice(x, G.AxisRange(), G.AxisRange(), G.AxisRange(), G.AxisRange(0, hd/2))
	x2 := G.Slice(x, G.AxisRange(), G.AxisRange(), G.AxisRange(), G.AxisRange(hd/2, hd))
	return G.Concatenate([]*G.Node{
		G.Sub(G.Mul(x1, cos), G.Mul(x2, sin)),
		G.Add(G.Mul(x2, cos), G.Mul(x1, sin)),
	}, 3)
}

// rmsNorm normalises x over its last axis and scales by w (Gemma's 1+w is
// folded into w at load time).
func (sb *stepBuilder) rmsNorm(x, w *G.Node) *G.Node {
	rank := x.Rank()
	meanSq := G.ReduceAndKeep(G.Square(x), G.ReduceMean, rank-1)
	eps := G.Const(sb.g, float32(sb.m.cfg.RMSNormEps))
	normed := G.Mul(x, G.Rsqrt(G.Add(meanSq, eps)))
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = 1
	}
	dims[rank-1] = w.Shape().Dimensions[0]
	return G.Mul(normed, G.Reshape(w, dims...))
}

// linear computes x [N, in] times the weight stored as [P, rows, in] (the
// [out, in] matrix cut in P row blocks), giving [N, P*rows]. The P blocks
// form a batch axis, which simplego runs in parallel.
func (sb *stepBuilder) linear(x, w *G.Node) *G.Node {
	n, in := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	p, rows := w.Shape().Dimensions[0], w.Shape().Dimensions[1]
	xb := G.BroadcastToDims(G.Reshape(lowered(x, w), 1, n, in), p, n, in)
	y := raised(G.Einsum("pbi,poi->pbo", xb, w)) // [P, N, rows]
	if p == 1 {
		return G.Reshape(y, n, rows)
	}
	return G.Reshape(G.TransposeAllDims(y, 1, 0, 2), n, p*rows)
}

// embed looks up token embeddings in the [P, V/P, H] table.
func (sb *stepBuilder) embed(tokens *G.Node) *G.Node {
	w := sb.params[sb.m.embed]
	rows := G.Const(sb.g, int32(w.Shape().Dimensions[1]))
	idx := G.Stack([]*G.Node{G.Div(tokens, rows), G.Rem(tokens, rows)}, -1) // [B, T, 2]
	return raised(G.Gather(w, idx))
}

// lowered converts x to w's dtype (bfloat16 weights take bfloat16 inputs).
func lowered(x, w *G.Node) *G.Node {
	if w.DType() != x.DType() {
		return G.ConvertDType(x, w.DType())
	}
	return x
}

// raised converts x to float32 when it is not.
func raised(x *G.Node) *G.Node {
	if x.DType() != dtypes.Float32 {
		return G.ConvertDType(x, dtypes.Float32)
	}
	return x
}

// softcap computes c * tanh(x / c).
func softcap(x *G.Node, c float64) *G.Node {
	g := x.Graph()
	return G.Mul(G.Tanh(G.Div(x, G.Const(g, float32(c)))), G.Const(g, float32(c)))
}

// block runs decoder block i on x [B, T, H] with the layer's caches and
// returns the new residual stream and caches.
func (sb *stepBuilder) block(i int, x, kCache, vCache *G.Node) (*G.Node, *G.Node, *G.Node) {
	m, cfg := sb.m, sb.m.cfg
	lp := m.layers[i]
	p := sb.params
	attn, k, v := sb.attention(i, sb.rmsNorm(x, p[lp.attnNorm]), kCache, vCache)
	if cfg.SandwichNorm {
		attn = sb.rmsNorm(attn, p[lp.postAttnNorm])
		x = G.Add(x, attn)
		mlp := sb.mlp(i, sb.rmsNorm(x, p[lp.preFFNorm]))
		x = G.Add(x, sb.rmsNorm(mlp, p[lp.postFFNorm]))
	} else {
		x = G.Add(x, attn)
		x = G.Add(x, sb.mlp(i, sb.rmsNorm(x, p[lp.postAttnNorm])))
	}
	return x, k, v
}

// mlp computes down(act(gate(x)) * up(x)) for x [B, T, H].
func (sb *stepBuilder) mlp(i int, x *G.Node) *G.Node {
	lp := sb.m.layers[i]
	cfg := sb.m.cfg
	B, T, H := sb.batch, sb.steps, cfg.HiddenSize
	n := B * T
	flat := G.Reshape(x, n, H)
	w := sb.params[lp.gateUp] // [2, I, H]
	inter := w.Shape().Dimensions[1]
	gu := raised(G.Einsum("pbi,poi->pbo", G.BroadcastToDims(G.Reshape(lowered(flat, w), 1, n, H), 2, n, H), w)) // [2, N, I]
	if lp.gateUpBias >= 0 {
		gu = G.Add(gu, G.Reshape(sb.params[lp.gateUpBias], 2, 1, inter))
	}
	gate := G.Reshape(G.Slice(gu, G.AxisRange(0, 1)), n, inter)
	up := G.Reshape(G.Slice(gu, G.AxisRange(1, 2)), n, inter)
	var act *G.Node
	if cfg.Activation == "silu" {
		act = G.Mul(gate, G.Logistic(gate))
	} else {
		act = geluTanh(gate)
	}
	out := sb.linear(G.Mul(act, up), sb.params[lp.down])
	if lp.downBias >= 0 {
		out = G.Add(out, G.Reshape(sb.params[lp.downBias], 1, H))
	}
	return G.Reshape(out, B, T, H)
}

// geluTanh is the tanh approximation of GELU:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
func geluTanh(x *G.Node) *G.Node {
	g := x.Graph()
	c := G.Const(g, float32(math.Sqrt(2/math.Pi)))
	inner := G.Mul(c, G.Add(x, G.Mul(G.Const(g, float32(0.044715)), G.Mul(x, G.Mul(x, x)))))
	return G.Mul(G.Mul(G.Const(g, float32(0.5)), x), G.Add(G.Const(g, float32(1)), G.Tanh(inner)))
}
