package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"tether/engine"
	"tether/engine/pjrt"
	"tether/model"
	"tether/weights"
)

func init() {
	register("info", "architecture, sizes, dtype, parameter count and memory needed; or a backend's device report", runInfo)
}

// modelInfo is what `tether info` prints (as text, or as JSON with --json).
type modelInfo struct {
	Model           string `json:"model"`
	Dir             string `json:"dir"`
	Architecture    string `json:"architecture"`
	Family          string `json:"family"`
	DType           string `json:"dtype"`
	Layers          int    `json:"layers"`
	Hidden          int    `json:"hidden_size"`
	Intermediate    int    `json:"intermediate_size"`
	Heads           int    `json:"heads"`
	KVHeads         int    `json:"kv_heads"`
	HeadDim         int    `json:"head_dim"`
	Vocab           int    `json:"vocab_size"`
	Context         int    `json:"max_positions"`
	SlidingWindow   int    `json:"sliding_window,omitempty"`
	TiedEmbeddings  bool   `json:"tied_embeddings"`
	Parameters      int64  `json:"parameters"`
	WeightBytes     int64  `json:"weight_bytes"`
	ComputeBytes    int64  `json:"compute_weight_bytes_f32"`
	KVBytesPerToken int64  `json:"kv_cache_bytes_per_token"`
	// Memory is the estimated peak resident memory of a run on the CPU
	// backend, by term (see engine.EstimateMemory).
	Memory memoryReport `json:"memory"`
	// Check is the result of --check.
	Check *finiteReport `json:"check,omitempty"`
	// Backend is the --backend report, when one was asked for.
	Backend *backendReport `json:"backend,omitempty"`
}

// memoryReport is the JSON form of an engine.MemoryEstimate (bytes).
type memoryReport struct {
	Batch      int   `json:"batch"`
	Prompt     int   `json:"prompt_tokens"`
	NewTokens  int   `json:"new_tokens"`
	Baseline   int64 `json:"baseline_bytes"`
	Mapped     int64 `json:"mapped_checkpoint_bytes"`
	Weights    int64 `json:"weights_bytes"`
	KVCache    int64 `json:"kv_cache_bytes"`
	Workspace  int64 `json:"workspace_bytes"`
	GCHeadroom int64 `json:"gc_headroom_bytes"`
	GOGC       int   `json:"gogc"`
	Total      int64 `json:"peak_bytes"`
}

// finiteReport is what `tether info --check` found.
type finiteReport struct {
	Finite bool    `json:"finite"`
	Tensor string  `json:"tensor,omitempty"`
	Index  int64   `json:"index,omitempty"`
	Value  string  `json:"value,omitempty"`
	Bytes  int64   `json:"bytes_scanned"`
	MS     float64 `json:"ms"`
}

// backendReport is what `tether info --backend B` prints with --json.
type backendReport struct {
	Backend      string   `json:"backend"`
	Report       string   `json:"report"`
	Devices      int      `json:"devices"`
	DeviceName   string   `json:"device_name"`
	GPUName      string   `json:"gpu_name,omitempty"`
	MemoryTotal  int64    `json:"memory_total_bytes,omitempty"`
	MemoryFree   int64    `json:"memory_free_bytes,omitempty"`
	Plugin       string   `json:"plugin,omitempty"`
	PluginSource string   `json:"plugin_found_via,omitempty"`
	NVIDIADir    string   `json:"nvidia_dir,omitempty"`
	CUDADataDir  string   `json:"cuda_data_dir,omitempty"`
	LibraryError []string `json:"library_errors,omitempty"`
}

// openBackendReport opens the backend called name (with the PJRT plugin file
// plugin, if not ""), describes it and closes it again.
func openBackendReport(name, plugin string) (backendReport, error) {
	if plugin != "" {
		pjrt.SetPlugin(plugin)
		defer pjrt.SetPlugin("")
	}
	b, info, err := engine.OpenBackend(name)
	if err != nil {
		return backendReport{}, err
	}
	b.Finalize()
	r := backendReport{Backend: name, Report: info.String(), Devices: info.Devices, DeviceName: info.DeviceName,
		Plugin: info.Plugin.Path, PluginSource: info.Plugin.Source, NVIDIADir: info.CUDA.NVIDIADir,
		CUDADataDir: info.CUDA.DataDir, LibraryError: info.LibraryErrors}
	if len(info.GPUs) > 0 {
		r.GPUName, r.MemoryTotal, r.MemoryFree = info.GPUs[0].Name, info.GPUs[0].MemoryTotal, info.GPUs[0].MemoryFree
	}
	return r, nil
}

// estimateBackend is the CPU backend the memory estimate of info is for:
// "go" for go (and its options), else "cpu".
func estimateBackend(name string) string {
	if name == "go" || strings.HasPrefix(name, "go:") {
		return "go"
	}
	return "cpu"
}

func runInfo(args []string) error {
	baseline, rssErr := engine.ProcessRSS() // this process before the model: binary, runtime, GoMLX
	fs := newFlags("info", "--model M [--batch B] [--prompt P] [--context C] [--check] | --backend B [--pjrt-plugin PATH] [--json]",
		"tether info --model .tether/stories260K   (after tether demo)\n  tether info --model M --batch 8 --prompt 512 --context 1024 --check\n  tether info --backend xla:cuda")
	ref := fs.String("model", "", "model directory or Hugging Face id (org/name, resolved offline)")
	backendName := fs.String("backend", "", "open this backend (cpu, go, xla:cuda, xla:cpu, xla:/path/plugin.so) and print a one-line report: device, memory, PJRT plugin")
	pluginPath := fs.String("pjrt-plugin", "", "PJRT plugin file for an xla:<name> backend, instead of searching PJRT_PLUGIN_LIBRARY_PATH, go-xla's directories and Python jax_plugins")
	batch := fs.Int("batch", 1, "memory estimate: sequences generated together")
	prompt := fs.Int("prompt", 16, "memory estimate: prompt tokens per sequence")
	context := fs.Int("context", 0, "memory estimate: prompt plus new tokens per sequence (0 = the model's full context)")
	fs.StringVar(&weightsDType, "weights-dtype", "auto", "memory estimate: dtype the weights are held in: auto (the checkpoint's on cpu, f32 on go), f32, bf16 or f16")
	fs.BoolVar(&copyWeights, "copy-weights", false, "memory estimate: "+copyWeightsUsage)
	check := fs.Bool("check", false, "read every weight and report the first NaN or Inf (tensor and index)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	limit(fs, "batch", atLeast(1))
	limit(fs, "prompt", atLeast(1))
	limit(fs, "context", atLeast(0).with("0 = the model's full context"))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *pluginPath != "" && !strings.HasPrefix(*backendName, "xla:") {
		return fmt.Errorf("info: --pjrt-plugin %s needs --backend xla:<name> (e.g. --backend xla:cuda)", *pluginPath)
	}
	var backend *backendReport
	if *backendName != "" {
		r, err := openBackendReport(*backendName, *pluginPath)
		if err != nil {
			return err
		}
		backend = &r
		if *ref == "" {
			if *asJSON {
				return json.NewEncoder(os.Stdout).Encode(map[string]backendReport{"backend": r})
			}
			fmt.Println(r.Report)
			return nil
		}
		if !*asJSON {
			fmt.Println("backend        " + r.Report)
		}
	}
	if err := require(fs, "model"); err != nil {
		return err
	}
	if rssErr != nil {
		return fmt.Errorf("info: the memory estimate needs this process's resident memory: %w", rssErr)
	}
	m, err := model.Open(*ref, model.Options{NoWeights: true, NoTokenizer: true})
	if err != nil {
		return err
	}
	defer m.Close()
	c := m.Config
	ctxLen := *context
	if ctxLen == 0 {
		ctxLen = c.MaxPositions
	}
	if *prompt < 1 || *prompt > ctxLen || ctxLen > c.MaxPositions {
		return fmt.Errorf("info: --prompt %d, --context %d: expected 1 <= prompt <= context <= the model's context %d", *prompt, ctxLen, c.MaxPositions)
	}
	est, err := engine.EstimateMemory(c, m.WeightBytes, baseline, estimateBackend(*backendName), engine.LoadOptions{WeightDType: weightsDType, CopyWeights: copyWeights, CacheDType: cacheDTypeFlag}, engine.MemoryWorkload{Batch: *batch, Prompt: *prompt, NewTokens: ctxLen - *prompt})
	if err != nil {
		return fmt.Errorf("info: %w", err)
	}
	params := c.ParamCount()
	kvPerToken := int64(2 * c.NumLayers * c.NumKVHeads * c.HeadDim * 4)
	info := modelInfo{
		Model: m.Name, Dir: m.Dir, Architecture: c.Architecture, Family: string(c.Family),
		DType: c.TorchDType, Layers: c.NumLayers, Hidden: c.HiddenSize, Intermediate: c.IntermediateSize,
		Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim, Vocab: c.VocabSize,
		Context: c.MaxPositions, SlidingWindow: c.SlidingWindow, TiedEmbeddings: c.TieEmbeddings,
		Parameters: params, WeightBytes: m.WeightBytes, ComputeBytes: est.HeldWeights,
		KVBytesPerToken: kvPerToken, Backend: backend,
		Memory: memoryReport{Batch: *batch, Prompt: *prompt, NewTokens: est.Workload.NewTokens, Baseline: est.Baseline,
			Mapped: est.Mapped, Weights: est.Weights, KVCache: est.KVCache, Workspace: est.Workspace,
			GCHeadroom: est.GCHeadroom, GOGC: est.GOGC, Total: est.Total},
	}
	if *check {
		if info.Check, err = checkWeights(m.Dir, c.TensorPrefix); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "model          %s (%s)\n", info.Model, info.Dir)
	fmt.Fprintf(&b, "architecture   %s (family %s), checkpoint dtype %s\n", info.Architecture, info.Family, info.DType)
	fmt.Fprintf(&b, "layers         %d, hidden %d, intermediate %d\n", info.Layers, info.Hidden, info.Intermediate)
	fmt.Fprintf(&b, "attention      %d heads, %d KV heads, head dim %d", info.Heads, info.KVHeads, info.HeadDim)
	if info.SlidingWindow > 0 {
		fmt.Fprintf(&b, ", sliding window %d", info.SlidingWindow)
	}
	fmt.Fprintf(&b, "\nvocabulary     %d tokens, context %d, tied embeddings %v\n", info.Vocab, info.Context, info.TiedEmbeddings)
	fmt.Fprintf(&b, "parameters     %s (%d)\n", humanCount(params), params)
	fmt.Fprintf(&b, "weights        %s on disk, %s as held by the CPU backend (%s of it copied, the rest read in the mapped checkpoint)\n",
		humanBytes(info.WeightBytes), humanBytes(info.ComputeBytes), humanBytes(info.Memory.Weights))
	fmt.Fprintf(&b, "KV cache       %s per token per sequence (f32)\n", humanBytes(kvPerToken))
	mem := info.Memory
	fmt.Fprintf(&b, "peak memory    %s on the CPU backend for batch %d, %d prompt + %d new tokens per sequence:\n",
		humanBytes(mem.Total), mem.Batch, mem.Prompt, mem.NewTokens)
	for _, t := range []struct {
		n    int64
		what string
	}{
		{mem.Baseline, "process baseline: binary, Go runtime, GoMLX (measured now)"},
		{mem.Mapped, "checkpoint files, memory-mapped and read while loading"},
		{mem.Weights, "weights copied into the backend's memory (those used as stored are read in the mapped checkpoint)"},
		{mem.KVCache, "KV cache (float32)"},
		{mem.Workspace, "largest step's buffers (prefill chunk: attention scores, activations, logits)"},
		{mem.GCHeadroom, fmt.Sprintf("garbage the Go GC lets accumulate (GOGC=%d%% of the live heap; lower GOGC to shrink it)", mem.GOGC)},
	} {
		fmt.Fprintf(&b, "  %10s  %s\n", humanBytes(t.n), t.what)
	}
	if r := info.Check; r != nil {
		if r.Finite {
			fmt.Fprintf(&b, "check          every weight is finite (%s read in %.0f ms)\n", humanBytes(r.Bytes), r.MS)
		} else {
			fmt.Fprintf(&b, "check          NOT FINITE: tensor %q holds %s at flat index %d\n", r.Tensor, r.Value, r.Index)
		}
	}
	fmt.Print(b.String())
	if r := info.Check; r != nil && !r.Finite {
		return fmt.Errorf("info: %s: tensor %q holds %s at flat index %d", m.Dir, r.Tensor, r.Value, r.Index)
	}
	return nil
}

// checkWeights scans the checkpoint in dir for non-finite values.
func checkWeights(dir, prefix string) (*finiteReport, error) {
	ck, err := weights.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ck.Close()
	ck.SetPrefix(prefix)
	start := time.Now()
	v, err := ck.FirstNonFinite()
	if err != nil {
		return nil, fmt.Errorf("info: --check: %w", err)
	}
	r := &finiteReport{Finite: v == nil, Bytes: ck.TotalBytes(), MS: ms(time.Since(start))}
	if v != nil {
		r.Tensor, r.Index, r.Value = v.Tensor, v.Index, fmt.Sprint(v.Value)
	}
	return r, nil
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// humanCount formats a parameter count as 135M, 1.2B and so on.
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
