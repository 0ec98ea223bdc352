package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"tether/engine/pjrt"
	"tether/weights"
)

// isolatePluginSearch points every PJRT plugin search rule at an empty
// directory, and skips when a CUDA plugin is installed system-wide anyway.
func isolatePluginSearch(t *testing.T) string {
	t.Helper()
	empty := t.TempDir()
	for _, k := range []string{"HOME", "PATH", pjrt.PluginPathEnv} {
		t.Setenv(k, empty)
	}
	for _, k := range []string{"LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX"} {
		t.Setenv(k, "")
	}
	t.Chdir(empty)
	if loc, err := pjrt.FindPlugin("cuda"); err == nil {
		t.Skipf("a CUDA plugin is installed system-wide (%s): the not-found path cannot be reached", loc.Path)
	}
	return empty
}

func TestInfoBackendCUDANotFound(t *testing.T) {
	empty := isolatePluginSearch(t)
	out, err := captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "xla:cuda"}) })
	if err == nil {
		t.Fatalf("expected the not-found error, got output %q", out)
	}
	if strings.Contains(err.Error(), "without cgo") {
		return // a CGO_ENABLED=0 build says so instead
	}
	for _, want := range []string{
		`no PJRT plugin "cuda" found`, "never downloaded",
		filepath.Join(empty, "pjrt_c_api_cuda_plugin.so"),                            // PJRT_PLUGIN_LIBRARY_PATH
		filepath.Join(empty, ".local", "lib", "go-xla", "pjrt_c_api_cuda_plugin.so"), // go-xla under HOME
		"pip install", "--pjrt-plugin",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestInfoBackendFlags(t *testing.T) {
	empty := isolatePluginSearch(t)
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"info", "--pjrt-plugin", "/x/plugin.so"}, "needs --backend xla:"},
		{[]string{"info", "--backend", "go", "--pjrt-plugin", "/x/plugin.so"}, "needs --backend xla:"},
		{[]string{"info", "--backend", "xla:cuda", "--pjrt-plugin", filepath.Join(empty, "missing.so")}, "missing.so"},
		{[]string{"info", "--backend", "tpu"}, "unknown backend"},
		{[]string{"info"}, "--model"},
	} {
		_, err := captureStdout(t, func() error { return dispatch(tc.args) })
		if err != nil && strings.Contains(err.Error(), "without cgo") && tc.wantErr == "missing.so" {
			continue // a CGO_ENABLED=0 build refuses xla:... before looking at the file
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
	if pjrt.ExplicitPlugin() != "" {
		t.Errorf("--pjrt-plugin left the engine's plugin set to %q", pjrt.ExplicitPlugin())
	}
}

func TestInfoBackendGo(t *testing.T) {
	out, err := captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "go"}) })
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "go: ") || !strings.Contains(lines[0], "1 device(s)") {
		t.Errorf("want a one-line report, got %q", out)
	}
	out, err = captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "go", "--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]backendReport
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["backend"].Backend != "go" || got["backend"].Devices != 1 {
		t.Errorf("JSON %q: %+v, %v", out, got, err)
	}
}

// plantNaN rewrites dir's model.safetensors with a NaN at flat index i of
// tensor name.
func plantNaN(t *testing.T, dir, name string, i int) {
	t.Helper()
	path := filepath.Join(dir, weights.SingleFileName)
	f, err := weights.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ts []weights.Tensor
	for _, info := range f.Tensors() {
		data, _, err := f.Bytes(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.Clone(data)
		if info.Name == name {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(math.NaN())))
		}
		ts = append(ts, weights.Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: data})
	}
	f.Close()
	if err := weights.WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
}

// TestInfoCheck: --check passes a random model and names the tensor and
// index of a planted NaN (and fails); generate refuses the model at load.
func TestInfoCheck(t *testing.T) {
	dir := writePersonaTestModel(t)
	out, err := captureStdout(t, func() error { return dispatch([]string{"info", "--model", dir, "--check", "--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var got modelInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Check == nil || !got.Check.Finite || got.Check.Bytes != got.WeightBytes {
		t.Fatalf("clean model: %+v, %v", got.Check, err)
	}
	const tensor = "model.layers.1.self_attn.v_proj.weight"
	plantNaN(t, dir, tensor, 77)
	out, err = captureStdout(t, func() error { return dispatch([]string{"info", "--model", dir, "--check"}) })
	for _, want := range []string{tensor, "flat index 77", "NaN"} {
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(out, want) {
			t.Errorf("planted NaN: error %v, output %q: want both to contain %q", err, out, want)
		}
	}
	_, err = captureStdout(t, func() error { return dispatch([]string{"generate", "--model", dir, "--prompt", "hi", "-n", "2"}) })
	if err == nil || !strings.Contains(err.Error(), tensor) || !strings.Contains(err.Error(), "flat index 77") {
		t.Errorf("generate on a NaN weight: error %v, want one naming %s and flat index 77", err, tensor)
	}
}

// TestInfoMemory: the printed estimate's terms add up to its total, the
// workload flags reach it, and impossible workloads are refused.
func TestInfoMemory(t *testing.T) {
	dir := writePersonaTestModel(t)
	out, err := captureStdout(t, func() error {
		return dispatch([]string{"info", "--model", dir, "--batch", "4", "--prompt", "100", "--context", "300", "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got modelInfo
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	mem := got.Memory
	if sum := mem.Baseline + mem.Mapped + mem.Weights + mem.KVCache + mem.Workspace + mem.GCHeadroom; sum != mem.Total {
		t.Errorf("terms add up to %d, total %d", sum, mem.Total)
	}
	// Weights is what is copied: of this float32 Llama only q, k and v
	// (stored apart); the rest is read in the mapped checkpoint.
	qkv := int64(4 * got.Layers * (got.Heads + 2*got.KVHeads) * got.HeadDim * got.Hidden)
	if mem.Batch != 4 || mem.Prompt != 100 || mem.NewTokens != 200 || mem.Mapped != got.WeightBytes || mem.Weights != qkv {
		t.Errorf("memory %+v for batch 4, prompt 100, context 300 of a model of %d parameters: want weights %d (q, k, v)", mem, got.Parameters, qkv)
	}
	if got.ComputeBytes != 4*got.Parameters {
		t.Errorf("weights held %d bytes, want all %d parameters in float32, mapped or copied", got.ComputeBytes, got.Parameters)
	}
	out, err = captureStdout(t, func() error {
		return dispatch([]string{"info", "--model", dir, "--copy-weights", "--json"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var copied modelInfo
	if err := json.Unmarshal([]byte(out), &copied); err != nil {
		t.Fatal(err)
	}
	if copied.Memory.Weights != 4*got.Parameters {
		t.Errorf("--copy-weights: weights %d bytes, want all %d parameters in float32", copied.Memory.Weights, got.Parameters)
	}
	// K and V, every layer, batch 4, 100+200+1 slots rounded up to 320.
	if want := int64(2*2*2*8*4) * 4 * 320; mem.KVCache != want {
		t.Errorf("KV cache %d bytes, expected %d", mem.KVCache, want)
	}
	for _, args := range [][]string{
		{"--prompt", "0"}, {"--prompt", "20", "--context", "10"}, {"--context", "5000"}, {"--batch", "0"},
	} {
		_, err := captureStdout(t, func() error { return dispatch(append([]string{"info", "--model", dir}, args...)) })
		if err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
