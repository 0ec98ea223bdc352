package weights

// RopeScaling describes a rotary-embedding frequency rescaling from config.json's
// "rope_scaling". Type is "" (none), "linear" or "llama3".
type RopeScaling struct {
	Type                 string  // "linear" or "llama3"
	Factor               float64 // both types
	LowFreqFactor        float64 // llama3 only
	HighFreqFactor       float64 // llama3 only
	OriginalMaxPositions int     // llama3 only: original_max_position_embeddings
}

// Config is the one typed form of a model's config.json for every family.
// The engine reads only this struct; family differences are expressed as the
// switches below, never as string comparisons in the engine.
type Config struct {
	Architecture string // e.g. "LlamaForCausalLM", as named in config.json
	ModelType    string // config.json "model_type", e.g. "llama", "gemma3_text"
	Family       Family

	VocabSize        int
	HiddenSize       int
	IntermediateSize int
	NumLayers        int
	NumHeads         int
	NumKVHeads       int
	HeadDim          int // explicit head_dim, or HiddenSize/NumHeads
	MaxPositions     int // max_position_embeddings

	RMSNormEps float64
	// NormPlusOne: RMSNorm multiplies by (1 + weight) instead of weight (Gemma).
	NormPlusOne bool

	RopeTheta float64 // rope base for global-attention layers
	// RopeLocalTheta is the rope base for sliding-window layers (Gemma 3's
	// rope_local_base_freq); 0 means the same as RopeTheta.
	RopeLocalTheta float64
	// RopeScaling applies to global layers only (Gemma 3 applies it to global
	// layers; other families have no local layers). Nil means none.
	RopeScaling *RopeScaling

	TieEmbeddings bool // lm_head shares model.embed_tokens.weight
	AttentionBias bool // q/k/v projections have biases (Qwen 2)
	// AttentionOutBias: o_proj has a bias (Llama's attention_bias=true sets both).
	AttentionOutBias bool
	MLPBias          bool
	QKNorm           bool   // per-head RMSNorm on queries and keys (Qwen 3, Gemma 3)
	Activation       string // "silu" (SwiGLU) or "gelu_pytorch_tanh" (GeGLU)
	// SandwichNorm: Gemma 2/3 blocks have pre- and post-norms around both the
	// attention and the MLP (input_layernorm, post_attention_layernorm,
	// pre_feedforward_layernorm, post_feedforward_layernorm).
	SandwichNorm bool
	// EmbedScale: the embedding output is multiplied by sqrt(HiddenSize) (Gemma).
	EmbedScale bool
	// AttnScale is the factor applied to q·k: 1/sqrt(query_pre_attn_scalar) for
	// Gemma, 1/sqrt(HeadDim) otherwise.
	AttnScale float64
	// AttnSoftcap and FinalSoftcap: x <- cap * tanh(x / cap) on attention
	// scores and on final logits; 0 means none.
	AttnSoftcap  float64
	FinalSoftcap float64

	// SlidingWindow is the window length of sliding-window layers (0: none).
	SlidingWindow int
	// SlidingLayers[i] reports whether layer i uses the sliding window (and,
	// for Gemma 3, RopeLocalTheta). Length NumLayers; all false when none.
	SlidingLayers []bool

	BOSTokenID  int   // -1 when absent
	EOSTokenIDs []int // eos_token_id may be an int or a list
	PadTokenID  int   // -1 when absent

	TorchDType string // "float32", "bfloat16", "float16" as declared

	// TensorPrefix is prepended to every standard tensor name when looking it
	// up in the checkpoint: "" for plain causal LMs; multimodal checkpoints
	// store the text tower under another prefix (e.g. "language_model.").
	TensorPrefix string
}
