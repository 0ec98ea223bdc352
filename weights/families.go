package weights

import (
	"fmt"
	"math"
)

// Family is the architecture family of a decoder-only transformer. Every
// supported Hugging Face architecture maps onto one family; the engine builds
// one graph for every family from the switches in Config and the tensor
// layout of Config.Layout.
type Family string

// The supported families. Each is described once, by its familySpec below.
const (
	FamilyLlama   Family = "llama"   // LlamaForCausalLM (Llama 2/3, SmolLM2, llama2.c imports)
	FamilyMistral Family = "mistral" // MistralForCausalLM
	FamilyQwen2   Family = "qwen2"   // Qwen2ForCausalLM (q/k/v bias)
	FamilyQwen3   Family = "qwen3"   // Qwen3ForCausalLM (q/k RMSNorm per head)
	FamilyGemma2  Family = "gemma2"  // Gemma2ForCausalLM
	FamilyGemma3  Family = "gemma3"  // Gemma3ForCausalLM (text), Gemma3ForConditionalGeneration's text tower
	FamilyPhi3    Family = "phi3"    // Phi3ForCausalLM (fused qkv_proj and gate_up_proj)
)

// familySpec is the one description of a family: the config.json names that
// select it, the defaults of its transformers config class, how its
// config.json keys set Config's switches, and where its tensors differ from
// the standard Llama layout. A family writes only what differs from Llama;
// everything it leaves zero is Llama's behaviour.
//
// Adding a family: a Family constant, a familySpec value listed in families
// (reusing the helpers below, as Phi-3 reuses Mistral's window), its real
// config.json in testdata/configs with the published parameter count in
// TestParamCountMatchesPublishedCounts, and a PyTorch fixture from
// engine/testdata/reference/make_fixtures.py. Config parsing, the expected
// tensor check and the engine's loader read the spec; none of them names a
// family. A new switch (a norm placement, a rope variant) is a Config field
// set in traits and read by the engine's graph.
type familySpec struct {
	family Family
	// archs are the config.json "architectures" entries of the family.
	archs []archSpec
	// defaults are the values of transformers' config class for absent keys.
	defaults familyDefaults
	// traits sets the family's Config switches from config.json (activation,
	// biases, norms, sliding layers, attention scale); nil: none beyond the
	// common keys.
	traits func(p *configParser)
	// layer replaces entries of block l's standard layout (prefix is
	// "model.layers.<l>."); nil: the standard Hugging Face names.
	layer func(c *Config, prefix string, l *LayerLayout)
	// ropeHint is added to the error for an unsupported rope_scaling type.
	ropeHint string
}

// archSpec is one config.json "architectures" entry of a family.
type archSpec struct {
	name      string // e.g. "LlamaForCausalLM"
	modelType string // the config.json "model_type" that implies it when "architectures" is absent
	// textPrefix, when set, marks a multimodal checkpoint: the text model's
	// keys are in "text_config" and its tensors under this name prefix.
	textPrefix string
}

// familyDefaults are the values transformers' config class of a family uses
// for keys absent from config.json.
type familyDefaults struct {
	vocab, hidden, intermediate, layers, heads int
	kvHeads                                    int // 0: same as heads
	headDim                                    int // 0: hidden / heads
	maxPositions                               int
	eps, ropeTheta                             float64
	tie                                        bool
	bos, eos, pad                              int // -1: None
	slidingWindow                              int
	attnSoftcap, finalSoftcap                  float64
	activation                                 string // "": silu
}

// families lists every supported family.
var families = []*familySpec{&llama, &mistral, &qwen2, &qwen3, &gemma2, &gemma3, &phi3}

var llama = familySpec{
	family: FamilyLlama,
	archs:  []archSpec{{name: "LlamaForCausalLM", modelType: "llama"}},
	defaults: familyDefaults{vocab: 32000, hidden: 4096, intermediate: 11008, layers: 32, heads: 32,
		maxPositions: 2048, eps: 1e-6, ropeTheta: 10000, bos: 1, eos: 2, pad: -1},
	traits: func(p *configParser) {
		c := p.cfg
		c.MLPBias = p.bool("mlp_bias", false) // only LlamaMLP has this switch
		c.AttentionBias = p.bool("attention_bias", false)
		c.AttentionOutBias = c.AttentionBias
	},
}

var mistral = familySpec{
	family: FamilyMistral,
	archs:  []archSpec{{name: "MistralForCausalLM", modelType: "mistral"}},
	defaults: familyDefaults{vocab: 32000, hidden: 4096, intermediate: 14336, layers: 32, heads: 32, kvHeads: 8,
		maxPositions: 4096 * 32, eps: 1e-6, ropeTheta: 10000, bos: 1, eos: 2, pad: -1, slidingWindow: 4096},
	// Mistral's projections never have biases.
	traits: func(p *configParser) { p.windowOnEveryLayer() },
}

var qwen2 = familySpec{
	family: FamilyQwen2,
	archs:  []archSpec{{name: "Qwen2ForCausalLM", modelType: "qwen2"}},
	defaults: familyDefaults{vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32,
		maxPositions: 32768, eps: 1e-6, ropeTheta: 10000, bos: -1, eos: -1, pad: -1, slidingWindow: 4096},
	traits: func(p *configParser) {
		p.cfg.AttentionBias = true // q/k/v always, o_proj never
		p.qwenSliding()
	},
}

var qwen3 = familySpec{
	family: FamilyQwen3,
	archs:  []archSpec{{name: "Qwen3ForCausalLM", modelType: "qwen3"}},
	defaults: familyDefaults{vocab: 151936, hidden: 4096, intermediate: 22016, layers: 32, heads: 32, kvHeads: 32, headDim: 128,
		maxPositions: 32768, eps: 1e-6, ropeTheta: 10000, bos: -1, eos: -1, pad: -1, slidingWindow: 4096},
	traits: func(p *configParser) {
		c := p.cfg
		c.AttentionBias = p.bool("attention_bias", false)
		c.AttentionOutBias = c.AttentionBias
		c.QKNorm = true
		p.qwenSliding()
	},
}

var gemma2 = familySpec{
	family: FamilyGemma2,
	archs:  []archSpec{{name: "Gemma2ForCausalLM", modelType: "gemma2"}},
	defaults: familyDefaults{vocab: 256000, hidden: 2304, intermediate: 9216, layers: 26, heads: 8, kvHeads: 4, headDim: 256,
		maxPositions: 8192, eps: 1e-6, ropeTheta: 10000, tie: true, bos: 2, eos: 1, pad: 0, slidingWindow: 4096,
		attnSoftcap: 50, finalSoftcap: 30, activation: "gelu_pytorch_tanh"},
	traits: func(p *configParser) {
		p.gemma()
		for i := range p.cfg.SlidingLayers {
			p.cfg.SlidingLayers[i] = i%2 == 0
		}
	},
}

var gemma3 = familySpec{
	family: FamilyGemma3,
	archs: []archSpec{{name: "Gemma3ForCausalLM", modelType: "gemma3_text"},
		{name: "Gemma3ForConditionalGeneration", modelType: "gemma3", textPrefix: "language_model."}},
	defaults: familyDefaults{vocab: 262208, hidden: 2304, intermediate: 9216, layers: 26, heads: 8, kvHeads: 4, headDim: 256,
		maxPositions: 131072, eps: 1e-6, ropeTheta: 1e6, tie: true, bos: 2, eos: 1, pad: 0, slidingWindow: 4096,
		activation: "gelu_pytorch_tanh"},
	traits: func(p *configParser) {
		p.gemma()
		c := p.cfg
		c.QKNorm = true
		c.RopeLocalTheta = p.float("rope_local_base_freq", 10000)
		pattern := p.int("_sliding_window_pattern", 6) // newer transformers' spelling
		pattern = p.int("sliding_window_pattern", pattern)
		if pattern <= 0 {
			p.keep(fmt.Errorf("weights: %s: field \"sliding_window_pattern\": expected a positive integer, got %d", p.text.source, pattern))
			return
		}
		for i := range c.SlidingLayers {
			c.SlidingLayers[i] = (i+1)%pattern != 0
		}
	},
}

// phi3 is Llama with fused projections (modeling_phi3.py): qkv_proj holds
// the q, k and v rows in that order, gate_up_proj the gate rows, then the up
// rows. Those concatenations are the engine's own layout, so the fused
// tensors load as they are. sliding_window, when set, applies to every
// layer, as in Mistral.
var phi3 = familySpec{
	family: FamilyPhi3,
	archs:  []archSpec{{name: "Phi3ForCausalLM", modelType: "phi3"}},
	defaults: familyDefaults{vocab: 32064, hidden: 3072, intermediate: 8192, layers: 32, heads: 32,
		maxPositions: 4096, eps: 1e-5, ropeTheta: 10000, bos: 1, eos: 32000, pad: 32000},
	traits: func(p *configParser) {
		if f := p.float("partial_rotary_factor", 1); f != 1 {
			p.keep(fmt.Errorf("weights: %s: field \"partial_rotary_factor\": %v is not supported (expected 1, as in Phi-3 and Phi-3.5)", p.text.source, f))
		}
		p.windowOnEveryLayer()
	},
	layer: func(c *Config, prefix string, l *LayerLayout) {
		qkv := (c.NumHeads + 2*c.NumKVHeads) * c.HeadDim
		l.QKV = tensor(prefix+"self_attn.qkv_proj.weight", qkv, c.HiddenSize)
		l.GateUp = tensor(prefix+"mlp.gate_up_proj.weight", 2*c.IntermediateSize, c.HiddenSize)
	},
	ropeHint: "Phi-3 models without rope_scaling (the 4k-context variants) are supported; the longrope (su) scaling of the 128k variants is not",
}

// familyOf returns the spec of family f, or nil for an unknown family.
func familyOf(f Family) *familySpec {
	for _, s := range families {
		if s.family == f {
			return s
		}
	}
	return nil
}

// lookupArch returns the family and architecture entry for a config.json
// "architectures" entry.
func lookupArch(name string) (*familySpec, archSpec, bool) {
	for _, s := range families {
		for _, a := range s.archs {
			if a.name == name {
				return s, a, true
			}
		}
	}
	return nil, archSpec{}, false
}

// archForModelType returns the architecture that config.json's "model_type"
// implies, or "" for an unknown one.
func archForModelType(modelType string) string {
	for _, s := range families {
		for _, a := range s.archs {
			if a.modelType == modelType {
				return a.name
			}
		}
	}
	return ""
}

// windowOnEveryLayer reads sliding_window (null or absent: the family's
// default) and applies it to every layer (Mistral, Phi-3).
func (p *configParser) windowOnEveryLayer() {
	c := p.cfg
	c.SlidingWindow = p.int("sliding_window", p.def.slidingWindow)
	if !p.text.has("sliding_window") && p.text.present("sliding_window") {
		c.SlidingWindow = 0
	}
	for i := range c.SlidingLayers {
		c.SlidingLayers[i] = c.SlidingWindow > 0
	}
}

// qwenSliding applies use_sliding_window: layers from max_window_layers on
// use the window.
func (p *configParser) qwenSliding() {
	c := p.cfg
	if !p.bool("use_sliding_window", false) {
		c.SlidingWindow = 0
		return
	}
	c.SlidingWindow = p.int("sliding_window", p.def.slidingWindow)
	from := p.int("max_window_layers", 28)
	for i := range c.SlidingLayers {
		c.SlidingLayers[i] = i >= from
	}
}

// gemma fills the switches Gemma 2 and Gemma 3 share: (1 + w) norms, sandwich
// norms, embedding scale, query_pre_attn_scalar, softcaps and the window
// length.
func (p *configParser) gemma() {
	c, d := p.cfg, p.def
	c.NormPlusOne, c.EmbedScale, c.SandwichNorm = true, true, true
	c.AttentionBias = p.bool("attention_bias", false)
	c.AttentionOutBias = c.AttentionBias
	c.AttnScale = 1 / math.Sqrt(p.float("query_pre_attn_scalar", 256))
	c.AttnSoftcap = p.float("attn_logit_softcapping", d.attnSoftcap)
	if p.text.present("attn_logit_softcapping") && !p.text.has("attn_logit_softcapping") {
		c.AttnSoftcap = 0
	}
	c.FinalSoftcap = p.float("final_logit_softcapping", d.finalSoftcap)
	if p.text.present("final_logit_softcapping") && !p.text.has("final_logit_softcapping") {
		c.FinalSoftcap = 0
	}
	c.SlidingWindow = p.int("sliding_window", d.slidingWindow)
}
