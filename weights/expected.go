package weights

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// TensorSpec is a tensor a model needs: its standard Hugging Face name and shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// Weight is one weight of the engine's layout: the rows of its stored
// tensors (Parts, in order) concatenated. A weight with no parts is absent.
// Most weights are one stored tensor; the engine's fused q|k|v and gate|up
// weights are three and two tensors in the standard naming, and one fused
// tensor in families that store them so (Phi-3).
type Weight struct {
	Parts []TensorSpec
}

// tensor returns a weight stored as one tensor.
func tensor(name string, shape ...int) Weight {
	return Weight{Parts: []TensorSpec{{name, shape}}}
}

// rows returns a weight stored as the given [outs[i], in] tensors.
func rows(names []string, outs []int, in int) Weight {
	w := Weight{Parts: make([]TensorSpec, len(names))}
	for i, n := range names {
		w.Parts[i] = TensorSpec{n, []int{outs[i], in}}
	}
	return w
}

// vectors returns a weight stored as the given 1-D tensors of lengths ns.
func vectors(names []string, ns []int) Weight {
	w := Weight{Parts: make([]TensorSpec, len(names))}
	for i, n := range names {
		w.Parts[i] = TensorSpec{n, []int{ns[i]}}
	}
	return w
}

// Present reports whether the weight exists in this configuration.
func (w Weight) Present() bool { return len(w.Parts) > 0 }

// Rows returns the length of the first axis of the concatenation.
func (w Weight) Rows() int {
	n := 0
	for _, p := range w.Parts {
		if len(p.Shape) > 0 {
			n += p.Shape[0]
		}
	}
	return n
}

// LayerLayout says where each weight of one decoder block is stored. Absent
// weights have no parts. Shapes: H hidden size, I intermediate size, D head
// size, Q = NumHeads*D, K = NumKVHeads*D.
type LayerLayout struct {
	AttnNorm     Weight // [H] input_layernorm
	QKV          Weight // [Q+2K, H]: q, k, v rows in that order
	QKVBias      Weight // [Q+2K]
	O            Weight // [H, Q]
	OBias        Weight // [H]
	QNorm, KNorm Weight // [D] per-head norms (QKNorm)
	PostAttnNorm Weight // [H] post_attention_layernorm
	PreFFNorm    Weight // [H] (SandwichNorm)
	PostFFNorm   Weight // [H] (SandwichNorm)
	GateUp       Weight // [2I, H]: gate rows, then up rows
	Down         Weight // [H, I]
	GateUpBias   Weight // [2I]
	DownBias     Weight // [H]
}

// weights returns the block's weights in model order.
func (l *LayerLayout) weights() []Weight {
	return []Weight{l.AttnNorm, l.QKV, l.QKVBias, l.O, l.OBias, l.QNorm, l.KNorm, l.PostAttnNorm,
		l.PreFFNorm, l.PostFFNorm, l.GateUp, l.Down, l.GateUpBias, l.DownBias}
}

// Layout says where every weight of the model is stored.
type Layout struct {
	Embed  Weight // [V, H] model.embed_tokens.weight
	Norm   Weight // [H] model.norm.weight
	LMHead Weight // [V, H] lm_head.weight; absent when TieEmbeddings
	Layers []LayerLayout
}

// Layout returns where the checkpoint of this config stores each weight:
// the standard Hugging Face names, as its switches select them (biases,
// q/k norms, sandwich norms), with the family's own names where it differs.
func (c *Config) Layout() Layout {
	H, V := c.HiddenSize, c.VocabSize
	out := Layout{
		Embed:  tensor("model.embed_tokens.weight", V, H),
		Norm:   tensor("model.norm.weight", H),
		Layers: make([]LayerLayout, max(c.NumLayers, 0)),
	}
	if !c.TieEmbeddings {
		out.LMHead = tensor("lm_head.weight", V, H)
	}
	spec := familyOf(c.Family)
	for l := range out.Layers {
		p := "model.layers." + strconv.Itoa(l) + "."
		out.Layers[l] = c.standardLayer(p)
		if spec != nil && spec.layer != nil {
			spec.layer(c, p, &out.Layers[l])
		}
	}
	return out
}

// standardLayer is the Llama naming of block weights under prefix p.
func (c *Config) standardLayer(p string) LayerLayout {
	H, I, hd := c.HiddenSize, c.IntermediateSize, c.HeadDim
	qOut, kvOut := c.NumHeads*hd, c.NumKVHeads*hd
	attn, mlp := p+"self_attn.", p+"mlp."
	qkvOuts := []int{qOut, kvOut, kvOut}
	l := LayerLayout{
		AttnNorm:     tensor(p+"input_layernorm.weight", H),
		QKV:          rows([]string{attn + "q_proj.weight", attn + "k_proj.weight", attn + "v_proj.weight"}, qkvOuts, H),
		O:            tensor(attn+"o_proj.weight", H, qOut),
		PostAttnNorm: tensor(p+"post_attention_layernorm.weight", H),
		GateUp:       rows([]string{mlp + "gate_proj.weight", mlp + "up_proj.weight"}, []int{I, I}, H),
		Down:         tensor(mlp+"down_proj.weight", H, I),
	}
	if c.AttentionBias {
		l.QKVBias = vectors([]string{attn + "q_proj.bias", attn + "k_proj.bias", attn + "v_proj.bias"}, qkvOuts)
	}
	if c.AttentionOutBias {
		l.OBias = tensor(attn+"o_proj.bias", H)
	}
	if c.QKNorm {
		l.QNorm = tensor(attn+"q_norm.weight", hd)
		l.KNorm = tensor(attn+"k_norm.weight", hd)
	}
	if c.SandwichNorm {
		l.PreFFNorm = tensor(p+"pre_feedforward_layernorm.weight", H)
		l.PostFFNorm = tensor(p+"post_feedforward_layernorm.weight", H)
	}
	if c.MLPBias {
		l.GateUpBias = vectors([]string{mlp + "gate_proj.bias", mlp + "up_proj.bias"}, []int{I, I})
		l.DownBias = tensor(mlp+"down_proj.bias", H)
	}
	return l
}

// ExpectedTensors lists every stored tensor of Layout, in model order:
// embeddings, each layer's attention, norms and MLP, the final norm and
// (unless tied) lm_head.
func (c *Config) ExpectedTensors() []TensorSpec {
	lay := c.Layout()
	specs := slices.Clone(lay.Embed.Parts)
	for i := range lay.Layers {
		for _, w := range lay.Layers[i].weights() {
			specs = append(specs, w.Parts...)
		}
	}
	specs = append(specs, lay.Norm.Parts...)
	return append(specs, lay.LMHead.Parts...)
}

// ParamCount returns the number of parameters in ExpectedTensors (a tied
// lm_head counted once).
func (c *Config) ParamCount() int64 {
	var n int64
	for _, s := range c.ExpectedTensors() {
		e := int64(1)
		for _, d := range s.Shape {
			e *= int64(d)
		}
		n += e
	}
	return n
}

// ShapeSource is a TensorSource that can report a tensor's shape without
// converting it (Checkpoint does); ValidateSource uses it when available.
type ShapeSource interface {
	Info(name string) (TensorInfo, error)
}

// ValidateSource checks that src holds every tensor of ExpectedTensors with
// the expected shape and a float type. All problems are reported, each naming
// the tensor, the expected and the actual shape.
func (c *Config) ValidateSource(src TensorSource) error {
	var problems []string
	for _, s := range c.ExpectedTensors() {
		if !src.Has(s.Name) {
			problems = append(problems, fmt.Sprintf("tensor %q missing (expected shape %v)", s.Name, s.Shape))
			continue
		}
		var shape []int
		if ss, ok := src.(ShapeSource); ok {
			info, err := ss.Info(s.Name)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if !info.DType.IsFloat() {
				problems = append(problems, fmt.Sprintf("tensor %q has dtype %s, expected F32, BF16 or F16", s.Name, info.DType))
				continue
			}
			shape = info.Shape
		} else {
			_, sh, err := src.Float32(s.Name)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			shape = sh
		}
		if !slices.Equal(shape, s.Shape) {
			problems = append(problems, fmt.Sprintf("tensor %q has shape %v, expected %v", s.Name, shape, s.Shape))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 10
	msg := strings.Join(problems[:min(len(problems), show)], "; ")
	if len(problems) > show {
		msg += fmt.Sprintf("; and %d more", len(problems)-show)
	}
	return fmt.Errorf("weights: %s checkpoint does not match its config: %w", c.Architecture, errors.New(msg))
}

// MemorySource is an in-memory TensorSource of float32 tensors (for tests
// and converters).
type MemorySource map[string]MemoryTensor

// MemoryTensor is one tensor of a MemorySource.
type MemoryTensor struct {
	Shape []int
	Data  []float32
}

// Float32 returns the named tensor.
func (m MemorySource) Float32(name string) ([]float32, []int, error) {
	t, ok := m[name]
	if !ok {
		return nil, nil, fmt.Errorf("weights: memory source: tensor %q: %w", name, ErrTensorNotFound)
	}
	return t.Data, t.Shape, nil
}

// Has reports whether the tensor exists.
func (m MemorySource) Has(name string) bool {
	_, ok := m[name]
	return ok
}
