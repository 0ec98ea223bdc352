package engine

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"

	"tether/engine/pjrt"
	"tether/internal/cpubackend"
)

// DefaultGoBackendConfig is the simplego configuration used for the "go"
// backend: simplego's own choice of dot-product algorithm per product. The
// engine cuts projection weights into blocks of at most 4096 rows (see
// Model.splitFor), so decoding products (up to 16 sequences) take the
// "small" path that suits matrix-vector work, as "dotgeneral_small" would
// force, while prefill products take the "large" path, which is about twice
// as fast there.
const DefaultGoBackendConfig = ""

// BackendNames lists the backend names NewBackend accepts.
var BackendNames = []string{"cpu", "cpu:workers=<n>", "go", "go:<simplego options>", "xla:cuda", "xla:cpu", "xla:/path/to/pjrt_c_api_<name>_plugin.so"}

// NewBackend returns the compute backend called name:
//
//   - "" (the default) or "cpu", or "cpu:workers=N": tether's own CPU
//     backend (package internal/cpubackend): SIMD kernels on a worker pool,
//     16-bit weights kept 16-bit, the KV cache updated in place; see
//     docs/cpu-backend.md.
//   - "go": GoMLX's pure-Go simplego backend with DefaultGoBackendConfig,
//     kept as a second, independent implementation for tests.
//   - "go:<options>": simplego with explicit options, e.g.
//     "go:dotgeneral_small,parallelism=4" (see simplego.New).
//   - "xla:cuda", "xla:cpu" or "xla:<absolute plugin path>", optionally
//     followed by ",<options>" (GoMLX's shared_buffers and tf32; the PJRT
//     client options memory_fraction=F and preallocate=true|false): the XLA
//     backend with a PJRT plugin found locally by pjrt.FindPlugin
//     (pjrt.SetPlugin names the file explicitly). Plugins are never downloaded. For CUDA plugins the NVIDIA
//     libraries installed beside them by pip are set up first (see
//     pjrt.CUDASetupFor). XLA is only available in builds with cgo.
func NewBackend(name string) (backends.Backend, error) {
	kind, config, _ := strings.Cut(name, ":")
	switch kind {
	case "go":
		if config == "" {
			config = DefaultGoBackendConfig
		}
		b, err := simplego.New(config)
		if err != nil {
			return nil, fmt.Errorf("engine: backend %q: %w", name, err)
		}
		return b, nil
	case "", cpubackend.BackendName:
		b, err := cpubackend.New(config)
		if err != nil {
			return nil, fmt.Errorf("engine: backend %q: %w", name, err)
		}
		return b, nil
	case "xla":
		if config == "" {
			return nil, fmt.Errorf("engine: backend %q: name the PJRT plugin, e.g. \"xla:cuda\" or \"xla:cpu\"", name)
		}
		b, err := pjrt.Open(config, &pjrt.Info{})
		if err != nil {
			return nil, fmt.Errorf("engine: %w", err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("engine: unknown backend %q: valid backends are %s", name, strings.Join(BackendNames, ", "))
	}
}

// OpenBackend is NewBackend that also describes what it opened: the device,
// its total and free memory (from nvidia-smi for CUDA plugins, read before
// the backend opened) and the PJRT plugin used.
func OpenBackend(name string) (backends.Backend, pjrt.Info, error) {
	info := pjrt.Info{Name: name}
	kind, config, _ := strings.Cut(name, ":")
	var b backends.Backend
	var err error
	var gpus []pjrt.GPUInfo
	if kind == "xla" && config != "" {
		// Before opening: XLA's GPU client reserves most of the memory
		// when it starts, so free memory read afterwards means little.
		gpus, _ = pjrt.QueryNvidiaSMI()
		if b, err = pjrt.Open(config, &info); err != nil {
			err = fmt.Errorf("engine: %w", err)
		}
	} else {
		b, err = NewBackend(name)
	}
	if err != nil {
		return nil, info, err
	}
	info.Devices = b.NumDevices()
	switch {
	case info.Plugin.Path == "":
		info.DeviceName = fmt.Sprintf("%s on %d CPU cores", b.Description(), runtime.NumCPU())
	case info.Devices > 0:
		info.DeviceName = b.DeviceDescription(0)
	}
	if info.Plugin.Path != "" && pjrt.IsCUDAPlugin(info.Plugin.Path) {
		info.GPUs = gpus
	}
	return b, info, nil
}
