package pjrt

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Info describes an opened backend (engine.OpenBackend), for a one-line report.
type Info struct {
	// Name is the backend name as given ("go", "xla:cuda", ...).
	Name string
	// Devices is the number of devices the backend addresses.
	Devices int
	// DeviceName is the first device's description from the backend.
	DeviceName string
	// GPUs are the NVIDIA GPUs nvidia-smi reports for CUDA backends, read
	// just before the backend opened; nil when nvidia-smi is missing or fails.
	GPUs []GPUInfo
	// Plugin is the PJRT plugin used by an XLA backend (zero for "go").
	Plugin PluginLocation
	// CUDA is what was prepared for a CUDA plugin (zero otherwise).
	CUDA CUDASetup
	// LibraryErrors are the NVIDIA libraries of CUDA.Libraries that failed
	// to load, each with the loader's message.
	LibraryErrors []string
}

// GPUInfo is one GPU as nvidia-smi reports it.
type GPUInfo struct {
	// Name is the product name, e.g. "NVIDIA H100 80GB HBM3".
	Name string
	// MemoryTotal and MemoryFree are in bytes.
	MemoryTotal, MemoryFree int64
}

// String is the one-line report: backend, device name and memory, device
// count and plugin path.
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Name + ": ")
	if len(i.GPUs) > 0 {
		g := i.GPUs[0]
		fmt.Fprintf(&b, "%s, %.1f GiB memory (%.1f GiB free)", g.Name, gib(g.MemoryTotal), gib(g.MemoryFree))
	} else {
		name := i.DeviceName
		if name == "" {
			name = "unknown device"
		}
		b.WriteString(name + ", memory unknown")
	}
	fmt.Fprintf(&b, ", %d device(s)", i.Devices)
	if i.Plugin.Path != "" {
		fmt.Fprintf(&b, ", plugin %s (found via %s)", i.Plugin.Path, i.Plugin.Source)
	}
	if i.CUDA.NVIDIADir != "" {
		fmt.Fprintf(&b, ", NVIDIA libraries %s (%d loaded", i.CUDA.NVIDIADir, len(i.CUDA.Libraries)-len(i.LibraryErrors))
		if len(i.LibraryErrors) > 0 {
			fmt.Fprintf(&b, ", %d failed: %s", len(i.LibraryErrors), strings.Join(i.LibraryErrors, "; "))
		}
		b.WriteString(")")
	}
	return b.String()
}

// gib converts bytes to GiB.
func gib(n int64) float64 { return float64(n) / (1 << 30) }

// QueryNvidiaSMI asks nvidia-smi (on $PATH) for every GPU's name, total and
// free memory.
func QueryNvidiaSMI() ([]GPUInfo, error) {
	exe, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil, fmt.Errorf("pjrt: nvidia-smi: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil, fmt.Errorf("pjrt: %s --query-gpu: %w", exe, err)
	}
	return parseNvidiaSMI(string(out))
}

// parseNvidiaSMI parses nvidia-smi's "name, total MiB, free MiB" CSV lines.
func parseNvidiaSMI(out string) ([]GPUInfo, error) {
	var gpus []GPUInfo
	for n, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 3 {
			return nil, fmt.Errorf("pjrt: nvidia-smi line %d %q: expected 3 comma-separated fields (name, memory.total, memory.free)", n+1, line)
		}
		total, err1 := strconv.ParseInt(strings.TrimSpace(f[1]), 10, 64)
		free, err2 := strconv.ParseInt(strings.TrimSpace(f[2]), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("pjrt: nvidia-smi line %d %q: memory fields are not whole MiB", n+1, line)
		}
		gpus = append(gpus, GPUInfo{Name: strings.TrimSpace(f[0]), MemoryTotal: total << 20, MemoryFree: free << 20})
	}
	return gpus, nil
}
