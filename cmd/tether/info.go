package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"tether/engine"
	"tether/model"
)

func init() {
	register("info", "architecture, sizes, dtype, parameter count and memory needed; or a backend's device report", runInfo)
}

// modelInfo is what `tether info` prints (as text, or as JSON with --json).
type modelInfo struct {
	Model            string `json:"model"`
	Dir              string `json:"dir"`
	Architecture     string `json:"architecture"`
	Family           string `json:"family"`
	DType            string `json:"dtype"`
	Layers           int    `json:"layers"`
	Hidden           int    `json:"hidden_size"`
	Intermediate     int    `json:"intermediate_size"`
	Heads            int    `json:"heads"`
	KVHeads          int    `json:"kv_heads"`
	HeadDim          int    `json:"head_dim"`
	Vocab            int    `json:"vocab_size"`
	Context          int    `json:"max_positions"`
	SlidingWindow    int    `json:"sliding_window,omitempty"`
	TiedEmbeddings   bool   `json:"tied_embeddings"`
	Parameters       int64  `json:"parameters"`
	WeightBytes      int64  `json:"weight_bytes"`
	ComputeBytes     int64  `json:"compute_weight_bytes_f32"`
	KVBytesPerToken  int64  `json:"kv_cache_bytes_per_token"`
	KVBytesFullCtx   int64  `json:"kv_cache_bytes_full_context"`
	MemoryNeededFull int64  `json:"memory_needed_bytes_batch1_full_context"`
	// Backend is the --backend report, when one was asked for.
	Backend *backendReport `json:"backend,omitempty"`
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
		engine.SetPJRTPlugin(plugin)
		defer engine.SetPJRTPlugin("")
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

func runInfo(args []string) error {
	fs := newFlags("info", "--model M | --backend B [--pjrt-plugin PATH] [--json]",
		"tether info --model .tether/stories260K   (after tether demo)\n  tether info --backend xla:cuda")
	ref := fs.String("model", "", "model directory or Hugging Face id (org/name, resolved offline)")
	backendName := fs.String("backend", "", "open this backend (go, xla:cuda, xla:cpu, xla:/path/plugin.so) and print a one-line report: device, memory, PJRT plugin")
	pluginPath := fs.String("pjrt-plugin", "", "PJRT plugin file for an xla:<name> backend, instead of searching PJRT_PLUGIN_LIBRARY_PATH, go-xla's directories and Python jax_plugins")
	asJSON := fs.Bool("json", false, "print one JSON object")
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
	m, err := model.Open(*ref, model.Options{NoWeights: true, NoTokenizer: true})
	if err != nil {
		return err
	}
	defer m.Close()
	c := m.Config
	params := c.ParamCount()
	// The CPU backend computes in float32: every weight becomes 4 bytes.
	kvPerToken := int64(2 * c.NumLayers * c.NumKVHeads * c.HeadDim * 4)
	info := modelInfo{
		Model: m.Name, Dir: m.Dir, Architecture: c.Architecture, Family: string(c.Family),
		DType: c.TorchDType, Layers: c.NumLayers, Hidden: c.HiddenSize, Intermediate: c.IntermediateSize,
		Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim, Vocab: c.VocabSize,
		Context: c.MaxPositions, SlidingWindow: c.SlidingWindow, TiedEmbeddings: c.TieEmbeddings,
		Parameters: params, WeightBytes: m.WeightBytes, ComputeBytes: params * 4,
		KVBytesPerToken: kvPerToken, KVBytesFullCtx: kvPerToken * int64(c.MaxPositions),
	}
	info.MemoryNeededFull = info.ComputeBytes + info.KVBytesFullCtx
	info.Backend = backend
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
	fmt.Fprintf(&b, "weights        %s on disk, %s as float32 for the CPU backend\n", humanBytes(info.WeightBytes), humanBytes(info.ComputeBytes))
	fmt.Fprintf(&b, "KV cache       %s per token per sequence (f32), %s at full context\n", humanBytes(kvPerToken), humanBytes(info.KVBytesFullCtx))
	fmt.Fprintf(&b, "memory needed  %s for one sequence at full context on the CPU backend\n", humanBytes(info.MemoryNeededFull))
	fmt.Print(b.String())
	return nil
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
