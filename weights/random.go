package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// randomInitStd is the standard deviation of random matrices, as in HF's
// default initializer_range.
const randomInitStd = 0.02

// randomChunk is how many values are generated and written at a time.
const randomChunk = 1 << 20

// WriteRandomModel writes a model directory with deterministic random
// weights for the given config.json: dir/config.json (configJSON with
// torch_dtype set to dtype's name; other keys kept) and dir/model.safetensors
// holding every tensor of ExpectedTensors (under the config's TensorPrefix)
// in dtype. Matrices and biases are normal with std 0.02; norm weights are
// 1 + N(0, 0.02) (N(0, 0.02) for NormPlusOne families). Values depend only on
// seed and the tensor name. Tensors are generated and streamed to disk in
// chunks, so memory stays small even for billion-parameter configs.
func WriteRandomModel(dir string, configJSON []byte, seed uint64, dtype DType) error {
	if !dtype.IsFloat() {
		return fmt.Errorf("weights: random model: dtype %s, expected F32, BF16 or F16", dtype)
	}
	cfg, err := ParseConfig(configJSON, "config.json")
	if err != nil {
		return err
	}
	out, err := setTorchDType(configJSON, dtype.TorchName())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	specs := cfg.ExpectedTensors()
	infos := make([]TensorInfo, len(specs))
	for i, s := range specs {
		infos[i] = TensorInfo{Name: cfg.TensorPrefix + s.Name, DType: dtype, Shape: s.Shape}
	}
	path := filepath.Join(dir, SingleFileName)
	w, err := NewStreamWriter(path, infos, map[string]string{"format": "pt"})
	if err != nil {
		return err
	}
	vals := make([]float32, randomChunk)
	buf := make([]byte, randomChunk*dtype.Size())
	for _, info := range w.Order() {
		rng := rand.New(rand.NewPCG(seed, nameHash(info.Name)))
		mean := float32(0)
		if isNormWeight(info.Name) && !cfg.NormPlusOne {
			mean = 1
		}
		remaining := info.NumElements()
		for remaining > 0 || info.Length == 0 {
			n := int(min(remaining, randomChunk))
			for i := 0; i < n; i++ {
				vals[i] = mean + float32(rng.NormFloat64()*randomInitStd)
			}
			b := buf[:n*dtype.Size()]
			encodeInto(dtype, vals[:n], b)
			if err := w.WriteTensorPart(info.Name, b); err != nil {
				w.Abort()
				return err
			}
			remaining -= int64(n)
			if info.Length == 0 {
				break
			}
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "config.json"), out)
}

// isNormWeight reports whether a tensor is an RMSNorm weight.
func isNormWeight(name string) bool {
	return strings.HasSuffix(name, "norm.weight")
}

// nameHash seeds a tensor's generator from its name.
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// setTorchDType returns config.json with torch_dtype set (and a "dtype" key,
// used by newer transformers, updated if present), other keys unchanged.
func setTorchDType(configJSON []byte, torchDType string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(configJSON, &m); err != nil {
		return nil, fmt.Errorf("weights: config.json: expected a JSON object: %w", err)
	}
	v, _ := json.Marshal(torchDType)
	m["torch_dtype"] = v
	if _, ok := m["dtype"]; ok {
		m["dtype"] = v
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("weights: config.json: %w", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, out, "", "  "); err != nil {
		return nil, fmt.Errorf("weights: config.json: %w", err)
	}
	pretty.WriteByte('\n')
	return pretty.Bytes(), nil
}
