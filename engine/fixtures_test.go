package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tether/weights"
)

// TestPyTorchReferenceFixtures loads each tiny model of
// testdata/reference/<family> like any Hugging Face directory and compares
// every block's output and the logits with the PyTorch reference stored
// beside it (see testdata/reference/README.md).
func TestPyTorchReferenceFixtures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "reference", "*", "reference.safetensors"))
	if len(dirs) == 0 {
		t.Skip("no PyTorch reference fixtures in testdata/reference")
	}
	checkReferenceFixtures(t, dirs, "PyTorch")
}

// TestHuggingFaceFixtures compares every block's output and the logits of
// each random-weight tiny model of testdata/hf/<family> with Hugging Face
// transformers' own forward pass (float32, eager attention) stored beside
// it, on the test backend ($TETHER_TEST_BACKEND), at 1e-4 relative.
func TestHuggingFaceFixtures(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "hf", "*", "reference.safetensors"))
	if len(dirs) == 0 {
		t.Skip("no Hugging Face transformers fixtures in engine/testdata/hf: make them with " +
			"`python3 scripts/hf_fixtures.py` (needs torch, transformers and safetensors; " +
			"scripts/device-check.sh runs it) and commit them")
	}
	checkReferenceFixtures(t, dirs, "transformers")
}

// checkReferenceFixtures loads the model beside each reference.safetensors
// in refPaths with float32 weights on the test backend, runs the stored
// input_ids and compares every block's output (hidden_states[1..L]) and the
// logits with the reference made by source, at 1e-4 relative.
func checkReferenceFixtures(t *testing.T, refPaths []string, source string) {
	const tol = 1e-4
	be := testBackend(t)
	for _, refPath := range refPaths {
		dir := filepath.Dir(refPath)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			cfg, ckpt, err := weights.OpenModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer ckpt.Close()
			// float32 on every backend: 1e-4 is beyond bfloat16's precision.
			m, err := LoadWithOptions(be, cfg, ckpt, LoadOptions{WeightDType: "float32"})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ref, err := weights.OpenFile(refPath)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			ids, idShape, err := ref.Float32("input_ids")
			if err != nil {
				t.Fatal(err)
			}
			B, T := idShape[0], idShape[1]
			seqs := make([][]int, B)
			for b := range B {
				for i := range T {
					seqs[b] = append(seqs[b], int(ids[b*T+i]))
				}
			}
			layers := make([]int, cfg.NumLayers)
			for i := range layers {
				layers[i] = i
			}
			res, err := m.Forward(context.Background(), seqs, ForwardOptions{AllLogits: true, CaptureLayers: layers})
			if err != nil {
				t.Fatal(err)
			}
			logits, _, err := ref.Float32("logits")
			if err != nil {
				t.Fatal(err)
			}
			hidden, _, err := ref.Float32("hidden_states")
			if err != nil {
				t.Fatal(err)
			}
			V, H := cfg.VocabSize, cfg.HiddenSize
			for b := range B {
				want := logits[b*T*V : (b+1)*T*V]
				if d := maxRelDiff(flatten(res.AllLogits[b]), want); d > tol {
					t.Errorf("seq %d: logits differ from %s: max rel diff %g", b, source, d)
				}
				for _, l := range layers {
					start := ((l+1)*B + b) * T * H
					if d := maxRelDiff(flatten(res.Captured[l][b]), hidden[start:start+T*H]); d > tol {
						t.Errorf("seq %d: block %d output differs from %s: max rel diff %g", b, l, source, d)
					}
				}
			}
		})
	}
}

// TestStories260K runs the real stories260K model (llama2.c, converted to a
// Hugging Face directory) and checks the greedy continuation the llama2.c
// project documents: "Once upon a time, there was a little girl named Lily."
func TestStories260K(t *testing.T) {
	bin := filepath.Join("..", "..", "shared", "models", "stories260K", "stories260K.bin")
	if _, err := os.Stat(bin); err != nil {
		bin = filepath.Join("..", "bundled", "stories260K", "stories260K.bin")
		if _, err := os.Stat(bin); err != nil {
			t.Skip("stories260K.bin not found in ../shared/models or bundled/")
		}
	}
	dir := t.TempDir()
	if err := weights.ConvertLlama2c(bin, dir); err != nil {
		t.Fatal(err)
	}
	cfg, ckpt, err := weights.OpenModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	be := testBackend(t)
	m, err := Load(be, cfg, ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	res, err := m.Generate(context.Background(), []Request{{Prompt: []int{1}, MaxNewTokens: 30}}, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vocab, err := readLlama2cVocab(filepath.Join(filepath.Dir(bin), "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for i, id := range res[0].Tokens {
		piece := vocab[id]
		if i == 0 {
			piece = strings.TrimPrefix(piece, " ") // llama2.c strips the space after BOS
		}
		text.WriteString(piece)
	}
	const want = "Once upon a time, there was a little girl named Lily."
	if !strings.HasPrefix(text.String(), want) {
		t.Errorf("greedy continuation %q, expected it to begin %q", text.String(), want)
	}
}

// readLlama2cVocab reads a llama2.c tokenizer file: int32 max_len, then per
// token float32 score, int32 length and the bytes.
func readLlama2cVocab(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vocab []string
	for off := 4; off+8 <= len(data); {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		off += 8
		if off+n > len(data) {
			return nil, fmt.Errorf("%s: token %d overruns the file", path, len(vocab))
		}
		vocab = append(vocab, string(data[off:off+n]))
		off += n
	}
	return vocab, nil
}
