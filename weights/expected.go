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

// ExpectedTensors lists every tensor the standard Hugging Face naming requires
// for this config, in model order: embeddings, each layer's attention, norms
// and MLP, the final norm and (unless tied) lm_head.
func (c *Config) ExpectedTensors() []TensorSpec {
	H, I, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim
	qOut, kvOut := c.NumHeads*hd, c.NumKVHeads*hd
	specs := []TensorSpec{{"model.embed_tokens.weight", []int{V, H}}}
	for l := 0; l < c.NumLayers; l++ {
		p := "model.layers." + strconv.Itoa(l) + "."
		add := func(name string, shape ...int) {
			specs = append(specs, TensorSpec{p + name, shape})
		}
		add("input_layernorm.weight", H)
		add("self_attn.q_proj.weight", qOut, H)
		add("self_attn.k_proj.weight", kvOut, H)
		add("self_attn.v_proj.weight", kvOut, H)
		if c.AttentionBias {
			add("self_attn.q_proj.bias", qOut)
			add("self_attn.k_proj.bias", kvOut)
			add("self_attn.v_proj.bias", kvOut)
		}
		add("self_attn.o_proj.weight", H, qOut)
		if c.AttentionOutBias {
			add("self_attn.o_proj.bias", H)
		}
		if c.QKNorm {
			add("self_attn.q_norm.weight", hd)
			add("self_attn.k_norm.weight", hd)
		}
		add("post_attention_layernorm.weight", H)
		if c.SandwichNorm {
			add("pre_feedforward_layernorm.weight", H)
			add("post_feedforward_layernorm.weight", H)
		}
		add("mlp.gate_proj.weight", I, H)
		add("mlp.up_proj.weight", I, H)
		add("mlp.down_proj.weight", H, I)
		if c.MLPBias {
			add("mlp.gate_proj.bias", I)
			add("mlp.up_proj.bias", I)
			add("mlp.down_proj.bias", H)
		}
	}
	specs = append(specs, TensorSpec{"model.norm.weight", []int{H}})
	if !c.TieEmbeddings {
		specs = append(specs, TensorSpec{"lm_head.weight", []int{V, H}})
	}
	return specs
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
