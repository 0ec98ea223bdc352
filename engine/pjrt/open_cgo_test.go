//go:build cgo

package pjrt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenBadPluginFile checks that a plugin file that is not a shared
// library fails with an error naming the file and how it was found, after the
// CUDA set-up ran: XLA_FLAGS gets the data dir, the fake NVIDIA library fails
// to load and is reported, a real library (the C math library standing in for
// libcudart) loads.
func TestOpenBadPluginFile(t *testing.T) {
	libm := ""
	for _, p := range []string{"/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6", "/usr/lib64/libm.so.6", "/lib/aarch64-linux-gnu/libm.so.6"} {
		if _, err := os.Stat(p); err == nil {
			libm = p
			break
		}
	}
	isolatePluginSearch(t)
	t.Setenv(XLAFlagsEnv, "")
	t.Setenv("GOPJRT_CUDA_CHECKS", "")
	os.Unsetenv("GOPJRT_CUDA_CHECKS")
	root := t.TempDir()
	plugin := touch(t, root, "sp/jax_plugins/xla_cuda13/xla_cuda_plugin.so")
	touch(t, root, "sp/nvidia/cu13/bin/ptxas")
	touch(t, root, "sp/nvidia/cu13/lib/libcublasLt.so.13") // not ELF: fails to load
	if libm != "" {
		if err := os.MkdirAll(filepath.Join(root, "sp/nvidia/cu13/lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(libm, filepath.Join(root, "sp/nvidia/cu13/lib/libcudart.so.13")); err != nil {
			t.Fatal(err)
		}
	}
	SetPlugin(plugin)
	t.Cleanup(func() { SetPlugin("") })
	var info Info
	_, err := Open("cuda", &info)
	if err == nil {
		t.Fatal("a text file opened as a PJRT plugin")
	}
	for _, want := range []string{plugin, PluginSourceExplicit, "libcublasLt.so.13"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got, want := os.Getenv(XLAFlagsEnv), "--xla_gpu_cuda_data_dir="+filepath.Join(root, "sp/nvidia/cu13"); got != want {
		t.Errorf("XLA_FLAGS = %q, want %q", got, want)
	}
	if os.Getenv("GOPJRT_CUDA_CHECKS") != "0" {
		t.Errorf("GOPJRT_CUDA_CHECKS = %q, want 0", os.Getenv("GOPJRT_CUDA_CHECKS"))
	}
	if len(info.LibraryErrors) != 1 || !strings.Contains(info.LibraryErrors[0], "libcublasLt.so.13") {
		t.Errorf("library errors %q: want exactly the fake libcublasLt", info.LibraryErrors)
	}
	if libm == "" {
		t.Log("no libm.so.6 found: the successful dlopen was not exercised")
	}
}
