package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"tether/weights"
)

// memSource is an in-memory weights.TensorSource for tests.
type memSource struct {
	data   map[string][]float32
	shapes map[string][]int
}

func (s *memSource) Float32(name string) ([]float32, []int, error) {
	d, ok := s.data[name]
	if !ok {
		return nil, nil, fmt.Errorf("memSource: no tensor %q", name)
	}
	return d, s.shapes[name], nil
}

func (s *memSource) Has(name string) bool { _, ok := s.data[name]; return ok }

// set stores a tensor.
func (s *memSource) set(name string, data []float32, shape ...int) {
	s.data[name] = data
	s.shapes[name] = shape
}

// tinyConfig returns a small configuration of the given family exercising
// its distinctive switches.
func tinyConfig(family weights.Family) *weights.Config {
	cfg := &weights.Config{
		Family: family, VocabSize: 96, HiddenSize: 32, IntermediateSize: 48, NumLayers: 3,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 8, MaxPositions: 128, RMSNormEps: 1e-5,
		RopeTheta: 10000, Activation: "silu", BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: -1,
		SlidingLayers: make([]bool, 3),
	}
	switch family {
	case weights.FamilyLlama:
		cfg.TieEmbeddings = true
		cfg.RopeTheta = 500000
		cfg.RopeScaling = &weights.RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 16}
	case weights.FamilyMistral, weights.FamilyPhi3:
		cfg.SlidingWindow = 5
		for i := range cfg.SlidingLayers {
			cfg.SlidingLayers[i] = true
		}
	case weights.FamilyQwen2:
		cfg.AttentionBias = true
		cfg.RopeTheta = 1000000
	case weights.FamilyQwen3:
		cfg.QKNorm = true
		cfg.HeadDim = 16 // head_dim independent of hidden/heads
		cfg.TieEmbeddings = true
	case weights.FamilyGemma2:
		cfg.NormPlusOne, cfg.SandwichNorm, cfg.EmbedScale = true, true, true
		cfg.Activation = "gelu_pytorch_tanh"
		cfg.AttnScale = 1 / math.Sqrt(12)
		cfg.AttnSoftcap, cfg.FinalSoftcap = 50, 30
		cfg.SlidingWindow = 4
		cfg.SlidingLayers = []bool{true, false, true}
		cfg.TieEmbeddings = true
	case weights.FamilyGemma3:
		cfg.NormPlusOne, cfg.SandwichNorm, cfg.EmbedScale, cfg.QKNorm = true, true, true, true
		cfg.Activation = "gelu_pytorch_tanh"
		cfg.AttnScale = 1 / math.Sqrt(8)
		cfg.SlidingWindow = 4
		cfg.SlidingLayers = []bool{true, true, false}
		cfg.RopeTheta = 1000000
		cfg.RopeLocalTheta = 10000
		cfg.RopeScaling = &weights.RopeScaling{Type: "linear", Factor: 8}
		cfg.TieEmbeddings = true
	}
	return cfg
}

// allFamilies lists the families tests run over.
var allFamilies = []weights.Family{weights.FamilyLlama, weights.FamilyMistral, weights.FamilyQwen2,
	weights.FamilyQwen3, weights.FamilyGemma2, weights.FamilyGemma3, weights.FamilyPhi3}

// randomSource returns random weights for cfg, scaled so activations stay
// in a healthy range.
func randomSource(cfg *weights.Config, seed uint64) *memSource {
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &memSource{data: map[string][]float32{}, shapes: map[string][]int{}}
	mat := func(name string, out, in int) {
		d := make([]float32, out*in)
		scale := 1 / math.Sqrt(float64(in))
		for i := range d {
			d[i] = float32(rng.NormFloat64() * scale)
		}
		s.set(name, d, out, in)
	}
	vec := func(name string, n int, center, spread float64) {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(center + spread*rng.NormFloat64())
		}
		s.set(name, d, n)
	}
	normCenter := 1.0
	if cfg.NormPlusOne {
		normCenter = 0
	}
	// Every tensor of the family's layout (weights.Config.Layout), so the
	// names come from the one family description.
	for _, spec := range cfg.ExpectedTensors() {
		switch name := spec.Name; {
		case name == "model.embed_tokens.weight":
			emb := make([]float32, product(spec.Shape))
			for i := range emb {
				emb[i] = float32(rng.NormFloat64())
				if cfg.EmbedScale {
					emb[i] /= float32(math.Sqrt(float64(cfg.HiddenSize)))
				}
			}
			s.set(name, emb, spec.Shape...)
		case strings.HasSuffix(name, "norm.weight"):
			vec(name, spec.Shape[0], normCenter, 0.1)
		case strings.HasSuffix(name, ".bias"):
			vec(name, spec.Shape[0], 0, 0.5)
		default:
			mat(name, spec.Shape[0], spec.Shape[1])
		}
	}
	return s
}

// testBackend is the backend engine tests run on: $TETHER_TEST_BACKEND (for
// example xla:cuda on a GPU machine), else the pure-Go backend.
func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	name := os.Getenv("TETHER_TEST_BACKEND")
	if name == "" {
		name = "go"
	}
	b, err := NewBackend(name)
	if err != nil {
		t.Fatalf("TETHER_TEST_BACKEND=%q: %v", name, err)
	}
	return b
}

// loadTiny loads a random tiny model of family on the test backend.
func loadTiny(t testing.TB, family weights.Family) (*Model, *memSource) {
	t.Helper()
	cfg := tinyConfig(family)
	src := randomSource(cfg, 42)
	b := testBackend(t)
	m, err := Load(b, cfg, src)
	if err != nil {
		t.Fatalf("%s: Load: %v", family, err)
	}
	t.Cleanup(m.Close)
	return m, src
}

// randomTokens returns n random token ids below vocab.
func randomTokens(rng *rand.Rand, n, vocab int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = rng.IntN(vocab)
	}
	return out
}

// maxRelDiff returns max |a-b| / (max |b| + tiny) over the slices.
func maxRelDiff(a, b []float32) float64 {
	var diff, scale float64
	for i := range a {
		diff = math.Max(diff, math.Abs(float64(a[i])-float64(b[i])))
		scale = math.Max(scale, math.Abs(float64(b[i])))
	}
	return diff / (scale + 1e-12)
}

// tinyLlamaJSON is the config.json of a small random Llama-family model.
var tinyLlamaJSON = []byte(`{"architectures": ["LlamaForCausalLM"], "model_type": "llama",
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
  "rope_theta": 10000, "hidden_act": "silu", "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}`)

// writeRandomCheckpoint writes a random model of cfgJSON (seed, stored in dt) and opens it; the
// checkpoint is closed when the test ends.
func writeRandomCheckpoint(t *testing.T, cfgJSON []byte, seed uint64, dt weights.DType) (*weights.Config, *weights.Checkpoint) {
	t.Helper()
	dir := t.TempDir()
	if err := weights.WriteRandomModel(dir, cfgJSON, seed, dt); err != nil {
		t.Fatal(err)
	}
	cfg, err := weights.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := weights.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ck.Close() })
	ck.SetPrefix(cfg.TensorPrefix)
	return cfg, ck
}
