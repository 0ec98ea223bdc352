package pjrt

import (
	"os"
	"path/filepath"
	"strings"
)

// XLAFlagsEnv is the environment variable XLA reads its flags from.
const XLAFlagsEnv = "XLA_FLAGS"

// cudaDataDirFlag is the XLA flag naming the CUDA toolkit directory where XLA
// looks for ptxas (bin/ptxas) and libdevice (nvvm/libdevice).
const cudaDataDirFlag = "--xla_gpu_cuda_data_dir"

// CUDASetup is what the engine prepares, inside the process, before it loads
// a CUDA PJRT plugin that came from pip (JAX's jax_plugins/xla_cuda1x or a
// go-xla install with an nvidia/ directory beside it).
type CUDASetup struct {
	// NVIDIADir is the pip "nvidia" package directory found beside the
	// plugin (site-packages/nvidia); "" when none was found, in which case
	// the plugin relies on the system's CUDA libraries.
	NVIDIADir string
	// DataDir is given to XLA as --xla_gpu_cuda_data_dir (added to
	// $XLA_FLAGS unless that already names one): the directory holding
	// bin/ptxas or nvvm/libdevice, nvidia/cu13 for CUDA 13 wheels or
	// nvidia/cuda_nvcc for CUDA 12 wheels. "" when none exists.
	DataDir string
	// Libraries are the NVIDIA shared libraries, by absolute path, that are
	// loaded (dlopen) before the plugin, in this order, so that the
	// plugin's own lookups by file name find them already in the process:
	// LD_LIBRARY_PATH cannot be changed for a running process.
	Libraries []string
}

// nvidiaLibraries lists, in load order, the pip package directories under
// nvidia/ and the shared libraries (by soname) the CUDA PJRT plugin needs.
// CUDA 12 wheels install one package per library (nvidia/cublas/lib/...);
// CUDA 13 wheels install them together under nvidia/cu13/lib. This is the
// same set and order JAX's own CUDA plugin loader uses.
var nvidiaLibraries = []struct {
	pkg   string
	names []string
}{
	{"cuda_runtime", []string{"libcudart.so.12"}},
	{"cu13", []string{"libcudart.so.13"}},
	{"cuda_nvrtc", []string{"libnvrtc.so.12"}},
	{"cu13", []string{"libnvrtc.so.13"}},
	{"nvjitlink", []string{"libnvJitLink.so.12"}},
	{"cu13", []string{"libnvJitLink.so.13"}},
	{"cublas", []string{"libcublasLt.so.12", "libcublas.so.12"}},
	{"cu13", []string{"libcublasLt.so.13", "libcublas.so.13"}},
	{"nccl", []string{"libnccl.so.2"}},
	{"cuda_cupti", []string{"libcupti.so.12"}},
	{"cu13", []string{"libcupti.so.13"}},
	{"cusparse", []string{"libcusparse.so.12"}},
	{"cu13", []string{"libcusparse.so.12"}},
	{"cusolver", []string{"libcusolver.so.11"}},
	{"cu13", []string{"libcusolver.so.12"}},
	{"cufft", []string{"libcufft.so.11"}},
	{"cu13", []string{"libcufft.so.12"}},
	{"nvshmem", []string{"libnvshmem_host.so.3"}},
	{"cudnn", []string{"libcudnn.so.9"}},
}

// IsCUDAPlugin reports whether the plugin file at path is a CUDA plugin (its
// name mentions cuda), the only kind CUDASetupFor prepares for.
func IsCUDAPlugin(path string) bool {
	return strings.Contains(strings.ToLower(filepath.Base(path)), "cuda") ||
		strings.Contains(strings.ToLower(filepath.Base(filepath.Dir(path))), "cuda")
}

// CUDASetupFor finds the pip NVIDIA libraries and CUDA data directory that go
// with the CUDA plugin at pluginPath. The nvidia/ directory is looked for
// where the plugins' own RPATH expects it, relative to the plugin file:
// ../../nvidia (JAX: site-packages/jax_plugins/xla_cuda13/<plugin>),
// ../nvidia, and ./nvidia (go-xla: ~/.local/lib/go-xla/nvidia).
func CUDASetupFor(pluginPath string) CUDASetup {
	dir := filepath.Dir(pluginPath)
	var setup CUDASetup
	for _, cand := range []string{
		filepath.Join(dir, "..", "..", "nvidia"),
		filepath.Join(dir, "..", "nvidia"),
		filepath.Join(dir, "nvidia"),
	} {
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			setup.NVIDIADir = filepath.Clean(cand)
			break
		}
	}
	if setup.NVIDIADir == "" {
		return setup
	}
	for _, d := range []string{"cu13", "cuda_nvcc"} {
		root := filepath.Join(setup.NVIDIADir, d)
		if exists(filepath.Join(root, "bin", "ptxas")) || exists(filepath.Join(root, "nvvm", "libdevice")) {
			setup.DataDir = root
			break
		}
	}
	seen := map[string]bool{}
	for _, l := range nvidiaLibraries {
		for _, name := range l.names {
			p := filepath.Join(setup.NVIDIADir, l.pkg, "lib", name)
			if !seen[p] && exists(p) {
				seen[p] = true
				setup.Libraries = append(setup.Libraries, p)
			}
		}
	}
	return setup
}

// exists reports whether path names an existing file or directory.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// xlaFlagsWithDataDir returns the value $XLA_FLAGS should have so that XLA
// finds the CUDA data directory dataDir: flags unchanged when it already sets
// --xla_gpu_cuda_data_dir (the user's choice wins) or dataDir is "", else
// flags with the flag appended.
func xlaFlagsWithDataDir(flags, dataDir string) string {
	if dataDir == "" || strings.Contains(flags, cudaDataDirFlag) {
		return flags
	}
	f := cudaDataDirFlag + "=" + dataDir
	if strings.TrimSpace(flags) == "" {
		return f
	}
	return flags + " " + f
}
