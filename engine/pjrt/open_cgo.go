//go:build cgo

package pjrt

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>

// tether_dlopen_local loads a shared library with RTLD_NOW|RTLD_LOCAL and
// returns NULL on failure (the message is in dlerror()).
static void *tether_dlopen_local(const char *path) {
	return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

static const char *tether_dlerror(void) {
	const char *e = dlerror();
	return e ? e : "unknown dlopen error";
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	xlapjrt "github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

func init() {
	// Never download PJRT plugins: the engine runs offline. (go-xla only
	// auto-installs for plugin names, and the engine always passes an
	// absolute path; this switch covers every other entry point.)
	xla.EnableAutoInstall(false)
}

// Open opens the XLA backend with the PJRT plugin named by config ("cuda",
// "cpu", or an absolute path, optionally followed by ",options";
// memory_fraction=F and preallocate=B become PJRT client options, see
// splitClientOptions, the rest go to GoMLX), filling info with the plugin
// found (FindPlugin) and the CUDA set-up done (CUDASetupFor). Plugins are
// never downloaded.
func Open(config string, info *Info) (backends.Backend, error) {
	xla.EnableAutoInstall(false)
	plugin, opts, _ := strings.Cut(config, ",")
	if opts != "" {
		opts = "," + opts
	}
	loc, err := FindPlugin(plugin)
	if err != nil {
		return nil, err
	}
	info.Plugin = loc
	if IsCUDAPlugin(loc.Path) {
		info.CUDA, info.LibraryErrors = prepareCUDA(loc.Path)
	}
	opts, clientOpts, err := splitClientOptions(opts)
	if err != nil {
		return nil, err
	}
	if plugin == "cpu" {
		// Keep the shared-buffer optimisation the plugin name "cpu" enables.
		opts = ",shared_buffers" + opts
	}
	b, err := xla.NewWithOptions(loc.Path+opts, xlapjrt.NamedValuesMap(clientOpts))
	if err != nil {
		err = fmt.Errorf("pjrt: backend \"xla:%s\" with plugin %s (found via %s): %w", config, loc.Path, loc.Source, err)
		if len(info.LibraryErrors) > 0 {
			err = fmt.Errorf("%w; NVIDIA libraries that failed to load: %s", err, strings.Join(info.LibraryErrors, "; "))
		}
		return nil, err
	}
	return b, nil
}

var (
	cudaPrepared   sync.Mutex
	cudaLoadedLibs = map[string]bool{}
)

// prepareCUDA does, in this process, what a CUDA plugin from pip needs
// (CUDASetupFor finds the pieces):
//
//   - $XLA_FLAGS gets --xla_gpu_cuda_data_dir=<nvidia/cu13 or nvidia/cuda_nvcc>
//     unless it already names one, so XLA finds ptxas and libdevice;
//   - $GOPJRT_CUDA_CHECKS is set to 0 when unset: go-xla's own check only
//     knows its own layout and prints a misleading warning for JAX's, and in
//     go-xla v0.1.4 it sets a CUDA data dir hard-coded to its author's home
//     directory;
//   - every NVIDIA library found is loaded with dlopen before the plugin, so
//     the plugin's lookups by soname find the loaded copy.
//
// It returns the set-up and the libraries that failed to load.
func prepareCUDA(pluginPath string) (CUDASetup, []string) {
	cudaPrepared.Lock()
	defer cudaPrepared.Unlock()
	if _, set := os.LookupEnv("GOPJRT_CUDA_CHECKS"); !set {
		_ = os.Setenv("GOPJRT_CUDA_CHECKS", "0")
	}
	setup := CUDASetupFor(pluginPath)
	if setup.NVIDIADir == "" {
		return setup, nil
	}
	if flags := xlaFlagsWithDataDir(os.Getenv(XLAFlagsEnv), setup.DataDir); flags != os.Getenv(XLAFlagsEnv) {
		_ = os.Setenv(XLAFlagsEnv, flags)
	}
	var failed []string
	for _, lib := range setup.Libraries {
		if cudaLoadedLibs[lib] {
			continue
		}
		if err := dlopenLocal(lib); err != nil {
			failed = append(failed, err.Error())
			continue
		}
		cudaLoadedLibs[lib] = true
	}
	return setup, failed
}

// dlopenLocal loads the shared library at path into the process (never
// unloaded), so later lookups of its soname find it.
func dlopenLocal(path string) error {
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	if h := C.tether_dlopen_local(cPath); h == nil {
		return fmt.Errorf("%s: %s", path, C.GoString(C.tether_dlerror()))
	}
	return nil
}
