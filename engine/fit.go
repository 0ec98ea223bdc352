package engine

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"tether/engine/pjrt"
	"tether/weights"
)

// AvailableMemory is the memory a model may use on a backend.
type AvailableMemory struct {
	// Bytes is the memory the weights, the KV cache and the workspace may
	// take together.
	Bytes int64
	// Source says where Bytes came from, for messages.
	Source string
}

// QueryAvailableMemory returns the memory a model may use on the backend
// called name (as NewBackend takes it), read before the backend opens:
//
//   - a CUDA XLA backend ("xla:cuda", or a plugin path naming cuda): the
//     first GPU's free memory from nvidia-smi, but no more than the
//     backend's memory fraction of its total (XLA's CUDA client allocates
//     from that share only; see pjrt.MemoryFraction);
//   - every other backend (the CPU ones): MemAvailable from /proc/meminfo.
func QueryAvailableMemory(name string) (AvailableMemory, error) {
	if config, ok := cudaConfig(name); ok {
		gpus, err := pjrt.QueryNvidiaSMI()
		if err != nil {
			return AvailableMemory{}, fmt.Errorf("engine: free memory of %s: %w", name, err)
		}
		return gpuAvailable(config, gpus)
	}
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return AvailableMemory{}, fmt.Errorf("engine: free memory of backend %q: %w", name, err)
	}
	return memAvailable(string(data))
}

// cudaConfig returns the part after "xla:" of a CUDA XLA backend name.
func cudaConfig(name string) (string, bool) {
	kind, config, _ := strings.Cut(name, ":")
	plugin, _, _ := strings.Cut(config, ",")
	if kind != "xla" || (plugin != "cuda" && !(strings.HasPrefix(plugin, "/") && pjrt.IsCUDAPlugin(plugin))) {
		return "", false
	}
	return config, true
}

// gpuAvailable is the memory a model may use on the first of gpus with the
// XLA backend config: free memory, capped at the memory fraction of the total.
func gpuAvailable(config string, gpus []pjrt.GPUInfo) (AvailableMemory, error) {
	if len(gpus) == 0 {
		return AvailableMemory{}, fmt.Errorf("engine: free memory of xla:%s: nvidia-smi reported no GPU", config)
	}
	frac, err := pjrt.MemoryFraction(config)
	if err != nil {
		return AvailableMemory{}, fmt.Errorf("engine: free memory of xla:%s: %w", config, err)
	}
	g := gpus[0]
	share := int64(frac * float64(g.MemoryTotal))
	a := AvailableMemory{Bytes: min(g.MemoryFree, share),
		Source: fmt.Sprintf("%s: %s free of %s, XLA memory_fraction %.2g = %s", g.Name, fmtBytes(g.MemoryFree), fmtBytes(g.MemoryTotal), frac, fmtBytes(share))}
	return a, nil
}

// memAvailable reads MemAvailable from the text of /proc/meminfo.
func memAvailable(meminfo string) (AvailableMemory, error) {
	for _, line := range strings.Split(meminfo, "\n") {
		rest, ok := strings.CutPrefix(line, "MemAvailable:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return AvailableMemory{}, fmt.Errorf("engine: /proc/meminfo line %q: expected \"MemAvailable: <n> kB\"", line)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return AvailableMemory{}, fmt.Errorf("engine: /proc/meminfo line %q: expected a whole number of kB", line)
		}
		return AvailableMemory{Bytes: kb << 10, Source: "/proc/meminfo MemAvailable " + fmtBytes(kb<<10)}, nil
	}
	return AvailableMemory{}, fmt.Errorf("engine: /proc/meminfo has no MemAvailable line")
}

// MemoryPlan is how a workload fits into the memory a backend has.
type MemoryPlan struct {
	// Backend is the backend name the plan is for.
	Backend string
	// Available is the memory the plan had to fit in.
	Available AvailableMemory
	// Requested is the workload asked for.
	Requested MemoryWorkload
	// Workload is what fits: Requested, or Requested with fewer new tokens
	// (a shorter context, hence a smaller KV cache) when it did not fit.
	Workload MemoryWorkload
	// CacheSlots is the KV cache length per sequence of Workload (after
	// the backend's bucketing).
	CacheSlots int
	// WeightDType is the dtype the weights are held in on the backend.
	WeightDType string
	// Weights, KVCache and Workspace are the terms of EstimateMemory for
	// Workload on the backend; Other is what the go backend adds (the
	// memory-mapped checkpoint and the collector's headroom), 0 on XLA.
	Weights, KVCache, Workspace, Other int64
	// Need is the sum of the terms.
	Need int64
	// Warning is non-empty when Workload is shorter than Requested.
	Warning string
}

// PlanMemory checks, before a model is loaded, that the model of cfg (a
// checkpoint of checkpointBytes) and the KV cache and workspace of w fit in
// avail on the backend called backend with opts; the terms are those of
// EstimateMemory, with the weights in the dtype opts gives on that backend
// (bfloat16 on XLA by default) and the backend's cache buckets. When w does
// not fit, the context is shortened (fewer new tokens, down to the prompt
// and one new token) until it does, with a warning; when even that does not
// fit, the error names every term and the memory available.
func PlanMemory(cfg *weights.Config, checkpointBytes int64, backend string, opts LoadOptions, w MemoryWorkload, avail AvailableMemory) (MemoryPlan, error) {
	xla := strings.HasPrefix(backend, "xla:")
	dtype := opts.WeightDType
	if xla && (dtype == "" || dtype == "auto") {
		dtype = "bfloat16"
	}
	// On the CPU backends EstimateMemory names the dtype (it depends on
	// the checkpoint's); this is the XLA one.
	dtype, elem, err := heldWeightDType(backend, dtype, 4)
	if err != nil {
		return MemoryPlan{}, fmt.Errorf("engine: memory plan: %w", err)
	}
	plan := func(w MemoryWorkload) (MemoryPlan, error) {
		p := MemoryPlan{Backend: backend, Available: avail, Requested: w, Workload: w, WeightDType: dtype}
		if !xla {
			cpu := "cpu"
			if strings.HasPrefix(backend, "go") {
				cpu = "go"
			}
			e, err := EstimateMemory(cfg, checkpointBytes, 0, cpu, opts, w)
			if err != nil {
				return p, err
			}
			p.WeightDType = e.WeightDType
			p.Weights, p.KVCache, p.Workspace, p.Other = e.Weights, e.KVCache, e.Workspace, e.Mapped+e.GCHeadroom
			p.CacheSlots = cacheBucket(promptBucket(w.Prompt, true)+w.NewTokens+1, true)
		} else {
			if w.Batch < 1 || w.Prompt < 1 || w.NewTokens < 0 {
				return p, fmt.Errorf("engine: memory workload batch %d, prompt %d, new tokens %d: expected batch >= 1, prompt >= 1, new tokens >= 0",
					w.Batch, w.Prompt, w.NewTokens)
			}
			T := promptBucket(w.Prompt, false)
			p.CacheSlots = cacheBucket(T+w.NewTokens+1, false)
			S := int64(p.CacheSlots)
			p.Weights = cfg.ParamCount() * elem
			if p.KVCache, err = kvCacheBytes(cfg, opts, w.Batch, S); err != nil {
				return p, err
			}
			p.Workspace = blockStepBytes(cfg, w.Batch, int64(min(T, prefillChunk)), S, int64(runtime.GOMAXPROCS(0))) + 4*int64(w.Batch)*int64(cfg.VocabSize)*2
		}
		p.Need = p.Weights + p.KVCache + p.Workspace + p.Other
		return p, nil
	}
	p, err := plan(w)
	if err != nil || p.Need <= avail.Bytes {
		return p, err
	}
	// The need grows with the new tokens: find the most that fit.
	lo, hi := 1, w.NewTokens // lo fits once checked; hi does not
	short := w
	short.NewTokens = min(1, w.NewTokens)
	first, err := plan(short)
	if err != nil {
		return p, err
	}
	if first.Need > avail.Bytes {
		return first, fmt.Errorf("engine: the model does not fit on backend %s: it needs %s (weights %s in %s, KV cache %s for batch %d at %d cache slots, workspace %s, other %s) for a prompt of %d and %d new token(s), but %s is available (%s)",
			backend, fmtBytes(first.Need), fmtBytes(first.Weights), dtype, fmtBytes(first.KVCache), w.Batch, first.CacheSlots,
			fmtBytes(first.Workspace), fmtBytes(first.Other), w.Prompt, short.NewTokens, fmtBytes(avail.Bytes), avail.Source)
	}
	best := first
	for lo+1 < hi {
		mid := (lo + hi) / 2
		short.NewTokens = mid
		q, err := plan(short)
		if err != nil {
			return q, err
		}
		if q.Need <= avail.Bytes {
			lo, best = mid, q
		} else {
			hi = mid
		}
	}
	best.Requested = w
	best.Warning = fmt.Sprintf("KV cache shrunk to fit %s (%s): context %d -> %d tokens per sequence (%d new tokens instead of %d) at batch %d, %d cache slots; the full context needs %s",
		fmtBytes(avail.Bytes), avail.Source, w.Prompt+w.NewTokens, w.Prompt+best.Workload.NewTokens, best.Workload.NewTokens, w.NewTokens,
		w.Batch, best.CacheSlots, fmtBytes(p.Need))
	return best, nil
}

// fmtBytes writes n bytes in MiB or GiB with one decimal.
func fmtBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
