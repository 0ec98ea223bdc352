package weights

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParamCountMatchesPublishedCounts(t *testing.T) {
	// Exact counts are the parameter totals published for each checkpoint
	// (Hugging Face's safetensors summary / the model papers); rounded ones
	// are from the model cards.
	tests := []struct {
		file     string
		exact    int64
		approx   float64 // when exact is 0: the model card's figure
		relative float64
	}{
		{file: "smollm2-135m-instruct.json", exact: 134_515_008},
		{file: "llama-3.2-1b.json", exact: 1_235_814_400},
		{file: "mistral-7b-v0.1.json", exact: 7_241_732_096},
		{file: "gemma-2-2b.json", exact: 2_614_341_888},
		{file: "qwen2.5-1.5b.json", exact: 1_543_714_304},
		{file: "phi-3-mini-4k-instruct.json", exact: 3_821_079_552},
		{file: "qwen3-0.6b.json", approx: 0.6e9, relative: 0.01},
		{file: "gemma-3-1b-it.json", approx: 1.0e9, relative: 0.01},
	}
	for _, tc := range tests {
		c, err := LoadConfigFile(filepath.Join("testdata", "configs", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got := c.ParamCount()
		if tc.exact != 0 && got != tc.exact {
			t.Errorf("%s: ParamCount = %d, want %d", tc.file, got, tc.exact)
		}
		if tc.exact == 0 && (float64(got) < tc.approx*(1-tc.relative) || float64(got) > tc.approx*(1+tc.relative)) {
			t.Errorf("%s: ParamCount = %d, want about %.3g", tc.file, got, tc.approx)
		}
	}
	// Qwen3-0.6B's model card also gives 0.44B non-embedding parameters.
	c, _ := LoadConfigFile(filepath.Join("testdata", "configs", "qwen3-0.6b.json"))
	nonEmb := c.ParamCount() - int64(c.VocabSize*c.HiddenSize)
	if nonEmb < 0.435e9 || nonEmb > 0.445e9 {
		t.Errorf("Qwen3-0.6B non-embedding parameters %d, want about 0.44B", nonEmb)
	}
}

func TestExpectedTensorsPerFamily(t *testing.T) {
	tests := []struct {
		file      string
		perLayer  int
		has, lack []string
	}{
		{"smollm2-135m-instruct.json", 9, []string{"model.layers.29.mlp.down_proj.weight"}, []string{"lm_head.weight", "model.layers.0.self_attn.q_proj.bias"}},
		{"mistral-7b-v0.1.json", 9, []string{"lm_head.weight"}, []string{"model.layers.0.self_attn.q_norm.weight"}},
		{"qwen2.5-1.5b.json", 12, []string{"model.layers.0.self_attn.k_proj.bias"}, []string{"model.layers.0.self_attn.o_proj.bias"}},
		{"qwen3-0.6b.json", 11, []string{"model.layers.27.self_attn.q_norm.weight"}, []string{"model.layers.0.self_attn.q_proj.bias"}},
		{"gemma-2-2b.json", 11, []string{"model.layers.0.pre_feedforward_layernorm.weight"}, []string{"model.layers.0.self_attn.k_norm.weight"}},
		{"phi-3-mini-4k-instruct.json", 6, []string{"model.layers.31.self_attn.qkv_proj.weight", "model.layers.0.mlp.gate_up_proj.weight"},
			[]string{"model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"}},
		{"gemma-3-1b-it.json", 13, []string{"model.layers.25.self_attn.k_norm.weight", "model.layers.0.post_feedforward_layernorm.weight"}, []string{"lm_head.weight"}},
	}
	for _, tc := range tests {
		c, err := LoadConfigFile(filepath.Join("testdata", "configs", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		specs := c.ExpectedTensors()
		names := map[string][]int{}
		for _, s := range specs {
			names[s.Name] = s.Shape
		}
		extra := 2 // embeddings and final norm
		if !c.TieEmbeddings {
			extra++
		}
		if len(specs) != c.NumLayers*tc.perLayer+extra || len(names) != len(specs) {
			t.Errorf("%s: %d tensors (%d distinct), want %d", tc.file, len(specs), len(names), c.NumLayers*tc.perLayer+extra)
		}
		for _, n := range tc.has {
			if _, ok := names[n]; !ok {
				t.Errorf("%s: %s missing", tc.file, n)
			}
		}
		for _, n := range tc.lack {
			if _, ok := names[n]; ok {
				t.Errorf("%s: unexpected %s", tc.file, n)
			}
		}
		if qkv, fused := names["model.layers.0.self_attn.qkv_proj.weight"]; fused {
			// Phi-3: q, k and v rows in one tensor, gate and up rows in another.
			gateUp := names["model.layers.0.mlp.gate_up_proj.weight"]
			if !slices.Equal(qkv, []int{(c.NumHeads + 2*c.NumKVHeads) * c.HeadDim, c.HiddenSize}) ||
				!slices.Equal(gateUp, []int{2 * c.IntermediateSize, c.HiddenSize}) {
				t.Errorf("%s: qkv %v gate_up %v", tc.file, qkv, gateUp)
			}
			continue
		}
		q := names["model.layers.0.self_attn.q_proj.weight"]
		k := names["model.layers.0.self_attn.k_proj.weight"]
		o := names["model.layers.0.self_attn.o_proj.weight"]
		if !slices.Equal(q, []int{c.NumHeads * c.HeadDim, c.HiddenSize}) || !slices.Equal(k, []int{c.NumKVHeads * c.HeadDim, c.HiddenSize}) ||
			!slices.Equal(o, []int{c.HiddenSize, c.NumHeads * c.HeadDim}) {
			t.Errorf("%s: q %v k %v o %v", tc.file, q, k, o)
		}
	}
}

// tinyConfig is a small Llama-family config used by several tests.
const tinyConfig = `{"architectures":["LlamaForCausalLM"],"hidden_size":8,"intermediate_size":12,"num_hidden_layers":2,
"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":10,"tie_word_embeddings":false}`

func TestValidateSource(t *testing.T) {
	c, err := ParseConfig([]byte(tinyConfig), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	full := MemorySource{}
	for _, s := range c.ExpectedTensors() {
		n, _ := shapeElements(s.Shape)
		full[s.Name] = MemoryTensor{Shape: s.Shape, Data: make([]float32, n)}
	}
	if err := c.ValidateSource(full); err != nil {
		t.Fatalf("complete source rejected: %v", err)
	}
	missing := MemorySource{}
	for k, v := range full {
		missing[k] = v
	}
	delete(missing, "model.layers.1.mlp.up_proj.weight")
	wrong := MemorySource{}
	for k, v := range full {
		wrong[k] = v
	}
	wrong["lm_head.weight"] = MemoryTensor{Shape: []int{8, 10}, Data: make([]float32, 80)}
	tests := []struct {
		name string
		src  TensorSource
		want string
	}{
		{"missing", missing, `tensor "model.layers.1.mlp.up_proj.weight" missing (expected shape [12 8])`},
		{"wrong shape", wrong, `tensor "lm_head.weight" has shape [8 10], expected [10 8]`},
	}
	for _, tc := range tests {
		err := c.ValidateSource(tc.src)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
