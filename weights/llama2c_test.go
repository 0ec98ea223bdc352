package weights

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// ropeInterleaved applies llama2.c's rotary embedding to one head vector:
// pairs (2i, 2i+1) rotate by pos * theta^(-2i/hd).
func ropeInterleaved(v []float64, pos int, theta float64) {
	hd := len(v)
	for i := 0; i < hd; i += 2 {
		a := float64(pos) / math.Pow(theta, float64(i)/float64(hd))
		c, s := math.Cos(a), math.Sin(a)
		v0, v1 := v[i], v[i+1]
		v[i], v[i+1] = v0*c-v1*s, v0*s+v1*c
	}
}

// ropeRotateHalf applies Hugging Face Llama's rotary embedding to one head
// vector: pairs (i, i+hd/2) rotate by pos * theta^(-2i/hd).
func ropeRotateHalf(v []float64, pos int, theta float64) {
	hd := len(v)
	for i := 0; i < hd/2; i++ {
		a := float64(pos) / math.Pow(theta, float64(2*i)/float64(hd))
		c, s := math.Cos(a), math.Sin(a)
		x0, x1 := v[i], v[i+hd/2]
		v[i], v[i+hd/2] = x0*c-x1*s, x1*c+x0*s
	}
}

// matVec computes W x for W [rows, cols] row-major.
func matVec(w []float32, x []float64, rows, cols int) []float64 {
	out := make([]float64, rows)
	for r := 0; r < rows; r++ {
		var s float64
		for c := 0; c < cols; c++ {
			s += float64(w[r*cols+c]) * x[c]
		}
		out[r] = s
	}
	return out
}

func TestPermuteRotaryRowsMatchesInterleavedRope(t *testing.T) {
	const heads, hd, cols = 3, 8, 5
	rng := rand.New(rand.NewPCG(1, 2))
	w := make([]float32, heads*hd*cols)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	wk := make([]float32, heads*hd*cols)
	for i := range wk {
		wk[i] = float32(rng.NormFloat64())
	}
	x := make([]float64, cols)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	permuted, err := ToFloat32(F32, PermuteRotaryRows(le32(w...), cols, heads))
	if err != nil {
		t.Fatal(err)
	}
	permutedK, _ := ToFloat32(F32, PermuteRotaryRows(le32(wk...), cols, heads))
	// perm[j] is the original row that lands at position j of a head.
	perm := []int{0, 2, 4, 6, 1, 3, 5, 7}
	for _, pos := range []int{0, 1, 7, 100} {
		q := matVec(w, x, heads*hd, cols)
		qp := matVec(permuted, x, heads*hd, cols)
		k := matVec(wk, x, heads*hd, cols)
		kp := matVec(permutedK, x, heads*hd, cols)
		for h := 0; h < heads; h++ {
			ropeInterleaved(q[h*hd:(h+1)*hd], pos, 10000)
			ropeRotateHalf(qp[h*hd:(h+1)*hd], pos, 10000)
			ropeInterleaved(k[h*hd:(h+1)*hd], 3, 10000)
			ropeRotateHalf(kp[h*hd:(h+1)*hd], 3, 10000)
			var dot, dotp float64
			for j := 0; j < hd; j++ {
				if d := qp[h*hd+j] - q[h*hd+perm[j]]; math.Abs(d) > 1e-9 {
					t.Fatalf("pos %d head %d row %d: rotate-half on permuted %v, interleaved %v", pos, h, j, qp[h*hd+j], q[h*hd+perm[j]])
				}
				dot += q[h*hd+j] * k[h*hd+j]
				dotp += qp[h*hd+j] * kp[h*hd+j]
			}
			if math.Abs(dot-dotp) > 1e-9 {
				t.Errorf("pos %d head %d: q.k %v interleaved, %v rotate-half", pos, h, dot, dotp)
			}
		}
	}
}

// llama2cImage builds a llama2.c file whose arrays hold marker values:
// array a (in file order) element e holds a*10000 + e.
func llama2cImage(dim, hidden, layers, heads, kvHeads, vocab, seqLen int, shared bool) []byte {
	hd := dim / heads
	kv := kvHeads * hd
	sizes := []int{vocab * dim, layers * dim, layers * dim * dim, layers * dim * kv, layers * dim * kv, layers * dim * dim,
		layers * dim, layers * hidden * dim, layers * dim * hidden, layers * hidden * dim, dim, seqLen * hd / 2, seqLen * hd / 2}
	if !shared {
		sizes = append(sizes, vocab*dim)
	}
	v := vocab
	if !shared {
		v = -vocab
	}
	out := make([]byte, 0, 28)
	for _, h := range []int{dim, hidden, layers, heads, kvHeads, v, seqLen} {
		out = binary.LittleEndian.AppendUint32(out, uint32(int32(h)))
	}
	for a, n := range sizes {
		for e := 0; e < n; e++ {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(float32(a*10000+e)))
		}
	}
	return out
}

func TestParseLlama2cLayout(t *testing.T) {
	const dim, hidden, layers, heads, kvHeads, vocab, seq = 8, 12, 2, 2, 1, 7, 3
	for _, shared := range []bool{true, false} {
		m, err := ParseLlama2c(llama2cImage(dim, hidden, layers, heads, kvHeads, vocab, seq, shared), "synthetic.bin")
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.SharedClassifier != shared || m.Header.VocabSize != vocab {
			t.Errorf("header %+v", m.Header)
		}
		got := map[string]Tensor{}
		for _, tt := range m.Tensors {
			got[tt.Name] = tt
		}
		// name, array index in file order, first element's index within that array, shape
		tests := []struct {
			name  string
			array int
			first int
			shape []int
		}{
			{"model.embed_tokens.weight", 0, 0, []int{vocab, dim}},
			{"model.layers.1.input_layernorm.weight", 1, dim, []int{dim}},
			{"model.layers.1.self_attn.q_proj.weight", 2, dim * dim, []int{dim, dim}},
			{"model.layers.1.self_attn.k_proj.weight", 3, dim * 4, []int{4, dim}},
			{"model.layers.0.self_attn.v_proj.weight", 4, 0, []int{4, dim}},
			{"model.layers.1.self_attn.o_proj.weight", 5, dim * dim, []int{dim, dim}},
			{"model.layers.1.post_attention_layernorm.weight", 6, dim, []int{dim}},
			{"model.layers.1.mlp.gate_proj.weight", 7, hidden * dim, []int{hidden, dim}},
			{"model.layers.1.mlp.down_proj.weight", 8, dim * hidden, []int{dim, hidden}},
			{"model.layers.1.mlp.up_proj.weight", 9, hidden * dim, []int{hidden, dim}},
			{"model.norm.weight", 10, 0, []int{dim}},
		}
		if !shared {
			tests = append(tests, struct {
				name  string
				array int
				first int
				shape []int
			}{"lm_head.weight", 13, 0, []int{vocab, dim}})
		} else if _, ok := got["lm_head.weight"]; ok {
			t.Error("shared classifier produced lm_head.weight")
		}
		for _, tc := range tests {
			tt, ok := got[tc.name]
			if !ok {
				t.Fatalf("%s missing", tc.name)
			}
			vals, _ := ToFloat32(F32, tt.Data)
			if !slices.Equal(tt.Shape, tc.shape) || vals[0] != float32(tc.array*10000+tc.first) {
				t.Errorf("%s: shape %v first %v, want %v and %d", tc.name, tt.Shape, vals[0], tc.shape, tc.array*10000+tc.first)
			}
		}
		// q_proj rows are permuted within each head of 4: row 1 of the
		// converted matrix is original row 2.
		q, _ := ToFloat32(F32, got["model.layers.0.self_attn.q_proj.weight"].Data)
		if q[1*dim] != float32(2*10000+2*dim) {
			t.Errorf("q_proj row 1 starts with %v, want original row 2", q[dim])
		}
		cfg, err := ParseConfig(m.ConfigJSON(), "converted config.json")
		if err != nil {
			t.Fatal(err)
		}
		src := MemorySource{}
		for _, tt := range m.Tensors {
			v, _ := ToFloat32(F32, tt.Data)
			src[tt.Name] = MemoryTensor{Shape: tt.Shape, Data: v}
		}
		if err := cfg.ValidateSource(src); err != nil {
			t.Error(err)
		}
		if cfg.TieEmbeddings != shared || cfg.RMSNormEps != 1e-5 || cfg.BOSTokenID != 1 || cfg.TorchDType != "float32" {
			t.Errorf("converted config %+v", cfg)
		}
	}
}

func TestParseLlama2cBadInput(t *testing.T) {
	good := llama2cImage(8, 12, 2, 2, 1, 7, 3, true)
	header := func(vals ...int32) []byte {
		out := []byte{}
		for _, v := range vals {
			out = binary.LittleEndian.AppendUint32(out, uint32(v))
		}
		return append(out, good[28:]...)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"short header", good[:10], "expected at least a 28-byte header"},
		{"truncated", good[:len(good)-4], "requires exactly"},
		{"trailing bytes", append(append([]byte{}, good...), 0, 0, 0, 0), "requires exactly"},
		{"zero dim", header(0, 12, 2, 2, 1, 7, 3), "dim = 0"},
		{"negative layers", header(8, 12, -2, 2, 1, 7, 3), "n_layers = -2"},
		{"heads do not divide dim", header(8, 12, 2, 3, 1, 7, 3), "must split into 3 heads"},
		{"kv heads", header(8, 12, 2, 2, 3, 7, 3), "not a multiple of n_kv_heads"},
		{"min int vocab", header(8, 12, 2, 2, 1, math.MinInt32, 3), "vocab_size"},
		{"huge", header(1<<30, 1<<30, 1<<30, 2, 1, 1<<30, 1<<30), "requires exactly"},
	}
	for _, tc := range tests {
		_, err := ParseLlama2c(tc.data, "m.bin")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "m.bin") {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzReadLlama2c(f *testing.F) {
	f.Add(llama2cImage(8, 12, 2, 2, 1, 7, 3, true))
	f.Add(llama2cImage(4, 4, 1, 1, 1, 2, 1, false))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseLlama2c(data, "fuzz")
		if err != nil {
			return
		}
		var total int
		for _, tt := range m.Tensors {
			n, _ := shapeElements(tt.Shape)
			if int64(len(tt.Data)) != 4*n {
				t.Fatalf("%s: %d bytes for shape %v", tt.Name, len(tt.Data), tt.Shape)
			}
			total += len(tt.Data)
		}
		if total > len(data) {
			t.Fatalf("tensors hold %d bytes, more than the %d-byte file", total, len(data))
		}
	})
}

// sharedDir returns ../shared or skips the test.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("..", "..", "shared")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("shared test data not found at %s (../shared from the repository root); skipping", dir)
	}
	return dir
}
