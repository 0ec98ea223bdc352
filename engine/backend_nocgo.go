//go:build !cgo

package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
)

// newXLABackend reports that XLA is unavailable: it needs cgo.
func newXLABackend(config string) (backends.Backend, error) {
	return newXLABackendInfo(config, &BackendInfo{})
}

// newXLABackendInfo reports that XLA is unavailable: it needs cgo.
func newXLABackendInfo(config string, info *BackendInfo) (backends.Backend, error) {
	return nil, fmt.Errorf("engine: backend \"xla:%s\": this binary was built without cgo, which the XLA backend needs; use \"go\" or rebuild with CGO_ENABLED=1", config)
}
