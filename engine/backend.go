package engine

import (
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
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
var BackendNames = []string{"go", "go:<simplego options>", "xla:cuda", "xla:cpu", "xla:/path/to/pjrt_c_api_<name>_plugin.so"}

// NewBackend returns the compute backend called name:
//
//   - "" or "go": the pure-Go simplego backend with DefaultGoBackendConfig.
//   - "go:<options>": simplego with explicit options, e.g.
//     "go:dotgeneral_small,parallelism=4" (see simplego.New).
//   - "xla:cuda", "xla:cpu" or "xla:<absolute plugin path>": the XLA backend with
//     a PJRT plugin found locally. Plugins are never downloaded: they are
//     searched in $PJRT_PLUGIN_LIBRARY_PATH (a ":" separated list),
//     ~/.local/lib/go-xla, /usr/local/lib/go-xla and $LD_LIBRARY_PATH. XLA is
//     only available in builds with cgo.
func NewBackend(name string) (backends.Backend, error) {
	kind, config, _ := strings.Cut(name, ":")
	switch kind {
	case "", "go":
		if config == "" {
			config = DefaultGoBackendConfig
		}
		b, err := simplego.New(config)
		if err != nil {
			return nil, fmt.Errorf("engine: backend %q: %w", name, err)
		}
		return b, nil
	case "xla":
		if config == "" {
			return nil, fmt.Errorf("engine: backend %q: name the PJRT plugin, e.g. \"xla:cuda\" or \"xla:cpu\"", name)
		}
		return newXLABackend(config)
	default:
		return nil, fmt.Errorf("engine: unknown backend %q: valid backends are %s", name, strings.Join(BackendNames, ", "))
	}
}

// pluginSearchDirs returns the directories searched for PJRT plugins, in
// order: $PJRT_PLUGIN_LIBRARY_PATH, ~/.local/lib/go-xla,
// /usr/local/lib/go-xla, then $LD_LIBRARY_PATH.
func pluginSearchDirs() []string {
	var dirs []string
	add := func(list string) {
		for _, d := range strings.Split(list, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
	}
	add(os.Getenv("PJRT_PLUGIN_LIBRARY_PATH"))
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, home+"/.local/lib/go-xla")
	}
	dirs = append(dirs, "/usr/local/lib/go-xla")
	add(os.Getenv("LD_LIBRARY_PATH"))
	return dirs
}

// pluginFileNames returns the file names a PJRT plugin called name may have.
func pluginFileNames(name string) []string {
	return []string{
		"pjrt_c_api_" + name + "_plugin.so",
		"pjrt-plugin-" + name + ".so",
		"pjrt_plugin_" + name + ".so",
	}
}

// findPJRTPlugin returns the path of the PJRT plugin called name (an absolute
// path is returned as is when the file exists), or an error listing every
// place searched.
func findPJRTPlugin(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", fmt.Errorf("engine: PJRT plugin %s: %w", name, err)
		}
		return name, nil
	}
	var tried []string
	for _, dir := range pluginSearchDirs() {
		for _, file := range pluginFileNames(name) {
			p := strings.TrimRight(dir, "/") + "/" + file
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
			tried = append(tried, p)
		}
	}
	return "", fmt.Errorf("engine: no PJRT plugin %q found (never downloaded automatically); searched: %s; "+
		"set PJRT_PLUGIN_LIBRARY_PATH to the directory holding pjrt_c_api_%s_plugin.so or pass \"xla:/absolute/path.so\"",
		name, strings.Join(tried, ", "), name)
}
