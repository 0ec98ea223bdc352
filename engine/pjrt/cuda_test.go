package pjrt

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCUDASetupFor(t *testing.T) {
	for _, tc := range []struct {
		name     string
		files    []string // created under the temp root
		plugin   string
		wantNV   string // relative to root; "" = none
		wantData string
		wantLibs []string
	}{
		{
			name: "JAX CUDA 13 wheels",
			files: []string{
				"sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so",
				"sp/nvidia/cu13/bin/ptxas",
				"sp/nvidia/cu13/lib/libcublas.so.13", "sp/nvidia/cu13/lib/libcublasLt.so.13",
				"sp/nvidia/cu13/lib/libcudart.so.13", "sp/nvidia/cudnn/lib/libcudnn.so.9",
				"sp/nvidia/cu13/lib/libunrelated.so.1",
			},
			plugin: "sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so", wantNV: "sp/nvidia", wantData: "sp/nvidia/cu13",
			// runtime first, cublasLt before cublas (cublas needs it), cudnn last
			wantLibs: []string{"sp/nvidia/cu13/lib/libcudart.so.13", "sp/nvidia/cu13/lib/libcublasLt.so.13",
				"sp/nvidia/cu13/lib/libcublas.so.13", "sp/nvidia/cudnn/lib/libcudnn.so.9"},
		},
		{
			name: "JAX CUDA 12 wheels",
			files: []string{
				"sp/jax_plugins/xla_cuda12/xla_cuda_plugin.so",
				"sp/nvidia/cuda_nvcc/nvvm/libdevice/libdevice.10.bc",
				"sp/nvidia/cuda_runtime/lib/libcudart.so.12", "sp/nvidia/nccl/lib/libnccl.so.2",
			},
			plugin: "sp/jax_plugins/xla_cuda12/xla_cuda_plugin.so", wantNV: "sp/nvidia", wantData: "sp/nvidia/cuda_nvcc",
			wantLibs: []string{"sp/nvidia/cuda_runtime/lib/libcudart.so.12", "sp/nvidia/nccl/lib/libnccl.so.2"},
		},
		{
			name:   "go-xla layout, no nvcc",
			files:  []string{"go-xla/pjrt_c_api_cuda_plugin.so", "go-xla/nvidia/cufft/lib/libcufft.so.11"},
			plugin: "go-xla/pjrt_c_api_cuda_plugin.so", wantNV: "go-xla/nvidia", wantData: "",
			wantLibs: []string{"go-xla/nvidia/cufft/lib/libcufft.so.11"},
		},
		{
			name:   "system CUDA: nothing beside the plugin",
			files:  []string{"opt/pjrt_c_api_cuda_plugin.so"},
			plugin: "opt/pjrt_c_api_cuda_plugin.so",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.files {
				touch(t, root, f)
			}
			abs := func(rel string) string {
				if rel == "" {
					return ""
				}
				return filepath.Join(root, rel)
			}
			got := CUDASetupFor(abs(tc.plugin))
			if got.NVIDIADir != abs(tc.wantNV) || got.DataDir != abs(tc.wantData) {
				t.Errorf("nvidia dir %q data dir %q, want %q %q", got.NVIDIADir, got.DataDir, abs(tc.wantNV), abs(tc.wantData))
			}
			var want []string
			for _, l := range tc.wantLibs {
				want = append(want, abs(l))
			}
			if !slices.Equal(got.Libraries, want) {
				t.Errorf("libraries %q, want %q", got.Libraries, want)
			}
		})
	}
}

func TestXLAFlagsWithDataDir(t *testing.T) {
	for _, tc := range []struct{ flags, dir, want string }{
		{"", "/sp/nvidia/cu13", "--xla_gpu_cuda_data_dir=/sp/nvidia/cu13"},
		{"--xla_dump_to=/tmp/x", "/d", "--xla_dump_to=/tmp/x --xla_gpu_cuda_data_dir=/d"},
		{"--xla_gpu_cuda_data_dir=/mine", "/d", "--xla_gpu_cuda_data_dir=/mine"}, // the user's choice wins
		{"--xla_dump_to=/tmp/x", "", "--xla_dump_to=/tmp/x"},
	} {
		if got := xlaFlagsWithDataDir(tc.flags, tc.dir); got != tc.want {
			t.Errorf("xlaFlagsWithDataDir(%q, %q) = %q, want %q", tc.flags, tc.dir, got, tc.want)
		}
	}
}

func TestIsCUDAPlugin(t *testing.T) {
	for path, want := range map[string]bool{
		"/sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so": true,
		"/x/pjrt_c_api_cuda_plugin.so":                  true,
		"/x/pjrt_c_api_cpu_plugin.so":                   false,
	} {
		if got := IsCUDAPlugin(path); got != want {
			t.Errorf("IsCUDAPlugin(%q) = %v", path, got)
		}
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	// The format of `nvidia-smi --query-gpu=name,memory.total,memory.free --format=csv,noheader,nounits`.
	gpus, err := parseNvidiaSMI("NVIDIA H100 80GB HBM3, 81559, 81004\nNVIDIA H100 80GB HBM3, 81559, 1024\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []GPUInfo{{"NVIDIA H100 80GB HBM3", 81559 << 20, 81004 << 20}, {"NVIDIA H100 80GB HBM3", 81559 << 20, 1024 << 20}}
	if !slices.Equal(gpus, want) {
		t.Errorf("got %+v, want %+v", gpus, want)
	}
	for _, bad := range []string{"NVIDIA H100, 80 GiB, 1", "just a name"} {
		if _, err := parseNvidiaSMI(bad); err == nil {
			t.Errorf("parseNvidiaSMI(%q): expected an error", bad)
		}
	}
}

func TestQueryNvidiaSMIRunsTheToolOnPath(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = \"--query-gpu=name,memory.total,memory.free\" ] || exit 3\necho 'NVIDIA A100-SXM4-80GB, 81920, 40960'\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	gpus, err := QueryNvidiaSMI()
	if err != nil || len(gpus) != 1 || gpus[0].MemoryTotal != 80<<30 || gpus[0].MemoryFree != 40<<30 {
		t.Errorf("QueryNvidiaSMI: %+v, %v", gpus, err)
	}
	line := Info{Name: "xla:cuda", Devices: 1, GPUs: gpus, Plugin: PluginLocation{Path: "/sp/p.so", Source: PluginSourcePython}}.String()
	for _, want := range []string{"xla:cuda", "NVIDIA A100-SXM4-80GB", "80.0 GiB memory (40.0 GiB free)", "1 device(s)", "/sp/p.so"} {
		if !strings.Contains(line, want) {
			t.Errorf("report %q lacks %q", line, want)
		}
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := QueryNvidiaSMI(); err == nil {
		t.Error("no nvidia-smi on PATH: expected an error")
	}
}

func TestOpenCUDANotFound(t *testing.T) {
	isolatePluginSearch(t)
	if loc, err := FindPlugin("cuda"); err == nil {
		t.Skipf("a CUDA plugin is installed system-wide (%s): the not-found path cannot be reached", loc.Path)
	}
	_, err := Open("cuda", &Info{})
	if err == nil {
		t.Fatal("expected an error: no plugin anywhere")
	}
	if !strings.Contains(err.Error(), "without cgo") &&
		!(strings.Contains(err.Error(), "pjrt_c_api_cuda_plugin.so") && strings.Contains(err.Error(), "jax_plugins/xla_cuda13")) {
		t.Errorf("error %v: want one naming the searched places", err)
	}
}

// isolatePluginSearch points every search rule at empty directories.
func isolatePluginSearch(t *testing.T) {
	t.Helper()
	empty := t.TempDir()
	t.Setenv("HOME", empty)
	t.Setenv("PATH", empty)
	t.Setenv(PluginPathEnv, empty)
	t.Setenv("LD_LIBRARY_PATH", "")
	t.Setenv("VIRTUAL_ENV", "")
	t.Setenv("CONDA_PREFIX", "")
	t.Chdir(empty)
	SetPlugin("")
}
