package weights

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// SupportedArchitectures lists the config.json architectures ParseConfig accepts.
func SupportedArchitectures() []string {
	var out []string
	for _, f := range families {
		for _, a := range f.archs {
			out = append(out, a.name)
		}
	}
	sort.Strings(out)
	return out
}

// LoadConfig reads and parses dir/config.json.
func LoadConfig(dir string) (*Config, error) {
	return LoadConfigFile(filepath.Join(dir, "config.json"))
}

// ParseConfig parses a Hugging Face config.json into a Config, filling absent
// keys with the defaults of transformers' config class for the family, and
// validates it. source names the data in errors.
func ParseConfig(data []byte, source string) (*Config, error) {
	top, err := parseJSONObject(data, source)
	if err != nil {
		return nil, err
	}
	archs, err := top.strings("architectures")
	if err != nil {
		return nil, err
	}
	modelType, err := top.string("model_type", "")
	if err != nil {
		return nil, err
	}
	arch := ""
	if len(archs) > 0 {
		arch = archs[0]
	} else {
		arch = archForModelType(modelType)
	}
	spec, as, ok := lookupArch(arch)
	if !ok {
		name := arch
		if name == "" {
			name = fmt.Sprintf("(none; model_type %q)", modelType)
		}
		return nil, fmt.Errorf("weights: %s: unsupported architecture %s; supported: %s", source, name, strings.Join(SupportedArchitectures(), ", "))
	}
	cfg := &Config{Architecture: arch, ModelType: modelType, Family: spec.family}
	text := top
	if as.textPrefix != "" {
		tc, err := top.object("text_config")
		if err != nil {
			return nil, err
		}
		if tc == nil {
			tc = &jsonObject{source: source + ": text_config", fields: nil}
		}
		text = tc
		cfg.TensorPrefix = as.textPrefix
		if mt, _ := tc.string("model_type", ""); mt != "" {
			cfg.ModelType = mt
		}
	}
	p := &configParser{cfg: cfg, top: top, text: text, spec: spec, def: spec.defaults}
	p.parse()
	if p.err != nil {
		return nil, p.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("weights: %s: %w", source, err)
	}
	return cfg, nil
}

// maxLayers bounds num_hidden_layers so that a corrupt config cannot make
// the parser allocate without limit.
const maxLayers = 1 << 16

// configParser fills a Config from a text config object, keeping the first
// error so the parsing code reads as a list of fields.
type configParser struct {
	cfg       *Config
	top, text *jsonObject // top is the whole file; text the text model's part
	spec      *familySpec
	def       familyDefaults // spec.defaults
	err       error
}

func (p *configParser) keep(err error) {
	if p.err == nil && err != nil {
		p.err = err
	}
}

func (p *configParser) int(key string, def int) int {
	v, err := p.text.int(key, def)
	p.keep(err)
	return v
}

func (p *configParser) float(key string, def float64) float64 {
	v, err := p.text.float(key, def)
	p.keep(err)
	return v
}

func (p *configParser) bool(key string, def bool) bool {
	v, err := p.text.bool(key, def)
	p.keep(err)
	return v
}

func (p *configParser) string(key, def string) string {
	v, err := p.text.string(key, def)
	p.keep(err)
	return v
}

// shared reads a key that multimodal configs keep at the top level (token
// ids, dtype, tie_word_embeddings): the text config first, then the top.
func (p *configParser) shared(key string) *jsonObject {
	if p.text.present(key) || p.text == p.top {
		return p.text
	}
	return p.top
}

func (p *configParser) parse() {
	c, d := p.cfg, p.def
	c.VocabSize = p.int("vocab_size", d.vocab)
	c.HiddenSize = p.int("hidden_size", d.hidden)
	c.IntermediateSize = p.int("intermediate_size", d.intermediate)
	c.NumLayers = p.int("num_hidden_layers", d.layers)
	c.NumHeads = p.int("num_attention_heads", d.heads)
	kvDef := d.kvHeads
	if kvDef == 0 {
		kvDef = c.NumHeads
	}
	c.NumKVHeads = p.int("num_key_value_heads", kvDef)
	c.HeadDim = p.int("head_dim", d.headDim)
	if c.HeadDim == 0 && c.NumHeads > 0 {
		if c.HiddenSize%c.NumHeads != 0 {
			p.keep(fmt.Errorf("weights: %s: hidden_size = %d is not a multiple of num_attention_heads = %d and head_dim is not given", p.text.source, c.HiddenSize, c.NumHeads))
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	c.MaxPositions = p.int("max_position_embeddings", d.maxPositions)
	c.RMSNormEps = p.float("rms_norm_eps", d.eps)
	c.RopeTheta = p.float("rope_theta", d.ropeTheta)

	var err error
	c.TieEmbeddings, err = p.shared("tie_word_embeddings").bool("tie_word_embeddings", d.tie)
	p.keep(err)
	bos, err := p.shared("bos_token_id").ints("bos_token_id", []int{d.bos})
	p.keep(err)
	c.BOSTokenID = firstOr(bos, -1)
	pad, err := p.shared("pad_token_id").ints("pad_token_id", []int{d.pad})
	p.keep(err)
	c.PadTokenID = firstOr(pad, -1)
	eos, err := p.shared("eos_token_id").ints("eos_token_id", []int{d.eos})
	p.keep(err)
	c.EOSTokenIDs = nil
	for _, id := range eos {
		if id >= 0 {
			c.EOSTokenIDs = append(c.EOSTokenIDs, id)
		}
	}
	dtypeKey := "torch_dtype"
	if !p.shared("torch_dtype").has("torch_dtype") {
		dtypeKey = "dtype"
	}
	c.TorchDType, err = p.shared(dtypeKey).string(dtypeKey, "")
	p.keep(err)

	rs, err := p.text.object("rope_scaling")
	p.keep(err)
	c.RopeScaling = p.ropeScaling(rs)
	if c.NumLayers > maxLayers {
		p.keep(fmt.Errorf("weights: %s: num_hidden_layers = %d, expected at most %d", p.text.source, c.NumLayers, maxLayers))
		return
	}
	c.SlidingLayers = make([]bool, max(c.NumLayers, 0))
	c.Activation = p.activation(cmp.Or(d.activation, "silu"))
	c.AttnScale = 1 / math.Sqrt(float64(max(c.HeadDim, 1)))
	if p.spec.traits != nil {
		p.spec.traits(p)
	}
	p.ropeParameters()
	if lt := p.layerTypes(); lt != nil {
		c.SlidingLayers = lt
	}
	if c.SlidingWindow == 0 {
		for i := range c.SlidingLayers {
			c.SlidingLayers[i] = false
		}
	}
	if !anyTrue(c.SlidingLayers) {
		c.SlidingWindow = 0
	}
}

// activation reads hidden_activation (Gemma) or hidden_act and normalises
// the spelling to "silu" or "gelu_pytorch_tanh".
func (p *configParser) activation(def string) string {
	act := p.string("hidden_activation", "")
	if act == "" {
		act = p.string("hidden_act", def)
	}
	switch act {
	case "silu", "swish":
		return "silu"
	case "gelu_pytorch_tanh", "gelu_new", "gelu_fast":
		return "gelu_pytorch_tanh"
	}
	p.keep(fmt.Errorf("weights: %s: field %q: unsupported activation %q (expected silu or gelu_pytorch_tanh)", p.text.source, "hidden_act", act))
	return act
}

// layerTypes reads an explicit layer_types list ("sliding_attention" or
// "full_attention" per layer); nil when absent.
func (p *configParser) layerTypes() []bool {
	types, err := p.text.strings("layer_types")
	p.keep(err)
	if types == nil {
		return nil
	}
	if len(types) != p.cfg.NumLayers {
		p.keep(fmt.Errorf("weights: %s: field \"layer_types\": has %d entries, expected num_hidden_layers = %d", p.text.source, len(types), p.cfg.NumLayers))
		return nil
	}
	out := make([]bool, len(types))
	for i, t := range types {
		switch t {
		case "sliding_attention":
			out[i] = true
		case "full_attention":
		default:
			p.keep(fmt.Errorf("weights: %s: field \"layer_types\"[%d]: %q, expected sliding_attention or full_attention", p.text.source, i, t))
		}
	}
	return out
}

// ropeScaling reads a rope_scaling object ("rope_type" or legacy "type");
// nil or type "default" means none.
func (p *configParser) ropeScaling(rs *jsonObject) *RopeScaling {
	if rs == nil {
		return nil
	}
	typ, err := rs.string("rope_type", "")
	p.keep(err)
	if typ == "" {
		typ, err = rs.string("type", "")
		p.keep(err)
	}
	out := &RopeScaling{Type: typ}
	var errs [4]error
	out.Factor, errs[0] = rs.float("factor", 1)
	switch typ {
	case "default", "":
		return nil
	case "linear":
	case "llama3":
		out.LowFreqFactor, errs[1] = rs.float("low_freq_factor", 1)
		out.HighFreqFactor, errs[2] = rs.float("high_freq_factor", 4)
		out.OriginalMaxPositions, errs[3] = rs.int("original_max_position_embeddings", 8192)
	default:
		key := "type"
		if rs.has("rope_type") {
			key = "rope_type"
		}
		hint := ""
		if p.spec.ropeHint != "" {
			hint = "; " + p.spec.ropeHint
		}
		p.keep(fmt.Errorf("weights: %s: field \"rope_scaling.%s\": unsupported rope_type %q (supported: none, default, linear, llama3)%s", p.text.source, key, typ, hint))
		return nil
	}
	for _, e := range errs {
		p.keep(e)
	}
	if out.Factor <= 0 {
		p.keep(fmt.Errorf("weights: %s: field \"rope_scaling\": factor %v, expected a positive number", p.text.source, out.Factor))
	}
	return out
}

// ropeParameters reads transformers v5's "rope_parameters", used when the
// older keys (rope_theta, rope_scaling, rope_local_base_freq) are absent:
// either one object {rope_type, rope_theta, factor, ...} or, for models
// with local layers, {"full_attention": {...}, "sliding_attention": {...}}.
func (p *configParser) ropeParameters() {
	rp, err := p.text.object("rope_parameters")
	p.keep(err)
	if rp == nil {
		return
	}
	global, err := rp.object("full_attention")
	p.keep(err)
	local, err := rp.object("sliding_attention")
	p.keep(err)
	if global == nil {
		global = rp
	}
	c := p.cfg
	if !p.text.has("rope_theta") {
		c.RopeTheta, err = global.float("rope_theta", c.RopeTheta)
		p.keep(err)
	}
	if !p.text.has("rope_scaling") {
		c.RopeScaling = p.ropeScaling(global)
	}
	if local != nil && !p.text.has("rope_local_base_freq") {
		c.RopeLocalTheta, err = local.float("rope_theta", c.RopeLocalTheta)
		p.keep(err)
	}
}

func firstOr(v []int, def int) int {
	if len(v) == 0 {
		return def
	}
	return v[0]
}

func anyTrue(v []bool) bool {
	for _, b := range v {
		if b {
			return true
		}
	}
	return false
}

// Validate checks that sizes are positive and consistent: heads divide
// (NumHeads % NumKVHeads == 0), the head size is known, SlidingLayers has
// NumLayers entries and the activation is supported.
func (c *Config) Validate() error {
	pos := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize},
		{"intermediate_size", c.IntermediateSize}, {"num_hidden_layers", c.NumLayers},
		{"num_attention_heads", c.NumHeads}, {"num_key_value_heads", c.NumKVHeads},
		{"head_dim", c.HeadDim},
	}
	for _, f := range pos {
		if f.v <= 0 {
			return fmt.Errorf("config: %s = %d, expected a positive integer", f.name, f.v)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return fmt.Errorf("config: num_attention_heads = %d is not a multiple of num_key_value_heads = %d", c.NumHeads, c.NumKVHeads)
	}
	if c.RMSNormEps <= 0 || c.RopeTheta <= 0 {
		return fmt.Errorf("config: rms_norm_eps = %v and rope_theta = %v, expected both positive", c.RMSNormEps, c.RopeTheta)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("config: head_dim = %d, expected an even number (rotary embedding)", c.HeadDim)
	}
	if len(c.SlidingLayers) != c.NumLayers {
		return fmt.Errorf("config: %d sliding-layer flags for %d layers", len(c.SlidingLayers), c.NumLayers)
	}
	if c.SlidingWindow < 0 {
		return fmt.Errorf("config: sliding_window = %d, expected >= 0", c.SlidingWindow)
	}
	if c.Activation != "silu" && c.Activation != "gelu_pytorch_tanh" {
		return fmt.Errorf("config: activation %q, expected silu or gelu_pytorch_tanh", c.Activation)
	}
	if c.AttnSoftcap < 0 || c.FinalSoftcap < 0 {
		return fmt.Errorf("config: softcaps %v and %v, expected >= 0", c.AttnSoftcap, c.FinalSoftcap)
	}
	return nil
}

// LoadConfigFile reads and parses a config.json at any path.
func LoadConfigFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return ParseConfig(data, path)
}
