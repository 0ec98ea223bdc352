package weights

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HubCacheDir returns the Hugging Face hub cache directory: $HF_HUB_CACHE,
// else $HF_HOME/hub, else ~/.cache/huggingface/hub.
func HubCacheDir() string {
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		return filepath.Join(d, "hub")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "huggingface", "hub")
	}
	return filepath.Join(home, ".cache", "huggingface", "hub")
}

// ResolveModel turns a model reference into a directory: an existing
// directory is returned as is; otherwise ref must be a Hugging Face id
// "org/name", looked up offline in the hub cache (see HubCacheDir) as
// models--org--name/snapshots/<refs/main>, or the only snapshot when
// refs/main is absent. tether never downloads.
func ResolveModel(ref string) (string, error) {
	if st, err := os.Stat(ref); err == nil && st.IsDir() {
		return ref, nil
	}
	parts := strings.Split(ref, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || strings.ContainsAny(ref, `\`) || parts[0] == ".." || parts[1] == ".." || parts[0] == "." || parts[1] == "." {
		return "", fmt.Errorf("weights: model %q is not a directory and not a Hugging Face id of the form org/name", ref)
	}
	cache := HubCacheDir()
	repo := filepath.Join(cache, "models--"+parts[0]+"--"+parts[1])
	notFound := func(why string) error {
		return fmt.Errorf("weights: model %q: %s; searched the directory %q and the Hugging Face cache %s (from HF_HUB_CACHE, HF_HOME/hub or ~/.cache/huggingface/hub); tether never downloads: fetch it first (e.g. huggingface-cli download %s) or pass a directory", ref, why, ref, repo, ref)
	}
	if st, err := os.Stat(repo); err != nil || !st.IsDir() {
		return "", notFound("not in the cache")
	}
	snapshots := filepath.Join(repo, "snapshots")
	if data, err := os.ReadFile(filepath.Join(repo, "refs", "main")); err == nil {
		hash := strings.TrimSpace(string(data))
		if hash == "" || strings.ContainsAny(hash, `/\`) || hash == "." || hash == ".." {
			return "", notFound(fmt.Sprintf("refs/main holds %q, expected a commit hash", hash))
		}
		dir := filepath.Join(snapshots, hash)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return "", notFound(fmt.Sprintf("refs/main names snapshot %s, which is missing", hash))
		}
		return dir, nil
	}
	entries, err := os.ReadDir(snapshots)
	if err != nil {
		return "", notFound("the cache entry has no snapshots")
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	switch len(dirs) {
	case 0:
		return "", notFound("the cache entry has no snapshots")
	case 1:
		return filepath.Join(snapshots, dirs[0]), nil
	}
	return "", notFound(fmt.Sprintf("no refs/main and %d snapshots (%s); pass the snapshot directory", len(dirs), strings.Join(dirs, ", ")))
}
