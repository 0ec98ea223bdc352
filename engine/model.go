package engine

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"tether/internal/cpubackend"
	"tether/weights"
)

// Model is a decoder-only transformer whose weights are resident on a
// backend, ready to run forward steps. A Model is safe for use by one
// Generate or Forward call at a time; concurrent calls are serialised.
type Model struct {
	backend backends.Backend
	cfg     *weights.Config

	// split is how many row blocks each projection's weight is cut into
	// (see linear): GOMAXPROCS on the go backend, so that each core takes one
	// block; 1 elsewhere.
	split int
	// dynamicUpdate: the backend supports DynamicUpdateSlice for the KV cache.
	dynamicUpdate bool
	// slowCompile: compiling takes seconds (XLA), so shapes use coarse buckets.
	slowCompile bool
	// weightDType is the stored dtype of the projection and embedding
	// matrices (Float32 or BFloat16); norms and biases are always Float32.
	weightDType dtypes.DType
	// cacheDType is the dtype of the K and V caches (LoadOptions.CacheDType).
	cacheDType dtypes.DType

	params []*tensors.Tensor // every weight, resident on the backend
	embed  int               // index in params: embedding [P, V/P, H]
	lmHead int               // index in params: output projection [P, V/P, H] (== embed when tied)
	norm   int               // index in params: final norm [H]
	layers []layerParams

	// storage records which weights are views of the mapped checkpoint.
	storage WeightStorage
	// release ends the model's hold on the mapped checkpoint (nil when no
	// weight is a view of it); Close calls it after freeing the weights.
	release func() error

	ropeGlobal []float32 // inverse frequencies of global layers [HeadDim/2]
	ropeLocal  []float32 // inverse frequencies of sliding layers [HeadDim/2]
	attnScale  float64

	mu          sync.Mutex // serialises runs and guards execs
	execs       map[string]*graph.Exec
	compactExec *graph.Exec           // gathers cache rows when a batch shrinks
	compactions int                   // batch compactions so far (tests)
	compiles    atomic.Int64          // number of graphs built (tests check that hooks do not recompile)
	hookValues  hookValues            // the hook value tensors of the latest step
	buckets     map[CompileBucket]int // graphs built per step shape (see CompileBuckets); guarded by mu
	closed      bool
}

// layerParams holds the indices in Model.params of one decoder block's
// weights; -1 marks an absent tensor. Shapes use H = HiddenSize, hd =
// HeadDim, nH and kvH the query and KV heads, I = IntermediateSize and P a
// projection's row blocks (see linear); norms and biases are float32, the
// other matrices in the weight dtype.
type layerParams struct {
	attnNorm     int // [H]: norm before attention
	postAttnNorm int // [H]: norm after attention (sandwich) or before the MLP
	preFFNorm    int // [H]: norm before the MLP (sandwich norm only)
	postFFNorm   int // [H]: norm after the MLP (sandwich norm only)
	qkv          int // [P, (nH+2*kvH)*hd/P, H]: q, k and v projections stacked by output row
	qkvBias      int // [(nH+2*kvH)*hd]
	o            int // [P, H/P, nH*hd]: attention output projection
	oBias        int // [H]
	qNorm, kNorm int // [hd]: per-head norms of q and k
	gateUp       int // [2, I, H]: gate and up projections
	gateUpBias   int // [2*I]
	down         int // [P, H/P, I]: down projection
	downBias     int // [H]
}

// Config returns the model's configuration.
func (m *Model) Config() *weights.Config { return m.cfg }

// Backend returns the backend the model runs on.
func (m *Model) Backend() backends.Backend { return m.backend }

// Close frees the model's weights and compiled graphs on the backend. The
// backend itself is not finalized.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	for _, e := range m.execs {
		e.Finalize()
	}
	if m.compactExec != nil {
		m.compactExec.Finalize()
	}
	m.execs = nil
	m.hookValues.free()
	for _, t := range m.params {
		_ = t.FinalizeAll()
	}
	m.params = nil
	m.releaseMapping()
}

// releaseMapping ends the model's hold on the mapped checkpoint, once no
// buffer refers to it any more.
func (m *Model) releaseMapping() {
	if m.release != nil {
		_ = m.release() // munmap of a valid mapping does not fail
		m.release = nil
	}
}

// LoadOptions tunes how Load stores the weights.
type LoadOptions struct {
	// WeightDType is the stored dtype of the projection and embedding
	// matrices: "float32", "bfloat16", "float16" (only on backends with
	// float16, such as "cpu"), or "" (also "auto") for the backend's
	// default: the checkpoint's own dtype on "cpu" (see CheckpointDType),
	// float32 on "go", bfloat16 on XLA, where real models run. With
	// bfloat16 (or float16), products take bfloat16 inputs and their results are
	// rounded to bfloat16 (as a bfloat16 PyTorch model does); norms,
	// attention, softmax, hooks and logits stay float32.
	WeightDType string
	// CopyWeights copies every weight into the backend's memory. By default
	// the "cpu" backend reads the weights it uses exactly as stored (same
	// dtype, no transform, parts back to back in the file) where they lie
	// in the memory-mapped checkpoint, so their pages are the page cache's,
	// shared by every process that maps the same file, and need no second
	// copy. Copying is for a checkpoint whose pages are dear to read again
	// after the kernel drops them under memory pressure (a network
	// filesystem), or that may be rewritten in place while the model runs
	// (a mapped page then changes, or faults when the file is truncated).
	// Other backends always copy.
	CopyWeights bool
	// CacheDType is the dtype the K and V caches are held in: "" (also
	// "auto", "float32", "f32") for float32, or "bfloat16" ("bf16") or
	// "float16" ("f16") for half the memory, on backends that write the
	// cache in place ("cpu", XLA; float16 only where the backend has it).
	// New keys and values are rounded to it as they are written; attention
	// reads them widened to float32 and accumulates in float32.
	CacheDType string
}

// cacheDType parses LoadOptions.CacheDType for backend b (nil: any backend,
// for estimates).
func cacheDType(opt string, b backends.Backend) (dtypes.DType, error) {
	var dt dtypes.DType
	switch opt {
	case "", "auto", "float32", "f32":
		return dtypes.Float32, nil
	case "bfloat16", "bf16":
		dt = dtypes.BFloat16
	case "float16", "f16":
		dt = dtypes.Float16
	default:
		return dtypes.InvalidDType, fmt.Errorf("engine: LoadOptions.CacheDType %q, expected \"float32\", \"bfloat16\" or \"float16\"", opt)
	}
	if b == nil {
		return dt, nil
	}
	caps := b.Capabilities()
	if !caps.Operations[backends.OpTypeDynamicUpdateSlice] {
		return dtypes.InvalidDType, fmt.Errorf("engine: LoadOptions.CacheDType %q: backend %q does not write the cache in place; a 16-bit cache needs the \"cpu\" backend or XLA", opt, b.Name())
	}
	if !caps.DTypes[dt] {
		return dtypes.InvalidDType, fmt.Errorf("engine: LoadOptions.CacheDType %q: backend %q has no %s; use \"bfloat16\" or the \"cpu\" backend", opt, b.Name(), dt)
	}
	return dt, nil
}

// Load checks that src holds every tensor cfg expects, with the expected
// shape, and uploads the weights once to b in the layout that is fastest
// there, with default LoadOptions. The weights stay resident until Close.
func Load(b backends.Backend, cfg *weights.Config, src weights.TensorSource) (*Model, error) {
	return LoadWithOptions(b, cfg, src, LoadOptions{})
}

// LoadWithOptions is Load with explicit options.
func LoadWithOptions(b backends.Backend, cfg *weights.Config, src weights.TensorSource, opts LoadOptions) (*Model, error) {
	if b == nil {
		return nil, fmt.Errorf("engine: Load: nil backend")
	}
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	m := &Model{
		backend:       b,
		cfg:           cfg,
		split:         1,
		dynamicUpdate: b.Capabilities().Operations[backends.OpTypeDynamicUpdateSlice],
		execs:         map[string]*graph.Exec{},
		weightDType:   dtypes.Float32,
	}
	m.slowCompile = b.String() != simplego.BackendName && b.String() != cpubackend.BackendName
	cdt, err := cacheDType(opts.CacheDType, b)
	if err != nil {
		return nil, err
	}
	m.cacheDType = cdt
	switch opts.WeightDType {
	case "", "auto":
		switch {
		case m.slowCompile:
			m.weightDType = dtypes.BFloat16
		case b.String() == cpubackend.BackendName:
			m.weightDType = CheckpointDType(src)
		}
	case "float32", "f32":
	case "bfloat16", "bf16":
		m.weightDType = dtypes.BFloat16
	case "float16", "f16":
		if !b.Capabilities().DTypes[dtypes.Float16] {
			return nil, fmt.Errorf("engine: LoadOptions.WeightDType %q: backend %q has no float16; use \"bfloat16\" or the \"cpu\" backend", opts.WeightDType, b.Name())
		}
		m.weightDType = dtypes.Float16
	default:
		return nil, fmt.Errorf("engine: LoadOptions.WeightDType %q, expected \"float32\", \"bfloat16\" or \"float16\"", opts.WeightDType)
	}
	if b.String() == simplego.BackendName {
		// simplego runs the batch axis of a product on up to GOMAXPROCS workers.
		m.split = min(max(runtime.GOMAXPROCS(0), 1), 16)
	}
	m.attnScale = cfg.AttnScale
	if m.attnScale == 0 {
		m.attnScale = 1 / math.Sqrt(float64(cfg.HeadDim))
	}
	m.ropeGlobal = ropeInvFreq(cfg.HeadDim, cfg.RopeTheta, cfg.RopeScaling)
	if cfg.RopeLocalTheta > 0 {
		m.ropeLocal = ropeInvFreq(cfg.HeadDim, cfg.RopeLocalTheta, nil)
	} else {
		m.ropeLocal = m.ropeGlobal
	}
	ld := &loader{m: m, src: src}
	if cb, ok := b.(*cpubackend.Backend); ok && !opts.CopyWeights {
		if ms, ok := src.(mappedSource); ok {
			// The mapping must outlive the views of it: the model holds it
			// until Close, even when the caller closes the checkpoint first.
			release, err := ms.Retain()
			if err != nil {
				return nil, fmt.Errorf("engine: %w", err)
			}
			ld.views, ld.mapped, m.release = cb, ms, release
		}
	}
	if err := ld.loadAll(); err != nil {
		for _, t := range m.params {
			_ = t.FinalizeAll()
		}
		m.releaseMapping()
		return nil, err
	}
	if len(m.storage.Mapped) == 0 {
		m.releaseMapping()
	}
	return m, nil
}

// checkConfig rejects configurations the engine cannot run.
func checkConfig(cfg *weights.Config) error {
	if cfg == nil {
		return fmt.Errorf("engine: nil config")
	}
	positive := []struct {
		name string
		v    int
	}{
		{"VocabSize", cfg.VocabSize}, {"HiddenSize", cfg.HiddenSize}, {"IntermediateSize", cfg.IntermediateSize},
		{"NumLayers", cfg.NumLayers}, {"NumHeads", cfg.NumHeads}, {"NumKVHeads", cfg.NumKVHeads},
		{"HeadDim", cfg.HeadDim}, {"MaxPositions", cfg.MaxPositions},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("engine: config %s = %d, expected > 0", p.name, p.v)
		}
	}
	if cfg.NumHeads%cfg.NumKVHeads != 0 {
		return fmt.Errorf("engine: config NumHeads %d is not a multiple of NumKVHeads %d", cfg.NumHeads, cfg.NumKVHeads)
	}
	if cfg.HeadDim%2 != 0 {
		return fmt.Errorf("engine: config HeadDim %d, expected an even number (rotary embedding)", cfg.HeadDim)
	}
	if !(cfg.RopeTheta > 0) {
		return fmt.Errorf("engine: config RopeTheta %g, expected > 0", cfg.RopeTheta)
	}
	if cfg.RMSNormEps < 0 {
		return fmt.Errorf("engine: config RMSNormEps %g, expected >= 0", cfg.RMSNormEps)
	}
	switch cfg.Activation {
	case "silu", "gelu_pytorch_tanh", "gelu_tanh":
	default:
		return fmt.Errorf("engine: config Activation %q, expected \"silu\" or \"gelu_pytorch_tanh\"", cfg.Activation)
	}
	if len(cfg.SlidingLayers) != 0 && len(cfg.SlidingLayers) != cfg.NumLayers {
		return fmt.Errorf("engine: config SlidingLayers has %d entries, expected NumLayers = %d", len(cfg.SlidingLayers), cfg.NumLayers)
	}
	if cfg.SlidingWindow < 0 {
		return fmt.Errorf("engine: config SlidingWindow %d, expected >= 0", cfg.SlidingWindow)
	}
	if rs := cfg.RopeScaling; rs != nil {
		switch rs.Type {
		case "", "default":
		case "linear":
			if !(rs.Factor > 0) {
				return fmt.Errorf("engine: config RopeScaling linear factor %g, expected > 0", rs.Factor)
			}
		case "llama3":
			if !(rs.Factor > 0) || rs.OriginalMaxPositions <= 0 || !(rs.HighFreqFactor > rs.LowFreqFactor) || !(rs.LowFreqFactor > 0) {
				return fmt.Errorf("engine: config RopeScaling llama3 %+v, expected factor > 0, original_max_position_embeddings > 0 and high_freq_factor > low_freq_factor > 0", *rs)
			}
		default:
			return fmt.Errorf("engine: config RopeScaling type %q is not supported (expected \"linear\" or \"llama3\")", rs.Type)
		}
	}
	return nil
}

// slidingLayer reports whether layer i uses the sliding window.
func (m *Model) slidingLayer(i int) bool {
	return m.cfg.SlidingWindow > 0 && len(m.cfg.SlidingLayers) > i && m.cfg.SlidingLayers[i]
}

// maxBlockRows bounds the rows of one block of a projection: simplego
// switches a product to its "large" algorithm (which re-blocks the weight on
// every call) when one batch example has more than 16*64*64 outputs, so
// blocks of at most 4096 rows keep decoding at up to 16 sequences on the
// fast "small" path, while prefill products (many positions) still take the
// large path that suits them.
const maxBlockRows = 4096

// splitFor returns the number of row blocks for a projection with rows
// output rows. On simplego: the smallest multiple of the worker count that
// divides rows into blocks of at most maxBlockRows, else the largest divisor
// of rows not above the worker count. Elsewhere 1.
func (m *Model) splitFor(rows int) int {
	if m.split <= 1 {
		return 1
	}
	for p := m.split; p <= rows; p += m.split {
		if rows%p == 0 && rows/p <= maxBlockRows {
			return p
		}
	}
	for p := m.split; p > 1; p-- {
		if rows%p == 0 {
			return p
		}
	}
	return 1
}

// ropeInvFreq returns the rotary inverse frequencies 1/theta^(2i/d) for
// i < d/2, rescaled as Hugging Face's "linear" and "llama3" rope types do.
func ropeInvFreq(headDim int, theta float64, scaling *weights.RopeScaling) []float32 {
	half := headDim / 2
	out := make([]float32, half)
	for i := range half {
		// Hugging Face computes the exponent in float32.
		exp := float32(2*i) / float32(headDim)
		inv := float64(1 / float32(math.Pow(theta, float64(exp))))
		if scaling != nil {
			switch scaling.Type {
			case "linear":
				inv /= scaling.Factor
			case "llama3":
				inv = llama3Scale(inv, scaling)
			}
		}
		out[i] = float32(inv)
	}
	return out
}

// llama3Scale applies Llama 3's frequency-dependent rope rescaling to one
// inverse frequency: long wavelengths are divided by the factor, short ones
// kept, and the band between interpolated smoothly.
func llama3Scale(inv float64, s *weights.RopeScaling) float64 {
	orig := float64(s.OriginalMaxPositions)
	lowWavelen := orig / s.LowFreqFactor
	highWavelen := orig / s.HighFreqFactor
	wavelen := 2 * math.Pi / inv
	switch {
	case wavelen > lowWavelen:
		return inv / s.Factor
	case wavelen < highWavelen:
		return inv
	default:
		smooth := (orig/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
		return (1-smooth)*inv/s.Factor + smooth*inv
	}
}

// sortedCopy returns a sorted copy of xs without duplicates.
func sortedCopy(xs []int) []int {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Compilations returns how many step graphs the model has built so far.
// Changing hook values never adds one; a new hook structure, batch size or
// padded length does (once).
func (m *Model) Compilations() int64 { return m.compiles.Load() }

// dtypedSource is a tensor source that can describe its stored tensors
// (weights.Checkpoint does).
type dtypedSource interface {
	Names() []string
	Info(name string) (weights.TensorInfo, error)
}

// CheckpointDType is the dtype the "cpu" backend keeps src's weights in by
// default: BFloat16 when every stored matrix (rank >= 2) is BF16, Float16
// when every one is F16, else Float32 (also for a source that cannot
// describe its tensors, or a mixed one).
func CheckpointDType(src weights.TensorSource) dtypes.DType {
	ds, ok := src.(dtypedSource)
	if !ok {
		return dtypes.Float32
	}
	var seen weights.DType
	for _, name := range ds.Names() {
		info, err := ds.Info(name)
		if err != nil || len(info.Shape) < 2 {
			continue
		}
		if seen != "" && info.DType != seen {
			return dtypes.Float32
		}
		seen = info.DType
	}
	switch seen {
	case weights.BF16:
		return dtypes.BFloat16
	case weights.F16:
		return dtypes.Float16
	}
	return dtypes.Float32
}

// WeightStorage says how a model's weights are held on its backend.
type WeightStorage struct {
	// Mapped names the stored tensors the backend reads where they lie in
	// the memory-mapped checkpoint (read-only views, no copy); Copied
	// names those copied into the backend's memory: held in another dtype,
	// transformed (Gemma's norms hold 1 + the stored weight), parts of one
	// weight not back to back in the file (q, k and v in the usual Hugging
	// Face order), on a backend other than "cpu", with
	// LoadOptions.CopyWeights, or from a source that is not a checkpoint.
	Mapped, Copied []string
	// MappedBytes and CopiedBytes are the sizes of the weights of each
	// kind as held (their sum is HeldWeightBytes).
	MappedBytes, CopiedBytes int64
}

// note records one weight of the stored tensors names, of bytes as held.
func (s *WeightStorage) note(mapped bool, names []string, bytes int64) {
	if mapped {
		s.Mapped = append(s.Mapped, names...)
		s.MappedBytes += bytes
	} else {
		s.Copied = append(s.Copied, names...)
		s.CopiedBytes += bytes
	}
}

// WeightStorage reports which weights are views of the mapped checkpoint
// and which are copies.
func (m *Model) WeightStorage() WeightStorage {
	s := m.storage
	s.Mapped, s.Copied = slices.Clone(s.Mapped), slices.Clone(s.Copied)
	return s
}

// HeldWeightBytes is the storage of the model's weights as the backend
// holds them (in their dtype): what one decode step reads at most.
func (m *Model) HeldWeightBytes() int64 {
	var n int64
	for _, p := range m.params {
		n += int64(p.Shape().Memory())
	}
	return n
}

// CacheDType is the dtype the model's K and V caches are held in
// (LoadOptions.CacheDType).
func (m *Model) CacheDType() dtypes.DType { return m.cacheDType }

// WeightDType is the dtype the model's projection and embedding matrices
// are held in.
func (m *Model) WeightDType() dtypes.DType { return m.weightDType }
