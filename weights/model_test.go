package weights

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenModel(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := fakeRepo(t, cache, "google/gemma-tiny", []string{"abc123"}, "abc123")
	snap := filepath.Join(repo, "snapshots", "abc123")
	if err := WriteRandomModel(snap, shrinkConfig(t, "gemma-3-4b-it.json"), 3, BF16); err != nil {
		t.Fatal(err)
	}
	cfg, ckpt, err := OpenModel("google/gemma-tiny")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Family != FamilyGemma3 || ckpt.Dir() != snap || !strings.HasPrefix(ckpt.Names()[0], "language_model.") {
		t.Errorf("family %s dir %s names %v", cfg.Family, ckpt.Dir(), ckpt.Names()[:1])
	}
	ckpt.Close()

	// A checkpoint missing a tensor is rejected with its name.
	dir := t.TempDir()
	if err := WriteRandomModel(dir, []byte(tinyConfig), 1, F32); err != nil {
		t.Fatal(err)
	}
	c, _ := OpenCheckpoint(dir)
	var keep []Tensor
	for _, name := range c.Names() {
		if name == "model.norm.weight" {
			continue
		}
		b, info, _ := c.Raw(name)
		keep = append(keep, Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), b...)})
	}
	c.Close()
	if err := WriteFile(filepath.Join(dir, SingleFileName), keep, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenModel(dir); err == nil || !strings.Contains(err.Error(), `"model.norm.weight" missing`) {
		t.Errorf("missing norm: %v", err)
	}
	os.Remove(filepath.Join(dir, "config.json"))
	if _, _, err := OpenModel(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing config: %v", err)
	}
}

func TestOpenModelThroughCacheSymlinks(t *testing.T) {
	// The hub cache stores files as blobs/<hash>, linked from snapshots/<commit>/.
	cache := t.TempDir()
	t.Setenv("HF_HUB_CACHE", cache)
	repo := fakeRepo(t, cache, "org/linked", []string{"c0ffee"}, "c0ffee")
	blobs := filepath.Join(repo, "blobs")
	if err := WriteRandomModel(blobs, []byte(tinyConfig), 5, BF16); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(repo, "snapshots", "c0ffee")
	for _, name := range []string{"config.json", SingleFileName} {
		if err := os.Symlink(filepath.Join("..", "..", "blobs", name), filepath.Join(snap, name)); err != nil {
			t.Fatal(err)
		}
	}
	cfg, ckpt, err := OpenModel("org/linked")
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	if cfg.HiddenSize != 8 || ckpt.TotalBytes() != 2*cfg.ParamCount() {
		t.Errorf("hidden %d, %d bytes for %d BF16 params", cfg.HiddenSize, ckpt.TotalBytes(), cfg.ParamCount())
	}
}
