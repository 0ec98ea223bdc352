package engine

import (
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"tether/weights"
)

// loader reads tensors from a source, checks their shapes and uploads them to
// the model's backend in the engine's layout.
type loader struct {
	m   *Model
	src weights.TensorSource
}

// read returns the tensor called name after checking its shape.
func (ld *loader) read(name string, shape ...int) ([]float32, error) {
	if !ld.src.Has(name) {
		return nil, fmt.Errorf("engine: missing tensor %q (expected shape %v)", name, shape)
	}
	data, got, err := ld.src.Float32(name)
	if err != nil {
		return nil, fmt.Errorf("engine: tensor %q: %w", name, err)
	}
	if !slices.Equal(got, shape) {
		return nil, fmt.Errorf("engine: tensor %q has shape %v, expected %v", name, got, shape)
	}
	if len(data) != product(shape) {
		return nil, fmt.Errorf("engine: tensor %q has %d values, expected %d for shape %v", name, len(data), product(shape), shape)
	}
	return data, nil
}

// upload allocates a float32 buffer of the given dimensions on the backend,
// lets fill write its values and returns its index in the model's params.
// On simplego fill writes the backend's (shared) memory directly, so each
// weight is copied once.
func (ld *loader) upload(name string, fill func(dst []float32) error, dims ...int) (int, error) {
	return ld.uploadAs(dtypes.Float32, name, fill, dims...)
}

// uploadMatrix uploads a large weight in the model's weight dtype.
func (ld *loader) uploadMatrix(name string, fill func(dst []float32) error, dims ...int) (int, error) {
	return ld.uploadAs(ld.m.weightDType, name, fill, dims...)
}

// uploadAs is upload with the stored dtype: Float32, or BFloat16 (values
// rounded to nearest even).
func (ld *loader) uploadAs(dtype dtypes.DType, name string, fill func(dst []float32) error, dims ...int) (int, error) {
	be := ld.m.backend
	shape := shapes.Make(dtype, dims...)
	var buf backends.Buffer
	if dtype == dtypes.Float32 && be.String() == simplego.BackendName && be.HasSharedBuffers() {
		b, flat, err := be.NewSharedBuffer(0, shape)
		if err != nil {
			return -1, fmt.Errorf("engine: allocating tensor %q %v: %w", name, dims, err)
		}
		if err := fill(flat.([]float32)); err != nil {
			_ = be.BufferFinalize(b)
			return -1, err
		}
		buf = b
	} else {
		host := make([]float32, shape.Size())
		if err := fill(host); err != nil {
			return -1, err
		}
		var flat any = host
		if dtype == dtypes.BFloat16 {
			bf := make([]bfloat16.BFloat16, len(host))
			for i, v := range host {
				bf[i] = bfloat16.FromBits(weights.BF16FromFloat32(v))
			}
			flat = bf
		}
		b, err := be.BufferFromFlatData(0, flat, shape)
		if err != nil {
			return -1, fmt.Errorf("engine: uploading tensor %q %v: %w", name, dims, err)
		}
		buf = b
	}
	t, err := tensors.FromBuffer(be, buf)
	if err != nil {
		return -1, fmt.Errorf("engine: tensor %q: %w", name, err)
	}
	ld.m.params = append(ld.m.params, t)
	return len(ld.m.params) - 1, nil
}

// concat returns a fill function copying the named tensors, checked
// against dims and for non-finite values (see copyFinite), one after the
// other.
func (ld *loader) concat(names []string, dims [][]int, transform func([]float32)) func([]float32) error {
	return func(dst []float32) error {
		off := 0
		for i, name := range names {
			data, err := ld.read(name, dims[i]...)
			if err != nil {
				return err
			}
			if err := copyFinite(dst[off:off+len(data)], data); err != nil {
				return fmt.Errorf("engine: tensor %q %v: %w", name, dims[i], err)
			}
			if transform != nil {
				transform(dst[off : off+len(data)])
			}
			off += len(data)
		}
		return nil
	}
}

// copyFinite copies src to dst and fails at the first NaN or infinite value.
// It copies and scans in blocks small enough to stay in the CPU cache, so
// the scan costs little next to the copy.
func copyFinite(dst, src []float32) error {
	const block = 16 << 10
	for start := 0; start < len(src); start += block {
		end := min(start+block, len(src))
		copy(dst[start:end], src[start:end])
		if j := weights.FirstNonFinite(dst[start:end]); j >= 0 {
			return fmt.Errorf("value %v at flat index %d is not finite (corrupt weights)", dst[start+j], start+j)
		}
	}
	return nil
}

// vector loads a 1-D tensor of length n (norm weights, biases). plusOne adds
// 1 to every entry (Gemma's RMSNorm scales by 1 + weight).
func (ld *loader) vector(name string, n int, plusOne bool) (int, error) {
	var addOne func([]float32)
	if plusOne {
		addOne = func(x []float32) {
			for i := range x {
				x[i] = 1 + x[i]
			}
		}
	}
	return ld.upload(name, ld.concat([]string{name}, [][]int{{n}}, addOne), n)
}

// projection loads the [out, in] weights named in names, stacks them along
// the output rows and uploads them as [P, rows/P, in] (see linear).
func (ld *loader) projection(names []string, outs []int, in int) (int, error) {
	total := 0
	dims := make([][]int, len(names))
	for i, o := range outs {
		total += o
		dims[i] = []int{o, in}
	}
	p := ld.m.splitFor(total)
	return ld.uploadMatrix(names[0], ld.concat(names, dims, nil), p, total/p, in)
}

// biases loads and concatenates 1-D biases.
func (ld *loader) biases(names []string, outs []int) (int, error) {
	total := 0
	dims := make([][]int, len(names))
	for i, o := range outs {
		total += o
		dims[i] = []int{o}
	}
	return ld.upload(names[0], ld.concat(names, dims, nil), total)
}

// loadAll loads every tensor the configuration expects.
func (ld *loader) loadAll() error {
	m, cfg := ld.m, ld.m.cfg
	h, hd, inter := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize
	qOut, kvOut := cfg.NumHeads*hd, cfg.NumKVHeads*hd
	var err error
	if m.embed, err = ld.projection([]string{"model.embed_tokens.weight"}, []int{cfg.VocabSize}, h); err != nil {
		return err
	}
	if cfg.TieEmbeddings {
		m.lmHead = m.embed
	} else if m.lmHead, err = ld.projection([]string{"lm_head.weight"}, []int{cfg.VocabSize}, h); err != nil {
		return err
	}
	if m.norm, err = ld.vector("model.norm.weight", h, cfg.NormPlusOne); err != nil {
		return err
	}
	m.layers = make([]layerParams, cfg.NumLayers)
	for i := range cfg.NumLayers {
		if err := ld.loadLayer(i, h, hd, inter, qOut, kvOut); err != nil {
			return err
		}
	}
	return nil
}

// loadLayer loads decoder block i.
func (ld *loader) loadLayer(i, h, hd, inter, qOut, kvOut int) error {
	cfg := ld.m.cfg
	lp := layerParams{qkvBias: -1, oBias: -1, qNorm: -1, kNorm: -1, gateUpBias: -1, downBias: -1,
		preFFNorm: -1, postFFNorm: -1}
	pre := fmt.Sprintf("model.layers.%d.", i)
	attn := pre + "self_attn."
	mlp := pre + "mlp."
	var err error
	step := func(f func() (int, error), dst *int) {
		if err == nil {
			*dst, err = f()
		}
	}
	plus := cfg.NormPlusOne
	step(func() (int, error) { return ld.vector(pre+"input_layernorm.weight", h, plus) }, &lp.attnNorm)
	step(func() (int, error) { return ld.vector(pre+"post_attention_layernorm.weight", h, plus) }, &lp.postAttnNorm)
	if cfg.SandwichNorm {
		step(func() (int, error) { return ld.vector(pre+"pre_feedforward_layernorm.weight", h, plus) }, &lp.preFFNorm)
		step(func() (int, error) { return ld.vector(pre+"post_feedforward_layernorm.weight", h, plus) }, &lp.postFFNorm)
	}
	qkvNames := []string{attn + "q_proj.weight", attn + "k_proj.weight", attn + "v_proj.weight"}
	qkvOuts := []int{qOut, kvOut, kvOut}
	step(func() (int, error) { return ld.projection(qkvNames, qkvOuts, h) }, &lp.qkv)
	if cfg.AttentionBias {
		names := []string{attn + "q_proj.bias", attn + "k_proj.bias", attn + "v_proj.bias"}
		step(func() (int, error) { return ld.biases(names, qkvOuts) }, &lp.qkvBias)
	}
	step(func() (int, error) { return ld.projection([]string{attn + "o_proj.weight"}, []int{h}, qOut) }, &lp.o)
	if cfg.AttentionOutBias {
		step(func() (int, error) { return ld.biases([]string{attn + "o_proj.bias"}, []int{h}) }, &lp.oBias)
	}
	if cfg.QKNorm {
		step(func() (int, error) { return ld.vector(attn+"q_norm.weight", hd, plus) }, &lp.qNorm)
		step(func() (int, error) { return ld.vector(attn+"k_norm.weight", hd, plus) }, &lp.kNorm)
	}
	// gate and up always form two blocks, so one batched product computes both.
	step(func() (int, error) { return ld.gateUp(mlp, inter, h) }, &lp.gateUp)
	if cfg.MLPBias {
		names := []string{mlp + "gate_proj.bias", mlp + "up_proj.bias"}
		step(func() (int, error) { return ld.biases(names, []int{inter, inter}) }, &lp.gateUpBias)
	}
	step(func() (int, error) { return ld.projection([]string{mlp + "down_proj.weight"}, []int{h}, inter) }, &lp.down)
	if cfg.MLPBias {
		step(func() (int, error) { return ld.biases([]string{mlp + "down_proj.bias"}, []int{h}) }, &lp.downBias)
	}
	if err != nil {
		return err
	}
	ld.m.layers[i] = lp
	return nil
}

// gateUp loads gate_proj and up_proj as one [2, inter, h] tensor.
func (ld *loader) gateUp(mlp string, inter, h int) (int, error) {
	names := []string{mlp + "gate_proj.weight", mlp + "up_proj.weight"}
	return ld.uploadMatrix(names[0], ld.concat(names, [][]int{{inter, h}, {inter, h}}, nil), 2, inter, h)
}

// product returns the product of dims.
func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
