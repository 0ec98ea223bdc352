package weights

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// shrinkConfig takes a real config.json and makes its sizes tiny, keeping
// every family-specific key (for multimodal configs, inside text_config).
func shrinkConfig(t *testing.T, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "configs", file))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	text := top
	if tc, ok := top["text_config"].(map[string]any); ok {
		text = tc
	}
	small := map[string]any{"vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3,
		"num_attention_heads": 4, "num_key_value_heads": 2}
	for k, v := range small {
		text[k] = v
	}
	if _, ok := text["head_dim"]; ok {
		text["head_dim"] = 16
	}
	if _, ok := text["layer_types"]; ok {
		delete(text, "layer_types")
	}
	out, err := json.Marshal(top)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteRandomModelEveryFamily(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "configs", "*.json"))
	if len(files) < 8 {
		t.Fatalf("found %d test configs", len(files))
	}
	for _, path := range files {
		file := filepath.Base(path)
		for _, dt := range []DType{F32, BF16} {
			t.Run(file+"/"+string(dt), func(t *testing.T) {
				dir := t.TempDir()
				if err := WriteRandomModel(dir, shrinkConfig(t, file), 7, dt); err != nil {
					t.Fatal(err)
				}
				cfg, err := LoadConfig(dir)
				if err != nil {
					t.Fatal(err)
				}
				if cfg.TorchDType != dt.TorchName() {
					t.Errorf("torch_dtype %q, want %q", cfg.TorchDType, dt.TorchName())
				}
				ckpt, err := OpenCheckpoint(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer ckpt.Close()
				ckpt.SetPrefix(cfg.TensorPrefix)
				if err := cfg.ValidateSource(ckpt); err != nil {
					t.Fatal(err)
				}
				for _, s := range cfg.ExpectedTensors() {
					info, _ := ckpt.Info(s.Name)
					if info.DType != dt {
						t.Fatalf("%s stored as %s", s.Name, info.DType)
					}
				}
				// Norm weights sit near 1 (near 0 where the model adds 1),
				// matrices near N(0, 0.02).
				normMean := 1.0
				if cfg.NormPlusOne {
					normMean = 0
				}
				checkStats(t, ckpt, "model.norm.weight", normMean, 0.02)
				checkStats(t, ckpt, "model.embed_tokens.weight", 0, 0.02)
				checkStats(t, ckpt, "model.layers.2.mlp.down_proj.weight", 0, 0.02)
			})
		}
	}
}

// checkStats compares a tensor's sample mean and standard deviation with
// the distribution it was drawn from, allowing for sampling error.
func checkStats(t *testing.T, src TensorSource, name string, mean, std float64) {
	t.Helper()
	v, _, err := src.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	var s, ss float64
	for _, x := range v {
		s += float64(x)
	}
	m := s / float64(len(v))
	for _, x := range v {
		ss += (float64(x) - m) * (float64(x) - m)
	}
	sd := math.Sqrt(ss / float64(len(v)))
	n := float64(len(v))
	if math.Abs(m-mean) > 5*std/math.Sqrt(n)+0.004 || math.Abs(sd-std) > 0.35*std {
		t.Errorf("%s: mean %.4f std %.4f over %d values, want about %.2f and %.2f", name, m, sd, len(v), mean, std)
	}
}

func TestWriteRandomModelDeterministic(t *testing.T) {
	cfg := shrinkConfig(t, "qwen3-0.6b.json")
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for dir, seed := range map[string]uint64{a: 1, b: 1, c: 2} {
		if err := WriteRandomModel(dir, cfg, seed, F16); err != nil {
			t.Fatal(err)
		}
	}
	read := func(dir string) []byte {
		d, err := os.ReadFile(filepath.Join(dir, SingleFileName))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if !bytes.Equal(read(a), read(b)) {
		t.Error("same seed gave different weights")
	}
	if bytes.Equal(read(a), read(c)) {
		t.Error("different seeds gave the same weights")
	}
	if err := WriteRandomModel(t.TempDir(), cfg, 1, I32); err == nil || !strings.Contains(err.Error(), "expected F32, BF16 or F16") {
		t.Errorf("I32 random model: %v", err)
	}
	if err := WriteRandomModel(t.TempDir(), []byte(`{"architectures":["Nope"]}`), 1, F32); err == nil {
		t.Error("unknown architecture accepted")
	}
}
