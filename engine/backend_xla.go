//go:build cgo

package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

func init() {
	// Never download PJRT plugins: the engine runs offline.
	xla.EnableAutoInstall(false)
}

// newXLABackend opens the XLA backend with the PJRT plugin named by config
// ("cuda", "cpu", or an absolute path, optionally followed by ",options").
func newXLABackend(config string) (backends.Backend, error) {
	xla.EnableAutoInstall(false)
	plugin, opts := config, ""
	for i := 0; i < len(config); i++ {
		if config[i] == ',' {
			plugin, opts = config[:i], config[i:]
			break
		}
	}
	path, err := findPJRTPlugin(plugin)
	if err != nil {
		return nil, err
	}
	if plugin == "cpu" {
		// Keep the shared-buffer optimisation the plugin name "cpu" enables.
		opts = ",shared_buffers" + opts
	}
	b, err := xla.NewWithOptions(path+opts, nil)
	if err != nil {
		return nil, fmt.Errorf("engine: backend \"xla:%s\" with plugin %s: %w", config, path, err)
	}
	return b, nil
}
