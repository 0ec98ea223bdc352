package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"tether/engine"
)

// isolatePluginSearch points every PJRT plugin search rule at an empty
// directory, and skips when a CUDA plugin is installed system-wide anyway.
func isolatePluginSearch(t *testing.T) string {
	t.Helper()
	empty := t.TempDir()
	for _, k := range []string{"HOME", "PATH", engine.PJRTPluginPathEnv} {
		t.Setenv(k, empty)
	}
	for _, k := range []string{"LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX"} {
		t.Setenv(k, "")
	}
	t.Chdir(empty)
	if loc, err := engine.FindPJRTPlugin("cuda"); err == nil {
		t.Skipf("a CUDA plugin is installed system-wide (%s): the not-found path cannot be reached", loc.Path)
	}
	return empty
}

func TestInfoBackendCUDANotFound(t *testing.T) {
	empty := isolatePluginSearch(t)
	out, err := captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "xla:cuda"}) })
	if err == nil {
		t.Fatalf("expected the not-found error, got output %q", out)
	}
	if strings.Contains(err.Error(), "without cgo") {
		return // a CGO_ENABLED=0 build says so instead
	}
	for _, want := range []string{
		`no PJRT plugin "cuda" found`, "never downloaded",
		filepath.Join(empty, "pjrt_c_api_cuda_plugin.so"),                            // PJRT_PLUGIN_LIBRARY_PATH
		filepath.Join(empty, ".local", "lib", "go-xla", "pjrt_c_api_cuda_plugin.so"), // go-xla under HOME
		"pip install", "--pjrt-plugin",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestInfoBackendFlags(t *testing.T) {
	empty := isolatePluginSearch(t)
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"info", "--pjrt-plugin", "/x/plugin.so"}, "needs --backend xla:"},
		{[]string{"info", "--backend", "go", "--pjrt-plugin", "/x/plugin.so"}, "needs --backend xla:"},
		{[]string{"info", "--backend", "xla:cuda", "--pjrt-plugin", filepath.Join(empty, "missing.so")}, "missing.so"},
		{[]string{"info", "--backend", "tpu"}, "unknown backend"},
		{[]string{"info"}, "--model"},
	} {
		_, err := captureStdout(t, func() error { return dispatch(tc.args) })
		if err != nil && strings.Contains(err.Error(), "without cgo") && tc.wantErr == "missing.so" {
			continue // a CGO_ENABLED=0 build refuses xla:... before looking at the file
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.wantErr)
		}
	}
	if engine.PJRTPlugin() != "" {
		t.Errorf("--pjrt-plugin left the engine's plugin set to %q", engine.PJRTPlugin())
	}
}

func TestInfoBackendGo(t *testing.T) {
	out, err := captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "go"}) })
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "go: ") || !strings.Contains(lines[0], "1 device(s)") {
		t.Errorf("want a one-line report, got %q", out)
	}
	out, err = captureStdout(t, func() error { return dispatch([]string{"info", "--backend", "go", "--json"}) })
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]backendReport
	if err := json.Unmarshal([]byte(out), &got); err != nil || got["backend"].Backend != "go" || got["backend"].Devices != 1 {
		t.Errorf("JSON %q: %+v, %v", out, got, err)
	}
}
