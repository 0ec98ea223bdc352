package pjrt

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// PluginPathEnv is the environment variable holding a ":" separated list
// of directories searched for PJRT plugins (the variable go-xla also reads).
const PluginPathEnv = "PJRT_PLUGIN_LIBRARY_PATH"

// Where a PJRT plugin was found; PluginLocation.Source holds one of these.
const (
	PluginSourceExplicit = "--pjrt-plugin"
	PluginSourceEnv      = PluginPathEnv
	PluginSourceGoXLA    = "go-xla install directory"
	PluginSourcePython   = "python jax_plugins"
	PluginSourceLDPath   = "LD_LIBRARY_PATH"
)

var (
	pjrtPluginMu       sync.Mutex
	explicitPJRTPlugin string
)

// SetPlugin makes every later "xla:<name>" backend (NewBackend) use the
// PJRT plugin file at path instead of searching for one; "" restores the
// search. It is what the `--pjrt-plugin PATH` flag sets. The file is checked
// when the backend is opened, not here.
func SetPlugin(path string) {
	pjrtPluginMu.Lock()
	defer pjrtPluginMu.Unlock()
	explicitPJRTPlugin = path
}

// PJRTPlugin returns the plugin path set by SetPlugin ("" when unset).
func ExplicitPlugin() string {
	pjrtPluginMu.Lock()
	defer pjrtPluginMu.Unlock()
	return explicitPJRTPlugin
}

// PluginLocation is a PJRT plugin file found by FindPlugin.
type PluginLocation struct {
	// Path is the plugin's absolute file path.
	Path string
	// Source says which search rule found it (one of the PluginSource* constants).
	Source string
}

// pluginSearch holds everything the plugin search reads from the process, so
// tests can run it against fake directory trees.
type pluginSearch struct {
	explicit string                  // SetPlugin / --pjrt-plugin
	getenv   func(key string) string // os.Getenv
	home     string                  // user's home directory ("" if unknown)
	cwd      string                  // working directory ("" if unknown)
	roots    []string                // system prefixes: /usr/local/lib/go-xla and python prefixes live under these
}

// processPluginSearch returns the search for this process's environment.
func processPluginSearch() pluginSearch {
	home, _ := os.UserHomeDir()
	cwd, _ := os.Getwd()
	return pluginSearch{explicit: ExplicitPlugin(), getenv: os.Getenv, home: home, cwd: cwd, roots: []string{"/usr/local", "/usr"}}
}

// FindPlugin returns the PJRT plugin called name ("cuda", "cpu", ...) or,
// when name is an absolute path, that file. The search order is:
//
//  1. the path given to SetPlugin (the --pjrt-plugin flag), used alone;
//  2. the directories in $PJRT_PLUGIN_LIBRARY_PATH;
//  3. go-xla's install directories ~/.local/lib/go-xla and /usr/local/lib/go-xla;
//  4. for "cuda" only, a Python environment's JAX plugin
//     site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so (then xla_cuda12),
//     in the site-packages of $VIRTUAL_ENV, $CONDA_PREFIX, every python3 on
//     $PATH, ./.venv, ./venv, ~/.venv, ~/venv, pyenv versions, ~/.local,
//     /usr/local and /usr;
//  5. the directories in $LD_LIBRARY_PATH.
//
// In directories the file may be called pjrt_c_api_<name>_plugin.so,
// pjrt-plugin-<name>.so or pjrt_plugin_<name>.so. Nothing is ever
// downloaded. The error lists every place searched.
func FindPlugin(name string) (PluginLocation, error) {
	return processPluginSearch().find(name)
}

// find runs the search described at FindPlugin.
func (s pluginSearch) find(name string) (PluginLocation, error) {
	if s.explicit != "" {
		p, err := filepath.Abs(s.explicit)
		if err != nil {
			return PluginLocation{}, fmt.Errorf("pjrt: --pjrt-plugin %s: %w", s.explicit, err)
		}
		if err := checkPluginFile(p); err != nil {
			return PluginLocation{}, fmt.Errorf("pjrt: --pjrt-plugin %s: %w", s.explicit, err)
		}
		return PluginLocation{Path: p, Source: PluginSourceExplicit}, nil
	}
	if filepath.IsAbs(name) {
		if err := checkPluginFile(name); err != nil {
			return PluginLocation{}, fmt.Errorf("pjrt: PJRT plugin %s: %w", name, err)
		}
		return PluginLocation{Path: name, Source: "xla:<path>"}, nil
	}
	if name == "" || strings.ContainsAny(name, "/:") {
		return PluginLocation{}, fmt.Errorf("pjrt: PJRT plugin name %q: want a plain name such as \"cuda\" or an absolute path", name)
	}
	var tried []string
	for _, c := range s.candidates(name) {
		if checkPluginFile(c.Path) == nil {
			return c, nil
		}
		tried = append(tried, c.Path)
	}
	hint := fmt.Sprintf("set %s to the directory holding pjrt_c_api_%s_plugin.so, pass --pjrt-plugin /path/to/plugin.so, or use \"xla:/absolute/path.so\"", PluginPathEnv, name)
	if name == "cuda" {
		hint = "install JAX's CUDA plugin into a Python environment (pip install jax-cuda13-pjrt jax-cuda13-plugin, or pip install \"jax[cuda13]\"; the cuda12 variants work too) or " + hint
	}
	return PluginLocation{}, fmt.Errorf("pjrt: no PJRT plugin %q found (plugins are never downloaded); searched %d places: %s; %s",
		name, len(tried), strings.Join(tried, ", "), hint)
}

// checkPluginFile reports whether path is an existing regular file (or a
// link to one).
func checkPluginFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return fmt.Errorf("is a directory, expected a PJRT plugin .so file")
	}
	return nil
}

// candidates lists, in search order, every file the search looks at for the
// plugin called name.
func (s pluginSearch) candidates(name string) []PluginLocation {
	var out []PluginLocation
	inDirs := func(dirs []string, source string) {
		for _, dir := range dirs {
			for _, file := range pluginFileNames(name) {
				out = append(out, PluginLocation{Path: filepath.Join(dir, file), Source: source})
			}
		}
	}
	inDirs(splitPathList(s.getenv(PluginPathEnv)), PluginSourceEnv)
	var goXLA []string
	if s.home != "" {
		goXLA = append(goXLA, filepath.Join(s.home, ".local", "lib", "go-xla"))
	}
	for _, r := range s.roots {
		if r == "/usr/local" {
			goXLA = append(goXLA, filepath.Join(r, "lib", "go-xla"))
		}
	}
	inDirs(goXLA, PluginSourceGoXLA)
	if name == "cuda" {
		for _, sp := range s.sitePackages() {
			for _, v := range []string{"xla_cuda13", "xla_cuda12"} {
				out = append(out, PluginLocation{Path: filepath.Join(sp, "jax_plugins", v, "xla_cuda_plugin.so"), Source: PluginSourcePython})
			}
		}
	}
	inDirs(splitPathList(s.getenv("LD_LIBRARY_PATH")), PluginSourceLDPath)
	return out
}

// pluginFileNames returns the file names a PJRT plugin called name may have.
func pluginFileNames(name string) []string {
	return []string{
		"pjrt_c_api_" + name + "_plugin.so",
		"pjrt-plugin-" + name + ".so",
		"pjrt_plugin_" + name + ".so",
	}
}

// splitPathList splits a ":" separated list, dropping empty and relative entries.
func splitPathList(list string) []string {
	var dirs []string
	for _, d := range strings.Split(list, ":") {
		if d != "" && filepath.IsAbs(d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// pythonPrefixes returns the installation prefixes of the Python environments
// the search looks into, in order, without duplicates.
func (s pluginSearch) pythonPrefixes() []string {
	var prefixes []string
	seen := map[string]bool{}
	add := func(p string) {
		if p == "" || !filepath.IsAbs(p) || seen[p] {
			return
		}
		seen[p] = true
		prefixes = append(prefixes, p)
	}
	add(s.getenv("VIRTUAL_ENV"))
	add(s.getenv("CONDA_PREFIX"))
	for _, dir := range splitPathList(s.getenv("PATH")) {
		for _, exe := range []string{"python3", "python"} {
			if st, err := os.Stat(filepath.Join(dir, exe)); err == nil && !st.IsDir() {
				add(filepath.Dir(dir)) // <prefix>/bin/python3
				break
			}
		}
	}
	if s.cwd != "" {
		add(filepath.Join(s.cwd, ".venv"))
		add(filepath.Join(s.cwd, "venv"))
	}
	if s.home != "" {
		add(filepath.Join(s.home, ".venv"))
		add(filepath.Join(s.home, "venv"))
		versions, _ := filepath.Glob(filepath.Join(s.home, ".pyenv", "versions", "*"))
		sortNewestFirst(versions)
		for _, v := range versions {
			add(v)
		}
		add(filepath.Join(s.home, ".local")) // pip install --user
	}
	for _, r := range s.roots {
		add(r)
	}
	return prefixes
}

// sitePackages returns the existing site-packages (and Debian dist-packages)
// directories of the Python environments the search looks into.
func (s pluginSearch) sitePackages() []string {
	var dirs []string
	seen := map[string]bool{} // real paths: /bin/python3 and /usr/bin/python3 are often one
	for _, prefix := range s.pythonPrefixes() {
		for _, pattern := range []string{"lib/python3*/site-packages", "lib/python3*/dist-packages", "lib64/python3*/site-packages"} {
			matches, _ := filepath.Glob(filepath.Join(prefix, pattern))
			sortNewestFirst(matches)
			for _, m := range matches {
				real, err := filepath.EvalSymlinks(m)
				if err != nil || seen[real] {
					continue
				}
				seen[real] = true
				dirs = append(dirs, m)
			}
		}
	}
	return dirs
}

// sortNewestFirst sorts paths that differ in a version number (python3.9,
// python3.12, 3.11.7) by that number, highest first.
func sortNewestFirst(paths []string) {
	sort.SliceStable(paths, func(i, j int) bool { return versionLess(paths[j], paths[i]) })
}

// versionLess compares a and b piece by piece, runs of digits as numbers.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

// digitRun returns the length of the run of ASCII digits at the start of s.
func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
