package weights

import (
	"fmt"
	"path/filepath"

	"tether/internal/atomicfile"
)

// IndexFileName is the name of the index of a sharded checkpoint.
const IndexFileName = "model.safetensors.index.json"

// SingleFileName is the name of an unsharded checkpoint's weights file.
const SingleFileName = "model.safetensors"

// shardIndex is the JSON form of model.safetensors.index.json.
type shardIndex struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// writeFileAtomic writes data to path atomically (atomicfile.Write) and
// fsyncs path's directory (best effort).
func writeFileAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data); err != nil {
		return fmt.Errorf("weights: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}
