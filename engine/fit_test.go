package engine

import (
	"strings"
	"testing"

	"tether/engine/pjrt"
	"tether/weights"
)

// llama1BConfig has the shape of Llama 3.2 1B.
func llama1BConfig() *weights.Config {
	return &weights.Config{
		Family: weights.FamilyLlama, VocabSize: 128256, HiddenSize: 2048, IntermediateSize: 8192, NumLayers: 16,
		NumHeads: 32, NumKVHeads: 8, HeadDim: 64, MaxPositions: 131072, RMSNormEps: 1e-5, RopeTheta: 500000,
		Activation: "silu", TieEmbeddings: true, BOSTokenID: 1, EOSTokenIDs: []int{2}, PadTokenID: -1,
		SlidingLayers: make([]bool, 16),
	}
}

func TestPlanMemoryFits(t *testing.T) {
	cfg := llama1BConfig()
	avail := AvailableMemory{Bytes: 100 << 30, Source: "test"}
	w := MemoryWorkload{Batch: 4, Prompt: 100, NewTokens: 27}
	p, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{}, w, avail)
	if err != nil {
		t.Fatal(err)
	}
	// XLA buckets: the prompt pads to 128 (a power of two), the cache to
	// the power of two above 128+27+1 = 156.
	const slots = 256
	if p.Workload != w || p.Warning != "" || p.CacheSlots != slots {
		t.Errorf("plan %+v: want the requested workload, no warning, %d slots", p, slots)
	}
	// K and V, per layer, float32: 2 * 16 layers * 4 seqs * 8 heads * 256 * 64 * 4 bytes.
	if want := int64(2 * 16 * 4 * 8 * slots * 64 * 4); p.KVCache != want {
		t.Errorf("KV cache %d bytes, want %d", p.KVCache, want)
	}
	// Llama 3.2 1B has 1,235,814,400 parameters (tied embeddings), 2 bytes each in bfloat16.
	if want := int64(1235814400 * 2); p.Weights != want || p.WeightDType != "bfloat16" {
		t.Errorf("weights %d bytes in %s, want %d in bfloat16", p.Weights, p.WeightDType, want)
	}
	if p.Need != p.Weights+p.KVCache+p.Workspace || p.Other != 0 {
		t.Errorf("need %d is not weights + cache + workspace (other %d)", p.Need, p.Other)
	}
	f32, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{WeightDType: "float32"}, w, avail)
	if err != nil || f32.Weights != 2*p.Weights {
		t.Errorf("float32 weights %d, %v: want twice the bfloat16 %d", f32.Weights, err, p.Weights)
	}
}

func TestPlanMemoryGoBackendIsTheEstimate(t *testing.T) {
	cfg := tinyConfig(weights.FamilyQwen2)
	w := MemoryWorkload{Batch: 2, Prompt: 9, NewTokens: 20}
	p, err := PlanMemory(cfg, 12345, "go", LoadOptions{}, w, AvailableMemory{Bytes: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	e, err := EstimateMemory(cfg, 12345, 0, "go", LoadOptions{}, w)
	if err != nil {
		t.Fatal(err)
	}
	if p.Need != e.Total || p.Weights != cfg.ParamCount()*4 || p.WeightDType != "float32" || p.CacheSlots != 64 {
		t.Errorf("plan %+v: want the estimate's total %d, float32 weights, 64 slots (fine buckets)", p, e.Total)
	}
}

func TestPlanMemoryDoesNotFit(t *testing.T) {
	cfg := llama1BConfig()
	avail := AvailableMemory{Bytes: 2 << 30, Source: "fake GPU"}
	_, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{}, MemoryWorkload{Batch: 1, Prompt: 16, NewTokens: 100}, avail)
	if err == nil {
		t.Fatal("2.3 GiB of bfloat16 weights fit in 2 GiB")
	}
	for _, want := range []string{"does not fit", "xla:cuda", "2.3 GiB in bfloat16", "2.0 GiB is available", "fake GPU", "1 new token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestPlanMemoryShrinksTheCache(t *testing.T) {
	cfg := llama1BConfig()
	w := MemoryWorkload{Batch: 8, Prompt: 512, NewTokens: 8192 - 512}
	avail := AvailableMemory{Bytes: 8 << 30, Source: "fake GPU"}
	p, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{}, w, avail)
	if err != nil {
		t.Fatal(err)
	}
	full, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{}, w, AvailableMemory{Bytes: 1 << 50})
	if err != nil {
		t.Fatal(err)
	}
	if full.Need <= avail.Bytes {
		t.Fatalf("the full context needs %d bytes, within the %d available: the test does not shrink anything", full.Need, avail.Bytes)
	}
	if p.Requested != w || p.Workload.Batch != 8 || p.Workload.Prompt != 512 || p.Workload.NewTokens >= w.NewTokens || p.Workload.NewTokens < 1 {
		t.Fatalf("plan %+v: want the batch and prompt kept and fewer new tokens", p)
	}
	if p.Need > avail.Bytes {
		t.Errorf("shrunk plan needs %d bytes, over the %d available", p.Need, avail.Bytes)
	}
	if p.CacheSlots < 512+p.Workload.NewTokens+1 {
		t.Errorf("%d cache slots cannot hold %d prompt and %d new tokens", p.CacheSlots, 512, p.Workload.NewTokens)
	}
	if want := int64(2 * 16 * 8 * 8 * p.CacheSlots * 64 * 4); p.KVCache != want {
		t.Errorf("KV cache %d bytes, want %d", p.KVCache, want)
	}
	// The largest that fits: one more new token does not.
	more := p.Workload
	more.NewTokens++
	if q, err := PlanMemory(cfg, 0, "xla:cuda", LoadOptions{}, more, AvailableMemory{Bytes: 1 << 50}); err != nil || q.Need <= avail.Bytes {
		t.Errorf("%d new tokens need %d bytes (%v), within the %d available: the cache was shrunk too far", more.NewTokens, q.Need, err, avail.Bytes)
	}
	for _, want := range []string{"shrunk", "8.0 GiB", "fake GPU", "context 8192 ->"} {
		if !strings.Contains(p.Warning, want) {
			t.Errorf("warning %q lacks %q", p.Warning, want)
		}
	}
}

func TestAvailableMemory(t *testing.T) {
	a, err := memAvailable("MemTotal:       16318412 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n")
	if err != nil || a.Bytes != 8000000*1024 || !strings.Contains(a.Source, "MemAvailable") {
		t.Errorf("memAvailable: %+v, %v", a, err)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: lots kB\n", "MemAvailable: 12\n"} {
		if _, err := memAvailable(bad); err == nil {
			t.Errorf("memAvailable(%q): expected an error", bad)
		}
	}
	h200 := []pjrt.GPUInfo{{Name: "NVIDIA H200", MemoryTotal: 140 << 30, MemoryFree: 139 << 30}}
	for _, tc := range []struct {
		config string
		gpus   []pjrt.GPUInfo
		want   int64
	}{
		{"cuda", h200, 105 << 30}, // 0.75 of 140 GiB: XLA's share, below the free 139 GiB
		{"cuda,memory_fraction=1", h200, 139 << 30},
		{"cuda,memory_fraction=0.5", []pjrt.GPUInfo{{Name: "busy", MemoryTotal: 80 << 30, MemoryFree: 10 << 30}}, 10 << 30},
	} {
		a, err := gpuAvailable(tc.config, tc.gpus)
		if err != nil || a.Bytes != tc.want || !strings.Contains(a.Source, tc.gpus[0].Name) {
			t.Errorf("gpuAvailable(%q): %+v, %v; want %d bytes", tc.config, a, err, tc.want)
		}
	}
	if _, err := gpuAvailable("cuda", nil); err == nil {
		t.Error("no GPU: expected an error")
	}
	for name, want := range map[string]bool{"xla:cuda": true, "xla:cuda,tf32": true, "xla:/sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so": true, "xla:cpu": false, "go": false, "": false} {
		if _, got := cudaConfig(name); got != want {
			t.Errorf("cudaConfig(%q) = %v, want %v", name, got, want)
		}
	}
}
