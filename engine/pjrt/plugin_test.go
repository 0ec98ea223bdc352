package pjrt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// touch creates an empty file (and its directories) under root.
func touch(t *testing.T, root, rel string) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not really a plugin"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakePluginTree lays out one fake CUDA plugin for every search rule:
// an explicit file, a PJRT_PLUGIN_LIBRARY_PATH dir, a go-xla dir under a fake
// home, a virtualenv and a python3-on-PATH environment with JAX's plugin, and
// an LD_LIBRARY_PATH dir.
type fakePluginTree struct {
	root                                                   string
	explicit, envDir, goXLA, venv, pathPython, ldDir, home string
}

func newFakePluginTree(t *testing.T) fakePluginTree {
	root := t.TempDir()
	f := fakePluginTree{root: root,
		explicit: touch(t, root, "explicit/my_cuda_plugin.so"),
		envDir:   filepath.Join(root, "envdir"),
		home:     filepath.Join(root, "home"),
		venv:     filepath.Join(root, "venv"),
		ldDir:    filepath.Join(root, "ld"),
	}
	touch(t, f.envDir, "pjrt_c_api_cuda_plugin.so")
	f.goXLA = touch(t, f.home, ".local/lib/go-xla/pjrt_c_api_cuda_plugin.so")
	touch(t, f.venv, "lib/python3.12/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so")
	touch(t, f.venv, "lib/python3.12/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so")
	touch(t, root, "conda/bin/python3")
	f.pathPython = touch(t, root, "conda/lib/python3.11/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so")
	touch(t, f.ldDir, "pjrt-plugin-cuda.so")
	return f
}

// search returns a pluginSearch over the fake tree with the given rules
// switched on.
func (f fakePluginTree) search(explicit, env, goXLA, venv, pathPython, ld bool) pluginSearch {
	vars := map[string]string{}
	s := pluginSearch{getenv: func(k string) string { return vars[k] }, cwd: filepath.Join(f.root, "cwd")}
	if explicit {
		s.explicit = f.explicit
	}
	if env {
		vars[PluginPathEnv] = filepath.Join(f.root, "nothing-here") + ":" + f.envDir
	}
	if goXLA {
		s.home = f.home
	}
	if venv {
		vars["VIRTUAL_ENV"] = f.venv
	}
	if pathPython {
		vars["PATH"] = filepath.Join(f.root, "conda", "bin")
	}
	if ld {
		vars["LD_LIBRARY_PATH"] = f.ldDir
	}
	return s
}

func TestFindPJRTPluginPrecedence(t *testing.T) {
	f := newFakePluginTree(t)
	venvPlugin := filepath.Join(f.venv, "lib/python3.12/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so")
	for _, tc := range []struct {
		name                                       string
		explicit, env, goXLA, venv, pathPython, ld bool
		wantPath, wantSource                       string
	}{
		{"flag beats everything", true, true, true, true, true, true, f.explicit, PluginSourceExplicit},
		{"env beats go-xla, python and LD", false, true, true, true, true, true, filepath.Join(f.envDir, "pjrt_c_api_cuda_plugin.so"), PluginSourceEnv},
		{"go-xla dir beats python", false, false, true, true, true, true, f.goXLA, PluginSourceGoXLA},
		{"virtualenv, cuda13 before cuda12", false, false, false, true, true, true, venvPlugin, PluginSourcePython},
		{"python3 on PATH", false, false, false, false, true, true, f.pathPython, PluginSourcePython},
		{"LD_LIBRARY_PATH last", false, false, false, false, false, true, filepath.Join(f.ldDir, "pjrt-plugin-cuda.so"), PluginSourceLDPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.search(tc.explicit, tc.env, tc.goXLA, tc.venv, tc.pathPython, tc.ld).find("cuda")
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != tc.wantPath || got.Source != tc.wantSource {
				t.Errorf("found %s via %s, want %s via %s", got.Path, got.Source, tc.wantPath, tc.wantSource)
			}
		})
	}
}

func TestFindPJRTPluginErrors(t *testing.T) {
	f := newFakePluginTree(t)
	t.Run("missing explicit file does not fall back", func(t *testing.T) {
		s := f.search(false, true, true, true, true, true)
		s.explicit = filepath.Join(f.root, "no-such.so")
		if _, err := s.find("cuda"); err == nil || !strings.Contains(err.Error(), "no-such.so") || !strings.Contains(err.Error(), "--pjrt-plugin") {
			t.Errorf("error %v, want one naming --pjrt-plugin and the missing file", err)
		}
	})
	t.Run("nothing found names every place searched", func(t *testing.T) {
		empty := t.TempDir()
		vars := map[string]string{PluginPathEnv: filepath.Join(empty, "env"), "LD_LIBRARY_PATH": filepath.Join(empty, "ld"), "VIRTUAL_ENV": filepath.Join(empty, "venv")}
		touch(t, empty, "venv/lib/python3.10/site-packages/placeholder")
		s := pluginSearch{getenv: func(k string) string { return vars[k] }, home: filepath.Join(empty, "home")}
		_, err := s.find("tpu") // no tpu plugin anywhere; python is searched for cuda only
		if err == nil {
			t.Fatal("expected an error")
		}
		for _, want := range []string{
			filepath.Join(empty, "env", "pjrt_c_api_tpu_plugin.so"),
			filepath.Join(empty, "home", ".local", "lib", "go-xla", "pjrt_plugin_tpu.so"),
			filepath.Join(empty, "ld", "pjrt-plugin-tpu.so"),
			"never downloaded",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		if strings.Contains(err.Error(), "jax_plugins") {
			t.Errorf("error %q: python environments searched for a non-CUDA plugin", err)
		}
		vars[PluginPathEnv] = ""
		_, err = s.find("cuda")
		for _, want := range []string{
			filepath.Join(empty, "venv/lib/python3.10/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so"),
			filepath.Join(empty, "venv/lib/python3.10/site-packages/jax_plugins/xla_cuda12/xla_cuda_plugin.so"),
			"pip install",
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not mention %q", err, want)
			}
		}
	})
	t.Run("directory is not a plugin", func(t *testing.T) {
		s := pluginSearch{getenv: func(string) string { return "" }, explicit: f.envDir}
		if _, err := s.find("cuda"); err == nil || !strings.Contains(err.Error(), "directory") {
			t.Errorf("error %v, want one saying the path is a directory", err)
		}
	})
	t.Run("bad names", func(t *testing.T) {
		s := pluginSearch{getenv: func(string) string { return "" }}
		for _, name := range []string{"", "rel/path.so", "a:b"} {
			if _, err := s.find(name); err == nil {
				t.Errorf("find(%q): expected an error", name)
			}
		}
	})
}

func TestFindPJRTPluginAbsoluteAndRelativeExplicit(t *testing.T) {
	f := newFakePluginTree(t)
	s := pluginSearch{getenv: func(string) string { return "" }}
	if got, err := s.find(f.explicit); err != nil || got.Path != f.explicit {
		t.Errorf("absolute name: %v, %v", got, err)
	}
	t.Chdir(filepath.Dir(f.explicit))
	s.explicit = "my_cuda_plugin.so"
	got, err := s.find("cuda")
	if err != nil || got.Path != f.explicit {
		t.Errorf("relative --pjrt-plugin: got %v, %v; want absolute %s", got, err, f.explicit)
	}
}

func TestSetPJRTPluginUsedByFindPJRTPlugin(t *testing.T) {
	f := newFakePluginTree(t)
	t.Cleanup(func() { SetPlugin("") })
	SetPlugin(f.explicit)
	got, err := FindPlugin("cuda")
	if err != nil || got.Path != f.explicit || got.Source != PluginSourceExplicit {
		t.Errorf("FindPlugin after SetPlugin: %v, %v", got, err)
	}
	SetPlugin("")
	if ExplicitPlugin() != "" {
		t.Errorf("SetPlugin(\"\") left %q", ExplicitPlugin())
	}
}

func TestSortNewestFirst(t *testing.T) {
	got := []string{"/p/3.9.18", "/p/3.13.0", "/p/3.10.13", "/p/3.12.1", "/p/3.12.10"}
	sortNewestFirst(got)
	want := []string{"/p/3.13.0", "/p/3.12.10", "/p/3.12.1", "/p/3.10.13", "/p/3.9.18"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}
