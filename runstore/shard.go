package runstore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"tether/weights"
)

// shardPath is the file of shard name (a slash-separated path inside dir).
func shardPath(dir, name string) (string, error) {
	local := filepath.FromSlash(name)
	if !filepath.IsLocal(local) {
		return "", fmt.Errorf("runstore: shard name %q: expected a relative path inside the run directory %s", name, dir)
	}
	return filepath.Join(dir, local), nil
}

// WriteShard writes a safetensors shard at name (a slash-separated path inside the run directory
// dir, such as "activations/shard-000001.safetensors") atomically: the file appears whole or not
// at all, and its directory is fsynced so that it stays after a crash. A shard of the same name
// is replaced. The caller writes dir: it holds dir's Store.
func WriteShard(dir, name string, tensors []weights.Tensor, metadata map[string]string) error {
	path, err := shardPath(dir, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("runstore: shard %s: %w", path, err)
	}
	if err := weights.WriteFile(path, tensors, metadata); err != nil {
		return fmt.Errorf("runstore: shard %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// OpenShard opens the safetensors shard name of the run directory dir for reading; the caller
// closes it.
func OpenShard(dir, name string) (*weights.File, error) {
	path, err := shardPath(dir, name)
	if err != nil {
		return nil, err
	}
	f, err := weights.OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("runstore: shard %s: %w", path, err)
	}
	return f, nil
}

// FileSHA256 is the hex sha256 of a file's bytes, read as a stream.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("runstore: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("runstore: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
