package weights

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// slidingEvery returns n flags with flag i = sliding(i).
func slidingEvery(n int, sliding func(i int) bool) []bool {
	out := make([]bool, n)
	for i := range out {
		out[i] = sliding(i)
	}
	return out
}

func TestParseConfigRealModels(t *testing.T) {
	tests := []struct {
		file string
		want Config
	}{
		{"smollm2-135m-instruct.json", Config{Architecture: "LlamaForCausalLM", ModelType: "llama", Family: FamilyLlama,
			VocabSize: 49152, HiddenSize: 576, IntermediateSize: 1536, NumLayers: 30, NumHeads: 9, NumKVHeads: 3, HeadDim: 64,
			MaxPositions: 8192, RMSNormEps: 1e-5, RopeTheta: 100000, TieEmbeddings: true, Activation: "silu",
			AttnScale: 1.0 / 8, SlidingLayers: make([]bool, 30), BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: 2, TorchDType: "bfloat16"}},
		{"llama-3.2-1b.json", Config{Architecture: "LlamaForCausalLM", ModelType: "llama", Family: FamilyLlama,
			VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192, NumLayers: 16, NumHeads: 32, NumKVHeads: 8, HeadDim: 64,
			MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
			RopeScaling:   &RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
			TieEmbeddings: true, Activation: "silu", AttnScale: 1.0 / 8, SlidingLayers: make([]bool, 16),
			BOSTokenID: 128000, EOSTokenIDs: []int{128001}, PadTokenID: -1, TorchDType: "bfloat16"}},
		{"qwen2.5-1.5b.json", Config{Architecture: "Qwen2ForCausalLM", ModelType: "qwen2", Family: FamilyQwen2,
			VocabSize: 151936, HiddenSize: 1536, IntermediateSize: 8960, NumLayers: 28, NumHeads: 12, NumKVHeads: 2, HeadDim: 128,
			MaxPositions: 131072, RMSNormEps: 1e-6, RopeTheta: 1e6, TieEmbeddings: true, AttentionBias: true, Activation: "silu",
			AttnScale: 1 / math.Sqrt(128), SlidingLayers: make([]bool, 28),
			BOSTokenID: 151643, EOSTokenIDs: []int{151643}, PadTokenID: -1, TorchDType: "bfloat16"}},
		{"qwen3-0.6b.json", Config{Architecture: "Qwen3ForCausalLM", ModelType: "qwen3", Family: FamilyQwen3,
			VocabSize: 151936, HiddenSize: 1024, IntermediateSize: 3072, NumLayers: 28, NumHeads: 16, NumKVHeads: 8, HeadDim: 128,
			MaxPositions: 40960, RMSNormEps: 1e-6, RopeTheta: 1e6, TieEmbeddings: true, QKNorm: true, Activation: "silu",
			AttnScale: 1 / math.Sqrt(128), SlidingLayers: make([]bool, 28),
			BOSTokenID: 151643, EOSTokenIDs: []int{151645}, PadTokenID: -1, TorchDType: "bfloat16"}},
		{"mistral-7b-v0.1.json", Config{Architecture: "MistralForCausalLM", ModelType: "mistral", Family: FamilyMistral,
			VocabSize: 32000, HiddenSize: 4096, IntermediateSize: 14336, NumLayers: 32, NumHeads: 32, NumKVHeads: 8, HeadDim: 128,
			MaxPositions: 32768, RMSNormEps: 1e-5, RopeTheta: 10000, Activation: "silu", AttnScale: 1 / math.Sqrt(128),
			SlidingWindow: 4096, SlidingLayers: slidingEvery(32, func(int) bool { return true }),
			BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: -1, TorchDType: "bfloat16"}},
		{"gemma-2-2b.json", Config{Architecture: "Gemma2ForCausalLM", ModelType: "gemma2", Family: FamilyGemma2,
			VocabSize: 256000, HiddenSize: 2304, IntermediateSize: 9216, NumLayers: 26, NumHeads: 8, NumKVHeads: 4, HeadDim: 256,
			MaxPositions: 8192, RMSNormEps: 1e-6, NormPlusOne: true, RopeTheta: 10000, TieEmbeddings: true,
			Activation: "gelu_pytorch_tanh", SandwichNorm: true, EmbedScale: true, AttnScale: 1.0 / 16,
			AttnSoftcap: 50, FinalSoftcap: 30, SlidingWindow: 4096, SlidingLayers: slidingEvery(26, func(i int) bool { return i%2 == 0 }),
			BOSTokenID: 2, EOSTokenIDs: []int{1}, PadTokenID: 0, TorchDType: "float32"}},
		{"gemma-3-1b-it.json", Config{Architecture: "Gemma3ForCausalLM", ModelType: "gemma3_text", Family: FamilyGemma3,
			VocabSize: 262144, HiddenSize: 1152, IntermediateSize: 6912, NumLayers: 26, NumHeads: 4, NumKVHeads: 1, HeadDim: 256,
			MaxPositions: 32768, RMSNormEps: 1e-6, NormPlusOne: true, RopeTheta: 1e6, RopeLocalTheta: 10000, TieEmbeddings: true,
			QKNorm: true, Activation: "gelu_pytorch_tanh", SandwichNorm: true, EmbedScale: true, AttnScale: 1.0 / 16,
			SlidingWindow: 512, SlidingLayers: slidingEvery(26, func(i int) bool { return (i+1)%6 != 0 }),
			BOSTokenID: 2, EOSTokenIDs: []int{1, 106}, PadTokenID: 0, TorchDType: "bfloat16"}},
		{"phi-3-mini-4k-instruct.json", Config{Architecture: "Phi3ForCausalLM", ModelType: "phi3", Family: FamilyPhi3,
			VocabSize: 32064, HiddenSize: 3072, IntermediateSize: 8192, NumLayers: 32, NumHeads: 32, NumKVHeads: 32, HeadDim: 96,
			MaxPositions: 4096, RMSNormEps: 1e-5, RopeTheta: 10000, Activation: "silu", AttnScale: 1 / math.Sqrt(96),
			SlidingWindow: 2047, SlidingLayers: slidingEvery(32, func(int) bool { return true }),
			BOSTokenID: 1, EOSTokenIDs: []int{32000}, PadTokenID: 32000, TorchDType: "bfloat16"}},
		// The multimodal checkpoint's text_config names only what differs from
		// Gemma3TextConfig's defaults (8 heads, 4 KV heads, head_dim 256, ...).
		{"gemma-3-4b-it.json", Config{Architecture: "Gemma3ForConditionalGeneration", ModelType: "gemma3_text", Family: FamilyGemma3,
			VocabSize: 262208, HiddenSize: 2560, IntermediateSize: 10240, NumLayers: 34, NumHeads: 8, NumKVHeads: 4, HeadDim: 256,
			MaxPositions: 131072, RMSNormEps: 1e-6, NormPlusOne: true, RopeTheta: 1e6, RopeLocalTheta: 10000,
			RopeScaling:   &RopeScaling{Type: "linear", Factor: 8},
			TieEmbeddings: true, QKNorm: true, Activation: "gelu_pytorch_tanh", SandwichNorm: true, EmbedScale: true, AttnScale: 1.0 / 16,
			SlidingWindow: 1024, SlidingLayers: slidingEvery(34, func(i int) bool { return (i+1)%6 != 0 }),
			BOSTokenID: 2, EOSTokenIDs: []int{1, 106}, PadTokenID: 0, TorchDType: "bfloat16", TensorPrefix: "language_model."}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := LoadConfigFile(filepath.Join("testdata", "configs", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			compareConfig(t, got, &tc.want)
		})
	}
}

// compareConfig reports every field that differs.
func compareConfig(t *testing.T, got, want *Config) {
	t.Helper()
	check := func(field string, g, w any) {
		if g != w {
			t.Errorf("%s = %v, want %v", field, g, w)
		}
	}
	check("Architecture", got.Architecture, want.Architecture)
	check("ModelType", got.ModelType, want.ModelType)
	check("Family", got.Family, want.Family)
	check("VocabSize", got.VocabSize, want.VocabSize)
	check("HiddenSize", got.HiddenSize, want.HiddenSize)
	check("IntermediateSize", got.IntermediateSize, want.IntermediateSize)
	check("NumLayers", got.NumLayers, want.NumLayers)
	check("NumHeads", got.NumHeads, want.NumHeads)
	check("NumKVHeads", got.NumKVHeads, want.NumKVHeads)
	check("HeadDim", got.HeadDim, want.HeadDim)
	check("MaxPositions", got.MaxPositions, want.MaxPositions)
	check("RMSNormEps", got.RMSNormEps, want.RMSNormEps)
	check("NormPlusOne", got.NormPlusOne, want.NormPlusOne)
	check("RopeTheta", got.RopeTheta, want.RopeTheta)
	check("RopeLocalTheta", got.RopeLocalTheta, want.RopeLocalTheta)
	switch {
	case got.RopeScaling == nil && want.RopeScaling == nil:
	case got.RopeScaling == nil || want.RopeScaling == nil:
		t.Errorf("RopeScaling = %+v, want %+v", got.RopeScaling, want.RopeScaling)
	default:
		check("RopeScaling", *got.RopeScaling, *want.RopeScaling)
	}
	check("TieEmbeddings", got.TieEmbeddings, want.TieEmbeddings)
	check("AttentionBias", got.AttentionBias, want.AttentionBias)
	check("AttentionOutBias", got.AttentionOutBias, want.AttentionOutBias)
	check("MLPBias", got.MLPBias, want.MLPBias)
	check("QKNorm", got.QKNorm, want.QKNorm)
	check("Activation", got.Activation, want.Activation)
	check("SandwichNorm", got.SandwichNorm, want.SandwichNorm)
	check("EmbedScale", got.EmbedScale, want.EmbedScale)
	if math.Abs(got.AttnScale-want.AttnScale) > 1e-12 {
		t.Errorf("AttnScale = %v, want %v", got.AttnScale, want.AttnScale)
	}
	check("AttnSoftcap", got.AttnSoftcap, want.AttnSoftcap)
	check("FinalSoftcap", got.FinalSoftcap, want.FinalSoftcap)
	check("SlidingWindow", got.SlidingWindow, want.SlidingWindow)
	if len(got.SlidingLayers) != len(want.SlidingLayers) {
		t.Errorf("SlidingLayers has %d entries, want %d", len(got.SlidingLayers), len(want.SlidingLayers))
	} else {
		for i := range got.SlidingLayers {
			if got.SlidingLayers[i] != want.SlidingLayers[i] {
				t.Errorf("SlidingLayers[%d] = %v, want %v", i, got.SlidingLayers[i], want.SlidingLayers[i])
			}
		}
	}
	check("BOSTokenID", got.BOSTokenID, want.BOSTokenID)
	check("EOSTokenIDs", fmt.Sprint(got.EOSTokenIDs), fmt.Sprint(want.EOSTokenIDs))
	check("PadTokenID", got.PadTokenID, want.PadTokenID)
	check("TorchDType", got.TorchDType, want.TorchDType)
	check("TensorPrefix", got.TensorPrefix, want.TensorPrefix)
}

func TestParseConfigVariants(t *testing.T) {
	tests := []struct {
		name, json string
		check      func(t *testing.T, c *Config)
	}{
		{"llama defaults", `{"architectures":["LlamaForCausalLM"]}`, func(t *testing.T, c *Config) {
			// LlamaConfig's defaults: a Llama 2 7B shape.
			if c.HiddenSize != 4096 || c.NumLayers != 32 || c.NumKVHeads != 32 || c.HeadDim != 128 || c.VocabSize != 32000 ||
				c.RMSNormEps != 1e-6 || c.RopeTheta != 10000 || c.TieEmbeddings || c.BOSTokenID != 1 || c.PadTokenID != -1 {
				t.Errorf("%+v", c)
			}
		}},
		{"model_type only", `{"model_type":"qwen3","hidden_size":64,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,"intermediate_size":128,"num_hidden_layers":2,"vocab_size":100}`, func(t *testing.T, c *Config) {
			if c.Family != FamilyQwen3 || c.Architecture != "Qwen3ForCausalLM" || c.HeadDim != 16 {
				t.Errorf("%+v", c)
			}
		}},
		{"llama attention_bias and linear rope", `{"architectures":["LlamaForCausalLM"],"attention_bias":true,"rope_scaling":{"type":"linear","factor":2.0}}`, func(t *testing.T, c *Config) {
			if !c.AttentionBias || !c.AttentionOutBias || c.RopeScaling == nil || c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 2 {
				t.Errorf("%+v %+v", c, c.RopeScaling)
			}
		}},
		{"mistral null window", `{"architectures":["MistralForCausalLM"],"sliding_window":null,"head_dim":null}`, func(t *testing.T, c *Config) {
			if c.SlidingWindow != 0 || anyTrue(c.SlidingLayers) || c.HeadDim != 128 {
				t.Errorf("window %d layers %v head_dim %d", c.SlidingWindow, c.SlidingLayers, c.HeadDim)
			}
		}},
		{"mistral default window", `{"architectures":["MistralForCausalLM"]}`, func(t *testing.T, c *Config) {
			if c.SlidingWindow != 4096 || !c.SlidingLayers[31] {
				t.Errorf("window %d", c.SlidingWindow)
			}
		}},
		{"qwen2 sliding from max_window_layers", `{"architectures":["Qwen2ForCausalLM"],"num_hidden_layers":4,"use_sliding_window":true,"sliding_window":256,"max_window_layers":2}`, func(t *testing.T, c *Config) {
			if c.SlidingWindow != 256 || c.SlidingLayers[1] || !c.SlidingLayers[2] || !c.SlidingLayers[3] {
				t.Errorf("window %d layers %v", c.SlidingWindow, c.SlidingLayers)
			}
		}},
		{"gemma2 hidden_act only and null softcaps", `{"architectures":["Gemma2ForCausalLM"],"hidden_act":"gelu_pytorch_tanh","attn_logit_softcapping":null,"final_logit_softcapping":null,"query_pre_attn_scalar":144}`, func(t *testing.T, c *Config) {
			if c.Activation != "gelu_pytorch_tanh" || c.AttnSoftcap != 0 || c.FinalSoftcap != 0 || math.Abs(c.AttnScale-1.0/12) > 1e-12 {
				t.Errorf("%+v", c)
			}
		}},
		{"gemma2 default softcaps", `{"architectures":["Gemma2ForCausalLM"]}`, func(t *testing.T, c *Config) {
			if c.AttnSoftcap != 50 || c.FinalSoftcap != 30 || !c.TieEmbeddings {
				t.Errorf("%+v", c)
			}
		}},
		{"gemma3 layer_types", `{"architectures":["Gemma3ForCausalLM"],"num_hidden_layers":3,"layer_types":["full_attention","sliding_attention","full_attention"]}`, func(t *testing.T, c *Config) {
			if c.SlidingLayers[0] || !c.SlidingLayers[1] || c.SlidingLayers[2] {
				t.Errorf("layers %v", c.SlidingLayers)
			}
		}},
		{"rope_parameters (transformers v5)", `{"architectures":["LlamaForCausalLM"],"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}`, func(t *testing.T, c *Config) {
			if c.RopeTheta != 500000 || c.RopeScaling == nil || c.RopeScaling.Type != "llama3" || c.RopeScaling.Factor != 32 || c.RopeScaling.OriginalMaxPositions != 8192 {
				t.Errorf("theta %v scaling %+v", c.RopeTheta, c.RopeScaling)
			}
		}},
		{"gemma3 rope_parameters per layer type", `{"architectures":["Gemma3ForCausalLM"],"num_hidden_layers":4,"_sliding_window_pattern":2,"rope_parameters":{"full_attention":{"rope_type":"linear","factor":8.0,"rope_theta":1000000.0},"sliding_attention":{"rope_type":"default","rope_theta":10000.0}}}`, func(t *testing.T, c *Config) {
			if c.RopeTheta != 1e6 || c.RopeLocalTheta != 10000 || c.RopeScaling == nil || c.RopeScaling.Type != "linear" || c.RopeScaling.Factor != 8 {
				t.Errorf("theta %v local %v scaling %+v", c.RopeTheta, c.RopeLocalTheta, c.RopeScaling)
			}
			if !c.SlidingLayers[0] || c.SlidingLayers[1] || !c.SlidingLayers[2] || c.SlidingLayers[3] {
				t.Errorf("layers %v, want sliding, global, sliding, global", c.SlidingLayers)
			}
		}},
		{"null token ids", `{"architectures":["LlamaForCausalLM"],"bos_token_id":null,"eos_token_id":null}`, func(t *testing.T, c *Config) {
			if c.BOSTokenID != -1 || len(c.EOSTokenIDs) != 0 {
				t.Errorf("bos %d eos %v, want none", c.BOSTokenID, c.EOSTokenIDs)
			}
		}},
		{"dtype key", `{"architectures":["LlamaForCausalLM"],"dtype":"float16"}`, func(t *testing.T, c *Config) {
			if c.TorchDType != "float16" {
				t.Errorf("TorchDType %q", c.TorchDType)
			}
		}},
		{"phi3 defaults (Phi3Config)", `{"architectures":["Phi3ForCausalLM"]}`, func(t *testing.T, c *Config) {
			// Phi3Config's defaults are Phi-3-mini's shape, without a window.
			if c.HiddenSize != 3072 || c.IntermediateSize != 8192 || c.NumKVHeads != 32 || c.VocabSize != 32064 || c.RMSNormEps != 1e-5 ||
				c.TieEmbeddings || c.SlidingWindow != 0 || anyTrue(c.SlidingLayers) || c.EOSTokenIDs[0] != 32000 || c.PadTokenID != 32000 {
				t.Errorf("%+v", c)
			}
		}},
		{"phi3 from model_type, window on every layer", `{"model_type":"phi3","num_hidden_layers":2,"sliding_window":8}`, func(t *testing.T, c *Config) {
			if c.Family != FamilyPhi3 || c.SlidingWindow != 8 || !c.SlidingLayers[0] || !c.SlidingLayers[1] {
				t.Errorf("family %s window %d layers %v", c.Family, c.SlidingWindow, c.SlidingLayers)
			}
		}},
		{"gemma3 multimodal without text_config", `{"architectures":["Gemma3ForConditionalGeneration"]}`, func(t *testing.T, c *Config) {
			if c.TensorPrefix != "language_model." || c.NumLayers != 26 || c.HiddenSize != 2304 {
				t.Errorf("%+v", c)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json), "config.json")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ name, json, want string }{
		{"unknown architecture", `{"architectures":["GPT2LMHeadModel"]}`, "unsupported architecture GPT2LMHeadModel; supported: Gemma2ForCausalLM, Gemma3ForCausalLM"},
		{"no architecture", `{"hidden_size":8}`, `unsupported architecture (none; model_type "")`},
		{"not json", `{`, "expected a JSON object"},
		{"heads do not divide", `{"architectures":["LlamaForCausalLM"],"num_attention_heads":6,"num_key_value_heads":4,"hidden_size":48}`, "num_attention_heads = 6 is not a multiple of num_key_value_heads = 4"},
		{"hidden not divisible", `{"architectures":["LlamaForCausalLM"],"num_attention_heads":5,"hidden_size":48}`, "hidden_size = 48 is not a multiple of num_attention_heads = 5"},
		{"absurd layers", `{"architectures":["LlamaForCausalLM"],"num_hidden_layers":1000000000}`, "expected at most 65536"},
		{"zero layers", `{"architectures":["LlamaForCausalLM"],"num_hidden_layers":0}`, "num_hidden_layers = 0, expected a positive integer"},
		{"string size", `{"architectures":["LlamaForCausalLM"],"hidden_size":"big"}`, `field "hidden_size": expected an integer`},
		{"fractional size", `{"architectures":["LlamaForCausalLM"],"hidden_size":4.5}`, `field "hidden_size": expected an integer`},
		{"bad rope", `{"architectures":["LlamaForCausalLM"],"rope_scaling":{"rope_type":"yarn","factor":4}}`, `unsupported rope_type "yarn"`},
		{"phi3 128k longrope", `{"architectures":["Phi3ForCausalLM"],"rope_scaling":{"type":"longrope","long_factor":[1.0],"short_factor":[1.0]}}`,
			`field "rope_scaling.type": unsupported rope_type "longrope" (supported: none, default, linear, llama3); Phi-3 models without rope_scaling (the 4k-context variants) are supported`},
		{"phi3 su", `{"architectures":["Phi3ForCausalLM"],"rope_scaling":{"type":"su","long_factor":[1.0],"short_factor":[1.0]}}`, `field "rope_scaling.type": unsupported rope_type "su"`},
		{"phi3 partial rotary", `{"architectures":["Phi3ForCausalLM"],"partial_rotary_factor":0.75}`, `field "partial_rotary_factor": 0.75 is not supported`},
		{"bad activation", `{"architectures":["LlamaForCausalLM"],"hidden_act":"relu"}`, `unsupported activation "relu"`},
		{"bad eos", `{"architectures":["LlamaForCausalLM"],"eos_token_id":"x"}`, `field "eos_token_id": expected an integer or a list`},
		{"layer_types length", `{"architectures":["Gemma3ForCausalLM"],"num_hidden_layers":2,"layer_types":["full_attention"]}`, "has 1 entries, expected num_hidden_layers = 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json), "some/config.json")
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "some/config.json") {
				t.Errorf("error %v, want one naming some/config.json and containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(t.TempDir()); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("LoadConfig of an empty dir: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "configs", "*.json"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"architectures":["Gemma3ForConditionalGeneration"],"text_config":{"layer_types":[]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz")
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig returned an invalid config: %v", err)
		}
		if len(c.SlidingLayers) != c.NumLayers {
			t.Fatalf("%d sliding flags for %d layers", len(c.SlidingLayers), c.NumLayers)
		}
	})
}
