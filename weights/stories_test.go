package weights

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// refLayerWeights are one decoder layer's weights for the reference forward
// passes below, in [out, in] row-major layout.
type refLayerWeights struct {
	attnNorm, wq, wk, wv, wo, ffnNorm, gate, down, up []float32
}

// refModel is a minimal float64 Llama forward pass, written for the tests
// only; rope selects the rotary layout (llama2.c's or Hugging Face's).
type refModel struct {
	dim, hidden, heads, kvHeads, vocab int
	emb, finalNorm, cls                []float32
	layers                             []refLayerWeights
	rope                               func(v []float64, pos int, theta float64)
	keys, vals                         [][][]float64 // [layer][pos][kvDim]
}

func rmsNorm(x []float64, w []float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+1e-5)
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * inv * float64(w[i])
	}
	return out
}

// step runs one token at the next position and returns its logits.
func (m *refModel) step(token int) []float64 {
	hd := m.dim / m.heads
	kvDim := m.kvHeads * hd
	if m.keys == nil {
		m.keys = make([][][]float64, len(m.layers))
		m.vals = make([][][]float64, len(m.layers))
	}
	pos := len(m.keys[0])
	x := make([]float64, m.dim)
	for i := range x {
		x[i] = float64(m.emb[token*m.dim+i])
	}
	for l, w := range m.layers {
		xb := rmsNorm(x, w.attnNorm)
		q := matVec(w.wq, xb, m.dim, m.dim)
		k := matVec(w.wk, xb, kvDim, m.dim)
		v := matVec(w.wv, xb, kvDim, m.dim)
		for h := 0; h < m.heads; h++ {
			m.rope(q[h*hd:(h+1)*hd], pos, 10000)
		}
		for h := 0; h < m.kvHeads; h++ {
			m.rope(k[h*hd:(h+1)*hd], pos, 10000)
		}
		m.keys[l] = append(m.keys[l], k)
		m.vals[l] = append(m.vals[l], v)
		att := make([]float64, m.dim)
		for h := 0; h < m.heads; h++ {
			kh := h / (m.heads / m.kvHeads)
			scores := make([]float64, pos+1)
			maxS := math.Inf(-1)
			for t := 0; t <= pos; t++ {
				var s float64
				for j := 0; j < hd; j++ {
					s += q[h*hd+j] * m.keys[l][t][kh*hd+j]
				}
				scores[t] = s / math.Sqrt(float64(hd))
				maxS = math.Max(maxS, scores[t])
			}
			var sum float64
			for t := range scores {
				scores[t] = math.Exp(scores[t] - maxS)
				sum += scores[t]
			}
			for t := range scores {
				for j := 0; j < hd; j++ {
					att[h*hd+j] += scores[t] / sum * m.vals[l][t][kh*hd+j]
				}
			}
		}
		o := matVec(w.wo, att, m.dim, m.dim)
		for i := range x {
			x[i] += o[i]
		}
		xb = rmsNorm(x, w.ffnNorm)
		g := matVec(w.gate, xb, m.hidden, m.dim)
		u := matVec(w.up, xb, m.hidden, m.dim)
		for i := range g {
			g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
		}
		d := matVec(w.down, g, m.dim, m.hidden)
		for i := range x {
			x[i] += d[i]
		}
	}
	return matVec(m.cls, rmsNorm(x, m.finalNorm), m.vocab, m.dim)
}

// llama2cRefModel reads a llama2.c file directly (its own reading code,
// not ParseLlama2c) into a reference model with interleaved rope.
func llama2cRefModel(t *testing.T, path string) *refModel {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]int, 7)
	for i := range hdr {
		hdr[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
	}
	dim, hidden, nl, heads, kvh, vocab, seq := hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6]
	if vocab < 0 {
		t.Fatal("test reader handles shared classifiers only")
	}
	off := 28
	next := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off+4*i:]))
		}
		off += 4 * n
		return out
	}
	hd := dim / heads
	kv := kvh * hd
	m := &refModel{dim: dim, hidden: hidden, heads: heads, kvHeads: kvh, vocab: vocab, rope: ropeInterleaved}
	m.emb = next(vocab * dim)
	m.cls = m.emb
	m.layers = make([]refLayerWeights, nl)
	split := func(all []float32, n int, set func(l int, w []float32)) {
		for l := 0; l < nl; l++ {
			set(l, all[l*n:(l+1)*n])
		}
	}
	split(next(nl*dim), dim, func(l int, w []float32) { m.layers[l].attnNorm = w })
	split(next(nl*dim*dim), dim*dim, func(l int, w []float32) { m.layers[l].wq = w })
	split(next(nl*dim*kv), dim*kv, func(l int, w []float32) { m.layers[l].wk = w })
	split(next(nl*dim*kv), dim*kv, func(l int, w []float32) { m.layers[l].wv = w })
	split(next(nl*dim*dim), dim*dim, func(l int, w []float32) { m.layers[l].wo = w })
	split(next(nl*dim), dim, func(l int, w []float32) { m.layers[l].ffnNorm = w })
	split(next(nl*dim*hidden), dim*hidden, func(l int, w []float32) { m.layers[l].gate = w })
	split(next(nl*dim*hidden), dim*hidden, func(l int, w []float32) { m.layers[l].down = w })
	split(next(nl*dim*hidden), dim*hidden, func(l int, w []float32) { m.layers[l].up = w })
	m.finalNorm = next(dim)
	next(seq * hd) // freq_cis
	if off != len(data) {
		t.Fatalf("test reader ended at %d of %d bytes", off, len(data))
	}
	return m
}

// hfRefModel builds a reference model with rotate-half rope from a
// converted Hugging Face checkpoint, by standard tensor names.
func hfRefModel(t *testing.T, cfg *Config, src TensorSource) *refModel {
	get := func(name string) []float32 {
		v, _, err := src.Float32(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	m := &refModel{dim: cfg.HiddenSize, hidden: cfg.IntermediateSize, heads: cfg.NumHeads, kvHeads: cfg.NumKVHeads,
		vocab: cfg.VocabSize, rope: ropeRotateHalf}
	m.emb = get("model.embed_tokens.weight")
	m.cls = m.emb
	if !cfg.TieEmbeddings {
		m.cls = get("lm_head.weight")
	}
	m.finalNorm = get("model.norm.weight")
	for l := 0; l < cfg.NumLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		m.layers = append(m.layers, refLayerWeights{
			attnNorm: get(p + "input_layernorm.weight"), wq: get(p + "self_attn.q_proj.weight"),
			wk: get(p + "self_attn.k_proj.weight"), wv: get(p + "self_attn.v_proj.weight"),
			wo: get(p + "self_attn.o_proj.weight"), ffnNorm: get(p + "post_attention_layernorm.weight"),
			gate: get(p + "mlp.gate_proj.weight"), down: get(p + "mlp.down_proj.weight"), up: get(p + "mlp.up_proj.weight"),
		})
	}
	return m
}

// readTok512 reads a llama2.c tokenizer file's pieces.
func readTok512(t *testing.T, path string, vocab int) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 4
	pieces := make([]string, vocab)
	for i := range pieces {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		pieces[i] = string(data[off+8 : off+8+n])
		off += 8 + n
	}
	return pieces
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func TestConvertStories260K(t *testing.T) {
	shared := sharedDir(t)
	bin := filepath.Join(shared, "models", "stories260K", "stories260K.bin")
	out := t.TempDir()
	if err := ConvertLlama2c(bin, out); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	// Shape from the llama2.c project's description of stories260K.
	if cfg.HiddenSize != 64 || cfg.IntermediateSize != 172 || cfg.NumLayers != 5 || cfg.NumHeads != 8 ||
		cfg.NumKVHeads != 4 || cfg.VocabSize != 512 || cfg.MaxPositions != 512 || !cfg.TieEmbeddings {
		t.Fatalf("converted config %+v", cfg)
	}
	ckpt, err := OpenCheckpoint(out)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	if err := cfg.ValidateSource(ckpt); err != nil {
		t.Fatal(err)
	}
	if got := ckpt.TotalBytes(); got != 4*cfg.ParamCount() {
		t.Errorf("TotalBytes %d, want 4 * %d params", got, cfg.ParamCount())
	}

	// The converted model (rotate-half rope) must compute the same logits
	// as the original file run the llama2.c way (interleaved rope).
	orig := llama2cRefModel(t, bin)
	conv := hfRefModel(t, cfg, ckpt)
	pieces := readTok512(t, filepath.Join(shared, "models", "stories260K", "tok512.bin"), 512)
	token := 1 // BOS
	var text strings.Builder
	for pos := 0; pos < 40; pos++ {
		a, b := orig.step(token), conv.step(token)
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-6*(1+math.Abs(a[i])) {
				t.Fatalf("pos %d logit %d: llama2.c %v, converted %v", pos, i, a[i], b[i])
			}
		}
		token = argmax(b)
		piece := pieces[token]
		if pos == 0 {
			piece = strings.TrimPrefix(piece, " ")
		}
		text.WriteString(piece)
	}
	// Known greedy output of stories260K from the llama2.c project.
	const want = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
	t.Logf("greedy: %q", text.String())
	if got := text.String(); !strings.HasPrefix(got, want) {
		t.Errorf("greedy decoding of the converted model gave %q, want it to start with %q", got, want)
	}
}
