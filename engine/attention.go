package engine

import (
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	G "github.com/gomlx/gomlx/pkg/core/graph"
)

// attention runs layer i's self-attention on the normalised x [B, T, H]:
// projections, per-head q/k norm, rotary embedding, the cache write and
// grouped-query attention over the cache. It returns the output [B, T, H]
// and the updated caches.
func (sb *stepBuilder) attention(i int, x, kCache, vCache *G.Node) (*G.Node, *G.Node, *G.Node) {
	m, cfg := sb.m, sb.m.cfg
	lp := m.layers[i]
	p := sb.params
	B, T, H := sb.batch, sb.steps, cfg.HiddenSize
	nH, kvH, hd := cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim
	group := nH / kvH
	n := B * T
	qkv := sb.linear(G.Reshape(x, n, H), p[lp.qkv]) // [N, (nH+2kvH)*hd]
	if lp.qkvBias >= 0 {
		qkv = G.Add(qkv, G.Reshape(p[lp.qkvBias], 1, (nH+2*kvH)*hd))
	}
	v := G.Reshape(G.Slice(qkv, G.AxisRange(), G.AxisRange((nH+kvH)*hd, (nH+2*kvH)*hd)), B, T, kvH, hd)
	sliding := m.slidingLayer(i)
	cos, sin := sb.cosG, sb.sinG
	if sliding {
		cos, sin = sb.cosL, sb.sinL
	}
	var q, k *G.Node
	if lp.qNorm >= 0 {
		q = G.Reshape(G.Slice(qkv, G.AxisRange(), G.AxisRange(0, nH*hd)), B, T, nH, hd)
		k = G.Reshape(G.Slice(qkv, G.AxisRange(), G.AxisRange(nH*hd, (nH+kvH)*hd)), B, T, kvH, hd)
		q = applyRope(sb.rmsNorm(q, p[lp.qNorm]), cos, sin)
		k = applyRope(sb.rmsNorm(k, p[lp.kNorm]), cos, sin)
	} else {
		// q's and k's heads rotated together (the same values as one by one, in half the
		// operations), then split.
		qk := applyRope(G.Reshape(G.Slice(qkv, G.AxisRange(), G.AxisRange(0, (nH+kvH)*hd)), B, T, nH+kvH, hd), cos, sin)
		q = G.Slice(qk, G.AxisRange(), G.AxisRange(), G.AxisRange(0, nH))
		k = G.Slice(qk, G.AxisRange(), G.AxisRange(), G.AxisRange(nH, nH+kvH))
	}
	kCache = sb.writeCache(kCache, G.TransposeAllDims(k, 0, 2, 1, 3)) // [B, kvH, S, hd]
	vCache = sb.writeCache(vCache, G.TransposeAllDims(v, 0, 2, 1, 3))

	// A 16-bit cache is read widened to float32 (exact); the cpu backend
	// widens it inside the product instead of converting the whole cache.
	kRead, vRead := kCache, vCache
	if kCache.DType() != dtypes.Float32 {
		kRead, vRead = G.ConvertDType(kCache, dtypes.Float32), G.ConvertDType(vCache, dtypes.Float32)
	}
	qg := G.Reshape(q, B, T, kvH, group, hd)
	scores := G.Einsum("btkgd,bksd->bkgts", qg, kRead) // [B, kvH, G, T, S]
	scores = G.Mul(scores, G.Const(sb.g, float32(m.attnScale)))
	if cfg.AttnSoftcap > 0 {
		scores = softcap(scores, cfg.AttnSoftcap)
	}
	scores = G.Where(sb.scoresMask(sliding), scores, G.Const(sb.g, float32(-1e30)))
	probs := G.Softmax(scores, -1)
	out := G.Einsum("bkgts,bksd->btkgd", probs, vRead) // [B, T, kvH, G, hd]
	o := sb.linear(G.Reshape(out, n, nH*hd), p[lp.o])
	if lp.oBias >= 0 {
		o = G.Add(o, G.Reshape(p[lp.oBias], 1, H))
	}
	return G.Reshape(o, B, T, H), kCache, vCache
}

// writeCache stores kv [B, kvH, T, hd] (float32) into cache [B, kvH, S, hd]
// at slots slot .. slot+T-1, rounded to the cache's dtype. Backends with
// DynamicUpdateSlice use it; others (simplego) select between the cache and
// the new values with a mask over the slots.
func (sb *stepBuilder) writeCache(cache, kv *G.Node) *G.Node {
	dims := cache.Shape().Dimensions
	B, kvH, S, hd := dims[0], dims[1], dims[2], dims[3]
	T := sb.steps
	g := sb.g
	toCache := func(x *G.Node) *G.Node {
		if cache.DType() != x.DType() {
			return G.ConvertDType(x, cache.DType())
		}
		return x
	}
	if sb.m.dynamicUpdate && !sb.plan.rowSlots {
		zero := G.Const(g, int32(0))
		return G.DynamicUpdateSlice(cache, toCache(kv), []*G.Node{zero, zero, sb.slot, zero})
	}
	if sb.m.dynamicUpdate && T == 1 {
		kv = toCache(kv)
		// The Batcher's decode step: each row writes its one slot in place,
		// instead of a masked select over the whole cache.
		zero := G.Const(g, int32(0))
		for b := range B {
			row := G.Slice(kv, G.AxisRange(b, b+1))                  // [1, kvH, 1, hd]
			slot := G.Reshape(G.Slice(sb.slot, G.AxisRange(b, b+1))) // scalar
			cache = G.DynamicUpdateSlice(cache, row, []*G.Node{G.Const(g, int32(b)), zero, slot, zero})
		}
		return cache
	}
	var written *G.Node
	if T == 1 {
		written = G.BroadcastToDims(kv, B, kvH, S, hd)
	} else {
		// One-hot [T, S] product: exact, since each slot sums one value times 1.
		if sb.plan.rowSlots {
			oneHot := G.ConvertDType(G.Equal(G.Reshape(sb.querySlots, B, T, 1), G.Reshape(sb.slotIota, 1, 1, S)), dtypes.Float32)
			written = G.Einsum("bktd,bts->bksd", kv, oneHot)
		} else {
			oneHot := G.ConvertDType(G.Equal(G.Reshape(sb.querySlots, T, 1), G.Reshape(sb.slotIota, 1, S)), dtypes.Float32)
			written = G.Einsum("bktd,ts->bksd", kv, oneHot)
		}
	}
	if sb.cacheCond == nil {
		// Built once per step and shared by every layer.
		first := G.Reshape(sb.slot, -1, 1) // [1 or B, 1]
		iota := G.Reshape(sb.slotIota, 1, S)
		inStep := G.LogicalAnd(G.GreaterOrEqual(iota, first),
			G.LessThan(iota, G.Add(first, G.Const(g, int32(T))))) // [1 or B, S]
		sb.cacheCond = G.BroadcastToDims(G.Reshape(inStep, -1, 1, S, 1), B, kvH, S, hd)
	}
	return G.Where(sb.cacheCond, toCache(written), cache)
}

// scoresMask returns the attention mask broadcast to the scores' shape
// [B, kvH, G, T, S], built once per step for global and sliding layers.
func (sb *stepBuilder) scoresMask(sliding bool) *G.Node {
	i := 0
	mask := sb.mask
	if sliding {
		i, mask = 1, sb.slidingMask
	}
	if sb.fullMasks[i] == nil {
		cfg := sb.m.cfg
		B, T, S := sb.batch, sb.steps, sb.slots
		kvH, group := cfg.NumKVHeads, cfg.NumHeads/cfg.NumKVHeads
		sb.fullMasks[i] = G.BroadcastToDims(G.Reshape(mask, B, 1, 1, T, S), B, kvH, group, T, S)
	}
	return sb.fullMasks[i]
}
