package weights

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

// Llama2cHeader is the header of a llama2.c v0 checkpoint (seven int32s).
type Llama2cHeader struct {
	Dim, HiddenDim, NumLayers, NumHeads, NumKVHeads int
	VocabSize                                       int // always positive here
	SeqLen                                          int
	SharedClassifier                                bool // the file's vocab_size was positive
}

// HeadDim returns Dim / NumHeads.
func (h Llama2cHeader) HeadDim() int { return h.Dim / h.NumHeads }

// Llama2cModel is a parsed llama2.c checkpoint with its weights under Hugging
// Face Llama names, q_proj and k_proj already permuted to the rotate-half layout.
type Llama2cModel struct {
	Header  Llama2cHeader
	Tensors []Tensor // F32
}

const llama2cHeaderBytes = 7 * 4

// ReadLlama2c reads a llama2.c v0 checkpoint file.
func ReadLlama2c(path string) (*Llama2cModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return ParseLlama2c(data, path)
}

// ParseLlama2c parses a llama2.c v0 checkpoint image: the header, then fp32
// token_embedding_table, rms_att_weight, wq, wk, wv, wo, rms_ffn_weight, w1,
// w2, w3, rms_final_weight, freq_cis_real, freq_cis_imag (skipped) and wcls
// when the classifier is not shared. The file length must match the header
// exactly. source names the data in errors. Tensor data aliases data except
// for the permuted q_proj and k_proj.
func ParseLlama2c(data []byte, source string) (*Llama2cModel, error) {
	if len(data) < llama2cHeaderBytes {
		return nil, fmt.Errorf("weights: %s: llama2.c file is %d bytes, expected at least a %d-byte header", source, len(data), llama2cHeaderBytes)
	}
	var raw [7]int32
	for i := range raw {
		raw[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
	}
	h := Llama2cHeader{Dim: int(raw[0]), HiddenDim: int(raw[1]), NumLayers: int(raw[2]), NumHeads: int(raw[3]),
		NumKVHeads: int(raw[4]), VocabSize: int(raw[5]), SeqLen: int(raw[6]), SharedClassifier: raw[5] > 0}
	if h.VocabSize < 0 {
		if raw[5] == math.MinInt32 {
			return nil, fmt.Errorf("weights: %s: llama2.c header: vocab_size %d is invalid", source, raw[5])
		}
		h.VocabSize = -h.VocabSize
	}
	fields := []struct {
		name string
		v    int
	}{{"dim", h.Dim}, {"hidden_dim", h.HiddenDim}, {"n_layers", h.NumLayers}, {"n_heads", h.NumHeads},
		{"n_kv_heads", h.NumKVHeads}, {"vocab_size", h.VocabSize}, {"seq_len", h.SeqLen}}
	for _, f := range fields {
		if f.v <= 0 {
			return nil, fmt.Errorf("weights: %s: llama2.c header: %s = %d, expected a positive integer", source, f.name, f.v)
		}
	}
	if h.Dim%h.NumHeads != 0 || h.HeadDim()%2 != 0 {
		return nil, fmt.Errorf("weights: %s: llama2.c header: dim %d must split into %d heads of even size", source, h.Dim, h.NumHeads)
	}
	if h.NumHeads%h.NumKVHeads != 0 {
		return nil, fmt.Errorf("weights: %s: llama2.c header: n_heads %d is not a multiple of n_kv_heads %d", source, h.NumHeads, h.NumKVHeads)
	}
	D, F, L, V, hd := int64(h.Dim), int64(h.HiddenDim), int64(h.NumLayers), int64(h.VocabSize), int64(h.HeadDim())
	kvDim := int64(h.NumKVHeads) * hd
	// Products are capped just above the file size so absurd headers cannot
	// overflow; such a header then fails the length check below.
	limit := int64(len(data))
	mul := func(xs ...int64) int64 {
		p := int64(1)
		for _, x := range xs {
			if p > limit/x {
				return limit + 1
			}
			p *= x
		}
		return p
	}
	floats := mul(V, D) + mul(L, D) + mul(L, D, D) + 2*mul(L, D, kvDim) + mul(L, D, D) + mul(L, D) +
		3*mul(L, D, F) + D + mul(int64(h.SeqLen), hd)
	if !h.SharedClassifier {
		floats += mul(V, D)
	}
	if want := llama2cHeaderBytes + 4*floats; int64(len(data)) != want {
		return nil, fmt.Errorf("weights: %s: llama2.c file is %d bytes, but header %+v requires exactly %d", source, len(data), h, want)
	}
	r := &llama2cReader{data: data, off: llama2cHeaderBytes}
	m := &Llama2cModel{Header: h}
	emb := r.take(V * D)
	m.add("model.embed_tokens.weight", emb, V, D)
	rmsAtt := r.take(L * D)
	wq := r.take(L * D * D)
	wk := r.take(L * kvDim * D)
	wv := r.take(L * kvDim * D)
	wo := r.take(L * D * D)
	rmsFFN := r.take(L * D)
	w1 := r.take(L * F * D)
	w2 := r.take(L * D * F)
	w3 := r.take(L * F * D)
	m.add("model.norm.weight", r.take(D), D)
	r.take(int64(h.SeqLen) * hd) // freq_cis_real and freq_cis_imag
	if !h.SharedClassifier {
		m.add("lm_head.weight", r.take(V*D), V, D)
	}
	layer := func(all []byte, l, n int64) []byte { return all[4*l*n : 4*(l+1)*n] }
	for l := int64(0); l < L; l++ {
		p := "model.layers." + strconv.FormatInt(l, 10) + "."
		m.add(p+"input_layernorm.weight", layer(rmsAtt, l, D), D)
		m.add(p+"self_attn.q_proj.weight", PermuteRotaryRows(layer(wq, l, D*D), int(D), h.NumHeads), D, D)
		m.add(p+"self_attn.k_proj.weight", PermuteRotaryRows(layer(wk, l, kvDim*D), int(D), h.NumKVHeads), kvDim, D)
		m.add(p+"self_attn.v_proj.weight", layer(wv, l, kvDim*D), kvDim, D)
		m.add(p+"self_attn.o_proj.weight", layer(wo, l, D*D), D, D)
		m.add(p+"post_attention_layernorm.weight", layer(rmsFFN, l, D), D)
		m.add(p+"mlp.gate_proj.weight", layer(w1, l, F*D), F, D)
		m.add(p+"mlp.down_proj.weight", layer(w2, l, D*F), D, F)
		m.add(p+"mlp.up_proj.weight", layer(w3, l, F*D), F, D)
	}
	return m, nil
}

// llama2cReader hands out consecutive fp32 arrays of a checkpoint image
// whose total length has already been checked.
type llama2cReader struct {
	data []byte
	off  int64
}

func (r *llama2cReader) take(floats int64) []byte {
	b := r.data[r.off : r.off+4*floats]
	r.off += 4 * floats
	return b
}

func (m *Llama2cModel) add(name string, data []byte, shape ...int64) {
	s := make([]int, len(shape))
	for i, d := range shape {
		s[i] = int(d)
	}
	m.Tensors = append(m.Tensors, Tensor{Name: name, DType: F32, Shape: s, Data: data})
}

// PermuteRotaryRows reorders the output rows of a projection matrix stored
// as little-endian fp32 [heads*headDim, cols] so that, within each head, the
// rows for llama2.c's interleaved rotary pairs (2i, 2i+1) become Hugging
// Face's rotate-half pairs (i, i+headDim/2): new row order within a head is
// 0, 2, 4, ..., headDim-2, 1, 3, ..., headDim-1. The result is a new slice.
func PermuteRotaryRows(w []byte, cols, heads int) []byte {
	out := make([]byte, len(w))
	rowBytes := 4 * cols
	rows := len(w) / rowBytes
	hd := rows / heads
	for h := 0; h < heads; h++ {
		for j := 0; j < hd; j++ {
			src := 2 * j
			if j >= hd/2 {
				src = 2*(j-hd/2) + 1
			}
			dst := (h*hd + j) * rowBytes
			s := (h*hd + src) * rowBytes
			copy(out[dst:dst+rowBytes], w[s:s+rowBytes])
		}
	}
	return out
}

// ConfigJSON returns the Hugging Face config.json of the converted model.
func (m *Llama2cModel) ConfigJSON() []byte {
	h := m.Header
	cfg := map[string]any{
		"architectures":           []string{"LlamaForCausalLM"},
		"model_type":              "llama",
		"hidden_size":             h.Dim,
		"intermediate_size":       h.HiddenDim,
		"num_hidden_layers":       h.NumLayers,
		"num_attention_heads":     h.NumHeads,
		"num_key_value_heads":     h.NumKVHeads,
		"head_dim":                h.HeadDim(),
		"vocab_size":              h.VocabSize,
		"max_position_embeddings": h.SeqLen,
		"rms_norm_eps":            1e-5,
		"rope_theta":              10000.0,
		"rope_scaling":            nil,
		"hidden_act":              "silu",
		"attention_bias":          false,
		"mlp_bias":                false,
		"tie_word_embeddings":     h.SharedClassifier,
		"bos_token_id":            1,
		"eos_token_id":            2,
		"torch_dtype":             "float32",
	}
	data, _ := json.MarshalIndent(cfg, "", "  ") // plain values always marshal
	return append(data, '\n')
}

// ConvertLlama2c converts a llama2.c v0 checkpoint into a Hugging Face
// directory outDir (created if needed) with config.json and model.safetensors.
func ConvertLlama2c(modelPath, outDir string) error {
	m, err := ReadLlama2c(modelPath)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	meta := map[string]string{"format": "pt", "source": "llama2.c " + filepath.Base(modelPath)}
	if err := WriteFile(filepath.Join(outDir, SingleFileName), m.Tensors, meta); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(outDir, "config.json"), m.ConfigJSON())
}
