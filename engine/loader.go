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
	"github.com/x448/float16"

	"tether/internal/cpubackend"
	"tether/weights"
)

// loader reads tensors from a source, checks their shapes and uploads them to
// the model's backend in the engine's layout.
type loader struct {
	m   *Model
	src weights.TensorSource
	// views is the "cpu" backend when weights may be read where they lie in
	// the mapped checkpoint (see mapView), mapped that checkpoint; both nil
	// otherwise.
	views  *cpubackend.Backend
	mapped mappedSource
}

// mappedSource is a tensor source whose tensors lie in memory-mapped files
// (weights.Checkpoint).
type mappedSource interface {
	Info(name string) (weights.TensorInfo, error)
	Span(names ...string) ([]byte, bool)
	Retain() (release func() error, err error)
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

// uploadAs allocates a buffer of dtype (Float32, BFloat16 or Float16) and
// the given dimensions on the backend, lets fill write its values (16-bit
// values rounded to nearest even) and returns its index in the model's
// params. On simplego and cpu fill writes the backend's (shared) memory
// directly, so each weight is copied once.
func (ld *loader) uploadAs(dtype dtypes.DType, name string, fill func(dst []float32) error, dims ...int) (int, error) {
	be := ld.m.backend
	shape := shapes.Make(dtype, dims...)
	var buf backends.Buffer
	shared := (be.String() == simplego.BackendName || be.String() == cpubackend.BackendName) && be.HasSharedBuffers()
	if shared && (dtype == dtypes.Float32 || be.String() == cpubackend.BackendName) {
		// The backend's own storage is filled (16-bit weights through one
		// float32 scratch copy): the weights are held once, in their dtype.
		b, flat, err := be.NewSharedBuffer(0, shape)
		if err != nil {
			return -1, fmt.Errorf("engine: allocating tensor %q %v: %w", name, dims, err)
		}
		if err := fillAs(flat, shape.Size(), fill); err != nil {
			_ = be.BufferFinalize(b)
			return -1, err
		}
		buf = b
	} else {
		flat, err := hostAs(dtype, shape.Size(), fill)
		if err != nil {
			return -1, err
		}
		b, err := be.BufferFromFlatData(0, flat, shape)
		if err != nil {
			return -1, fmt.Errorf("engine: uploading tensor %q %v: %w", name, dims, err)
		}
		buf = b
	}
	return ld.add(name, buf)
}

// add appends buf, the weight called name, to the model's params and
// returns its index.
func (ld *loader) add(name string, buf backends.Buffer) (int, error) {
	t, err := tensors.FromBuffer(ld.m.backend, buf)
	if err != nil {
		_ = ld.m.backend.BufferFinalize(buf)
		return -1, fmt.Errorf("engine: tensor %q: %w", name, err)
	}
	ld.m.params = append(ld.m.params, t)
	return len(ld.m.params) - 1, nil
}

// uploadParts uploads the concatenation of the named tensors (of shapes
// dims), each changed by transform unless it is nil, as a weight of dtype
// and dimensions outDims: a read-only view of the mapped checkpoint when
// its stored bytes are that weight already (see mapView), else a copy.
func (ld *loader) uploadParts(dtype dtypes.DType, names []string, dims [][]int, transform func([]float32), outDims ...int) (int, error) {
	if transform == nil {
		buf, err := ld.mapView(dtype, names, dims, outDims)
		if err != nil {
			return -1, err
		}
		if buf != nil {
			i, err := ld.add(names[0], buf)
			if err == nil {
				ld.m.storage.note(true, names, int64(ld.m.params[i].Shape().Memory()))
			}
			return i, err
		}
	}
	i, err := ld.uploadAs(dtype, names[0], ld.concat(names, dims, transform), outDims...)
	if err == nil {
		ld.m.storage.note(false, names, int64(ld.m.params[i].Shape().Memory()))
	}
	return i, err
}

// mapView returns a read-only buffer of the "cpu" backend over the stored
// bytes of the named tensors when the engine uses them exactly as stored:
// every part has the expected shape and is stored in dtype (the dtype the
// weight is held in), and the parts lie back to back in one file in the
// engine's order, aligned to the dtype. Its values are checked for NaN and
// Inf, as copies are. A nil buffer (and nil error) means the weight is to
// be copied: the backend is not "cpu", mapping is off, the host is
// big-endian, or the stored bytes are not the weight.
func (ld *loader) mapView(dtype dtypes.DType, names []string, dims [][]int, outDims []int) (backends.Buffer, error) {
	if ld.views == nil {
		return nil, nil
	}
	stored := make([]weights.TensorInfo, len(names))
	for i, name := range names {
		info, err := ld.mapped.Info(name)
		if err != nil || storedDType(info.DType) != dtype || !slices.Equal(info.Shape, dims[i]) {
			return nil, nil
		}
		stored[i] = info
	}
	data, ok := ld.mapped.Span(names...)
	if !ok || !cpubackend.CanView(dtype, data) {
		return nil, nil
	}
	off := int64(0)
	for i, info := range stored {
		if j, v := weights.FirstNonFiniteRaw(info.DType, data[off:off+info.Length]); j >= 0 {
			return nil, fmt.Errorf("engine: tensor %q %v: value %v at flat index %d is not finite (corrupt weights)", names[i], dims[i], v, j)
		}
		off += info.Length
	}
	buf, err := ld.views.NewReadOnlyBuffer(shapes.Make(dtype, outDims...), data)
	if err != nil {
		return nil, fmt.Errorf("engine: tensor %q %v: %w", names[0], outDims, err)
	}
	return buf, nil
}

// storedDType is the backend dtype of a stored dtype (InvalidDType for
// those the engine does not hold).
func storedDType(d weights.DType) dtypes.DType {
	switch d {
	case weights.F32:
		return dtypes.Float32
	case weights.BF16:
		return dtypes.BFloat16
	case weights.F16:
		return dtypes.Float16
	}
	return dtypes.InvalidDType
}

// fillAs runs fill on float32 values and stores them in flat, a []float32,
// []bfloat16.BFloat16 or []float16.Float16 of n elements (16-bit values
// rounded to nearest even).
func fillAs(flat any, n int, fill func(dst []float32) error) error {
	if f, ok := flat.([]float32); ok {
		return fill(f)
	}
	host := make([]float32, n)
	if err := fill(host); err != nil {
		return err
	}
	switch dst := flat.(type) {
	case []bfloat16.BFloat16:
		for i, v := range host {
			dst[i] = bfloat16.FromBits(weights.BF16FromFloat32(v))
		}
	case []float16.Float16:
		for i, v := range host {
			dst[i] = float16.Fromfloat32(v)
		}
	default:
		return fmt.Errorf("engine: weight storage %T, expected float32, bfloat16 or float16", flat)
	}
	return nil
}

// hostAs returns n values written by fill as a new slice of dtype (Float32,
// BFloat16 or Float16).
func hostAs(dtype dtypes.DType, n int, fill func(dst []float32) error) (any, error) {
	var flat any
	switch dtype {
	case dtypes.BFloat16:
		flat = make([]bfloat16.BFloat16, n)
	case dtypes.Float16:
		flat = make([]float16.Float16, n)
	default:
		flat = make([]float32, n)
	}
	return flat, fillAs(flat, n, fill)
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

// parts returns the names and shapes of w's stored tensors, checking that
// each has rank rank and, for matrices, in columns.
func parts(what string, w weights.Weight, rank, in int) ([]string, [][]int, error) {
	if !w.Present() {
		return nil, nil, fmt.Errorf("engine: %s: no stored tensor in the layout", what)
	}
	names := make([]string, len(w.Parts))
	dims := make([][]int, len(w.Parts))
	for i, p := range w.Parts {
		if len(p.Shape) != rank || (rank == 2 && p.Shape[1] != in) {
			return nil, nil, fmt.Errorf("engine: %s: layout gives tensor %q shape %v, expected rank %d with %d columns", what, p.Name, p.Shape, rank, in)
		}
		names[i], dims[i] = p.Name, p.Shape
	}
	return names, dims, nil
}

// vector loads a 1-D weight of length n (norm weights, biases; a
// concatenation for fused biases). plusOne adds 1 to every entry (Gemma's
// RMSNorm scales by 1 + weight).
func (ld *loader) vector(what string, w weights.Weight, n int, plusOne bool) (int, error) {
	names, dims, err := parts(what, w, 1, 0)
	if err != nil {
		return -1, err
	}
	if w.Rows() != n {
		return -1, fmt.Errorf("engine: %s: layout gives %d values, expected %d", what, w.Rows(), n)
	}
	var addOne func([]float32)
	if plusOne {
		addOne = func(x []float32) {
			for i := range x {
				x[i] = 1 + x[i]
			}
		}
	}
	return ld.uploadParts(dtypes.Float32, names, dims, addOne, n)
}

// projection loads a matrix weight of `in` columns (its parts' rows stacked)
// and uploads it as [P, rows/P, in] (see linear), or as [blocks, rows/blocks,
// in] when blocks > 0 (gate|up: one batched product computes both).
func (ld *loader) projection(what string, w weights.Weight, rows, in, blocks int) (int, error) {
	names, dims, err := parts(what, w, 2, in)
	if err != nil {
		return -1, err
	}
	if w.Rows() != rows {
		return -1, fmt.Errorf("engine: %s: layout gives %d rows, expected %d", what, w.Rows(), rows)
	}
	p := blocks
	if p == 0 {
		p = ld.m.splitFor(rows)
	}
	// The parts' rows stacked, row-major, are the bytes of [p, rows/p, in].
	return ld.uploadParts(ld.m.weightDType, names, dims, nil, p, rows/p, in)
}

// loadAll loads every weight of the configuration's layout.
func (ld *loader) loadAll() error {
	m, cfg := ld.m, ld.m.cfg
	lay := cfg.Layout()
	h, v := cfg.HiddenSize, cfg.VocabSize
	var err error
	if m.embed, err = ld.projection("embedding", lay.Embed, v, h, 0); err != nil {
		return err
	}
	if cfg.TieEmbeddings {
		m.lmHead = m.embed
	} else if m.lmHead, err = ld.projection("lm_head", lay.LMHead, v, h, 0); err != nil {
		return err
	}
	if m.norm, err = ld.vector("final norm", lay.Norm, h, cfg.NormPlusOne); err != nil {
		return err
	}
	if len(lay.Layers) != cfg.NumLayers {
		return fmt.Errorf("engine: layout has %d layers, expected %d", len(lay.Layers), cfg.NumLayers)
	}
	m.layers = make([]layerParams, cfg.NumLayers)
	for i := range cfg.NumLayers {
		if m.layers[i], err = ld.loadLayer(i, &lay.Layers[i]); err != nil {
			return err
		}
	}
	return nil
}

// loadLayer loads decoder block i from its layout; optional weights absent
// from the layout get index -1.
func (ld *loader) loadLayer(i int, ll *weights.LayerLayout) (layerParams, error) {
	cfg := ld.m.cfg
	h, hd, inter := cfg.HiddenSize, cfg.HeadDim, cfg.IntermediateSize
	qOut, kvOut := cfg.NumHeads*hd, cfg.NumKVHeads*hd
	qkv := qOut + 2*kvOut
	plus := cfg.NormPlusOne
	var lp layerParams
	var err error
	// vec loads a 1-D weight; an optional one absent from the layout gets -1.
	vec := func(dst *int, what string, w weights.Weight, n int, plusOne, optional bool) {
		*dst = -1
		if err == nil && (w.Present() || !optional) {
			*dst, err = ld.vector(fmt.Sprintf("layer %d %s", i, what), w, n, plusOne)
		}
	}
	mat := func(dst *int, what string, w weights.Weight, rows, in, blocks int) {
		if err == nil {
			*dst, err = ld.projection(fmt.Sprintf("layer %d %s", i, what), w, rows, in, blocks)
		}
	}
	vec(&lp.attnNorm, "input norm", ll.AttnNorm, h, plus, false)
	vec(&lp.postAttnNorm, "post-attention norm", ll.PostAttnNorm, h, plus, false)
	vec(&lp.preFFNorm, "pre-feedforward norm", ll.PreFFNorm, h, plus, true)
	vec(&lp.postFFNorm, "post-feedforward norm", ll.PostFFNorm, h, plus, true)
	mat(&lp.qkv, "q|k|v projection", ll.QKV, qkv, h, 0)
	vec(&lp.qkvBias, "q|k|v bias", ll.QKVBias, qkv, false, true)
	mat(&lp.o, "output projection", ll.O, h, qOut, 0)
	vec(&lp.oBias, "output bias", ll.OBias, h, false, true)
	vec(&lp.qNorm, "q norm", ll.QNorm, hd, plus, true)
	vec(&lp.kNorm, "k norm", ll.KNorm, hd, plus, true)
	// gate and up form two blocks, so one batched product computes both.
	mat(&lp.gateUp, "gate|up projection", ll.GateUp, 2*inter, h, 2)
	vec(&lp.gateUpBias, "gate|up bias", ll.GateUpBias, 2*inter, false, true)
	mat(&lp.down, "down projection", ll.Down, h, inter, 0)
	vec(&lp.downBias, "down bias", ll.DownBias, h, false, true)
	return lp, err
}

// product returns the product of dims.
func product(dims []int) int {
	n := 1
	for _, d := range dims {
		n *= d
	}
	return n
}
