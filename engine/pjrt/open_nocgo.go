//go:build !cgo

package pjrt

import (
	"fmt"

	"github.com/gomlx/gomlx/backends"
)

// Open reports that XLA is unavailable: it needs cgo.
func Open(config string, info *Info) (backends.Backend, error) {
	return nil, fmt.Errorf("pjrt: backend \"xla:%s\": this binary was built without cgo, which the XLA backend needs; use \"go\" or rebuild with CGO_ENABLED=1", config)
}
