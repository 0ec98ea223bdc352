package engine

import (
	"fmt"
	"math"
	"strings"

	"tether/weights"
)

// refModel is a plain-Go forward pass (loops, float64 accumulation, no
// GoMLX) written from Hugging Face's modeling code, to check the graph
// against a second implementation of the same math.
type refModel struct {
	cfg *weights.Config
	src *memSource
}

// w returns a weight by its standard Hugging Face name. Where the family
// stores it inside a fused tensor (Phi-3's qkv_proj and gate_up_proj), it
// returns the rows modeling_phi3.py gives it: q, k, v in that order; gate,
// then up.
func (r *refModel) w(name string) []float32 {
	if d, ok := r.src.data[name]; ok {
		return d
	}
	cfg := r.cfg
	H, q, kv, inter := cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim, cfg.IntermediateSize
	rowsOf := func(fused string, from, to int) []float32 {
		d := r.src.data[fused]
		if len(d) < to*H {
			return nil
		}
		return d[from*H : to*H]
	}
	for _, f := range []struct {
		part, fused string
		from, to    int
	}{
		{"self_attn.q_proj.weight", "self_attn.qkv_proj.weight", 0, q},
		{"self_attn.k_proj.weight", "self_attn.qkv_proj.weight", q, q + kv},
		{"self_attn.v_proj.weight", "self_attn.qkv_proj.weight", q + kv, q + 2*kv},
		{"mlp.gate_proj.weight", "mlp.gate_up_proj.weight", 0, inter},
		{"mlp.up_proj.weight", "mlp.gate_up_proj.weight", inter, 2 * inter},
	} {
		if prefix, ok := strings.CutSuffix(name, f.part); ok {
			return rowsOf(prefix+f.fused, f.from, f.to)
		}
	}
	return nil
}

// matVec returns W x for W [out, in] row-major.
func matVec(w []float32, x []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := range out {
		var s float64
		row := w[o*in : (o+1)*in]
		for i, v := range row {
			s += float64(v) * x[i]
		}
		y[o] = s
	}
	return y
}

func (r *refModel) rmsNorm(x []float64, w []float32) []float64 {
	var ms float64
	for _, v := range x {
		ms += v * v
	}
	ms /= float64(len(x))
	inv := 1 / math.Sqrt(ms+r.cfg.RMSNormEps)
	out := make([]float64, len(x))
	for i, v := range x {
		scale := float64(w[i])
		if r.cfg.NormPlusOne {
			scale = 1 + scale
		}
		out[i] = v * inv * scale
	}
	return out
}

// invFreq follows transformers' rope_init functions (default, linear, llama3).
func (r *refModel) invFreq(layer int) []float64 {
	cfg := r.cfg
	theta := cfg.RopeTheta
	scaling := cfg.RopeScaling
	sliding := cfg.SlidingWindow > 0 && cfg.SlidingLayers[layer]
	if sliding && cfg.RopeLocalTheta > 0 {
		theta, scaling = cfg.RopeLocalTheta, nil
	}
	d := cfg.HeadDim
	out := make([]float64, d/2)
	for i := range out {
		f := 1 / math.Pow(theta, float64(2*i)/float64(d))
		if scaling != nil && scaling.Type == "linear" {
			f /= scaling.Factor
		}
		if scaling != nil && scaling.Type == "llama3" {
			lowW := float64(scaling.OriginalMaxPositions) / scaling.LowFreqFactor
			highW := float64(scaling.OriginalMaxPositions) / scaling.HighFreqFactor
			wl := 2 * math.Pi / f
			if wl > lowW {
				f = f / scaling.Factor
			} else if wl >= highW {
				sm := (float64(scaling.OriginalMaxPositions)/wl - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor)
				f = (1-sm)*f/scaling.Factor + sm*f
			}
		}
		out[i] = f
	}
	return out
}

func rotateHalf(x []float64, pos int, inv []float64) {
	half := len(x) / 2
	for i := range half {
		c, s := math.Cos(float64(pos)*inv[i]), math.Sin(float64(pos)*inv[i])
		a, b := x[i], x[i+half]
		x[i] = a*c - b*s
		x[i+half] = b*c + a*s
	}
}

// forward returns logits [T][V] and the output of every block [L][T][H] for
// one sequence, applying hooks (Add then clamps, at every position).
func (r *refModel) forward(tokens []int, hooks Hooks) ([][]float64, [][][]float64) {
	cfg := r.cfg
	H, hd, nH, kvH := cfg.HiddenSize, cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	T := len(tokens)
	emb := r.w("model.embed_tokens.weight")
	x := make([][]float64, T)
	for t, id := range tokens {
		x[t] = make([]float64, H)
		for i := range H {
			x[t][i] = float64(emb[id*H+i])
			if cfg.EmbedScale {
				x[t][i] *= float64(float32(math.Sqrt(float64(H))))
			}
		}
	}
	scale := cfg.AttnScale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(hd))
	}
	var hidden [][][]float64
	for l := range cfg.NumLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		inv := r.invFreq(l)
		qs := make([][]float64, T)
		ks := make([][]float64, T)
		vs := make([][]float64, T)
		for t := range T {
			hN := r.rmsNorm(x[t], r.w(p+"input_layernorm.weight"))
			q := matVec(r.w(p+"self_attn.q_proj.weight"), hN, nH*hd)
			k := matVec(r.w(p+"self_attn.k_proj.weight"), hN, kvH*hd)
			v := matVec(r.w(p+"self_attn.v_proj.weight"), hN, kvH*hd)
			if cfg.AttentionBias {
				addBias(q, r.w(p+"self_attn.q_proj.bias"))
				addBias(k, r.w(p+"self_attn.k_proj.bias"))
				addBias(v, r.w(p+"self_attn.v_proj.bias"))
			}
			for h := range nH {
				head := q[h*hd : (h+1)*hd]
				if cfg.QKNorm {
					copy(head, r.rmsNorm(head, r.w(p+"self_attn.q_norm.weight")))
				}
				rotateHalf(head, t, inv)
			}
			for h := range kvH {
				head := k[h*hd : (h+1)*hd]
				if cfg.QKNorm {
					copy(head, r.rmsNorm(head, r.w(p+"self_attn.k_norm.weight")))
				}
				rotateHalf(head, t, inv)
			}
			qs[t], ks[t], vs[t] = q, k, v
		}
		sliding := cfg.SlidingWindow > 0 && cfg.SlidingLayers[l]
		for t := range T {
			attnOut := make([]float64, nH*hd)
			for h := range nH {
				kh := h / (nH / kvH)
				scores := make([]float64, t+1)
				maxS := math.Inf(-1)
				for s := 0; s <= t; s++ {
					var dot float64
					for i := range hd {
						dot += qs[t][h*hd+i] * ks[s][kh*hd+i]
					}
					dot *= scale
					if cfg.AttnSoftcap > 0 {
						dot = cfg.AttnSoftcap * math.Tanh(dot/cfg.AttnSoftcap)
					}
					if sliding && s <= t-cfg.SlidingWindow {
						dot = math.Inf(-1)
					}
					scores[s] = dot
					maxS = math.Max(maxS, dot)
				}
				var sum float64
				for s := range scores {
					scores[s] = math.Exp(scores[s] - maxS)
					sum += scores[s]
				}
				for s := range scores {
					for i := range hd {
						attnOut[h*hd+i] += scores[s] / sum * vs[s][kh*hd+i]
					}
				}
			}
			o := matVec(r.w(p+"self_attn.o_proj.weight"), attnOut, H)
			if cfg.SandwichNorm {
				o = r.rmsNorm(o, r.w(p+"post_attention_layernorm.weight"))
			}
			for i := range H {
				x[t][i] += o[i]
			}
		}
		for t := range T {
			normName := p + "post_attention_layernorm.weight"
			if cfg.SandwichNorm {
				normName = p + "pre_feedforward_layernorm.weight"
			}
			hN := r.rmsNorm(x[t], r.w(normName))
			gate := matVec(r.w(p+"mlp.gate_proj.weight"), hN, cfg.IntermediateSize)
			up := matVec(r.w(p+"mlp.up_proj.weight"), hN, cfg.IntermediateSize)
			for i := range gate {
				g := gate[i]
				if cfg.Activation == "silu" {
					g = g / (1 + math.Exp(-g))
				} else {
					g = 0.5 * g * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(g+0.044715*g*g*g)))
				}
				gate[i] = g * up[i]
			}
			d := matVec(r.w(p+"mlp.down_proj.weight"), gate, H)
			if cfg.SandwichNorm {
				d = r.rmsNorm(d, r.w(p+"post_feedforward_layernorm.weight"))
			}
			for i := range H {
				x[t][i] += d[i]
			}
			if hk := hooks[l]; hk != nil {
				refHook(x[t], hk)
			}
		}
		snapshot := make([][]float64, T)
		for t := range T {
			snapshot[t] = append([]float64(nil), x[t]...)
		}
		hidden = append(hidden, snapshot)
	}
	head := "lm_head.weight"
	if cfg.TieEmbeddings {
		head = "model.embed_tokens.weight"
	}
	logits := make([][]float64, T)
	for t := range T {
		logits[t] = matVec(r.w(head), r.rmsNorm(x[t], r.w("model.norm.weight")), cfg.VocabSize)
		if cfg.FinalSoftcap > 0 {
			for i, v := range logits[t] {
				logits[t][i] = cfg.FinalSoftcap * math.Tanh(v/cfg.FinalSoftcap)
			}
		}
	}
	return logits, hidden
}

// refHook applies a hook to one position: Add, then each clamp.
func refHook(h []float64, hk *LayerHook) {
	for i := range hk.Add {
		h[i] += float64(hk.Add[i])
	}
	for _, c := range hk.Clamps {
		var p float64
		for i := range h {
			p += h[i] * float64(c.Dir[i])
		}
		q := math.Min(math.Max(p, float64(c.Lo)), float64(c.Hi))
		for i := range h {
			h[i] += (q - p) * float64(c.Dir[i])
		}
	}
}

func addBias(x []float64, b []float32) {
	for i := range x {
		x[i] += float64(b[i])
	}
}

// toF32 flattens float64 rows to float32.
func toF32(rows [][]float64) []float32 {
	var out []float32
	for _, r := range rows {
		for _, v := range r {
			out = append(out, float32(v))
		}
	}
	return out
}
