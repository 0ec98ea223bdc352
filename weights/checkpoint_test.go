package weights

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// manyTensors returns n F32 tensors of 100 floats with distinct values.
func manyTensors(t *testing.T, n int) []Tensor {
	t.Helper()
	var out []Tensor
	for i := 0; i < n; i++ {
		vals := make([]float32, 100)
		for j := range vals {
			vals[j] = float32(i*1000 + j)
		}
		tt, err := NewF32Tensor("model.layers."+string(rune('a'+i))+".weight", []int{10, 10}, vals)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tt)
	}
	return out
}

func TestShardedEqualsUnsharded(t *testing.T) {
	tensors := manyTensors(t, 7)
	single, sharded := t.TempDir(), t.TempDir()
	if err := WriteFile(filepath.Join(single, SingleFileName), tensors, nil); err != nil {
		t.Fatal(err)
	}
	if err := writeSharded(sharded, tensors, 1000); err != nil { // 400 bytes per tensor: 2 per shard
		t.Fatal(err)
	}
	shards, _ := filepath.Glob(filepath.Join(sharded, "model-*-of-*.safetensors"))
	if len(shards) != 4 {
		t.Errorf("%d shards, want 4 (7 tensors of 400 bytes, at most 1000 bytes each)", len(shards))
	}
	a, err := OpenCheckpoint(single)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenCheckpoint(sharded)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if strings.Join(a.Names(), ",") != strings.Join(b.Names(), ",") || len(a.Names()) != 7 {
		t.Fatalf("names differ: %v vs %v", a.Names(), b.Names())
	}
	if a.TotalBytes() != 2800 || b.TotalBytes() != 2800 {
		t.Errorf("TotalBytes = %d, %d, want 2800", a.TotalBytes(), b.TotalBytes())
	}
	for _, tt := range tensors {
		va, sa, err := a.Float32(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		vb, sb, err := b.Float32(tt.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(va, vb) || !slices.Equal(sa, sb) {
			t.Errorf("%s differs between sharded and unsharded", tt.Name)
		}
	}
	var idx struct {
		Metadata  map[string]float64
		WeightMap map[string]string `json:"weight_map"`
	}
	data, _ := os.ReadFile(filepath.Join(sharded, IndexFileName))
	if err := json.Unmarshal(data, &idx); err != nil || idx.Metadata["total_size"] != 2800 || len(idx.WeightMap) != 7 {
		t.Errorf("index = %s (%v)", data, err)
	}
}

func TestCheckpointWithoutIndex(t *testing.T) {
	dir := t.TempDir()
	ts := manyTensors(t, 3)
	WriteFile(filepath.Join(dir, "one.safetensors"), ts[:2], nil)
	WriteFile(filepath.Join(dir, "two.safetensors"), ts[2:], nil)
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Names()) != 3 || len(c.Files()) != 2 {
		t.Errorf("names %v files %v", c.Names(), c.Files())
	}
	// The same tensor in a third file is an error.
	WriteFile(filepath.Join(dir, "three.safetensors"), ts[:1], nil)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "stored in both") {
		t.Errorf("duplicate tensor: %v", err)
	}
}

func TestCheckpointIndexErrors(t *testing.T) {
	tensors := manyTensors(t, 4)
	tests := []struct {
		name   string
		mutate func(dir string, idx map[string]any)
		want   string
	}{
		{"missing shard", func(dir string, idx map[string]any) {
			os.Remove(filepath.Join(dir, shardFileName(2, 2)))
		}, "does not exist"},
		{"wrong shard", func(dir string, idx map[string]any) {
			wm := idx["weight_map"].(map[string]any)
			wm["model.layers.a.weight"] = shardFileName(2, 2)
		}, "index says model-00002-of-00002.safetensors, but it is in model-00001-of-00002.safetensors"},
		{"not in any shard", func(dir string, idx map[string]any) {
			idx["weight_map"].(map[string]any)["ghost"] = shardFileName(1, 2)
		}, `tensor "ghost": index says`},
		{"unlisted tensor", func(dir string, idx map[string]any) {
			delete(idx["weight_map"].(map[string]any), "model.layers.d.weight")
		}, "not listed in the index"},
		{"path escape", func(dir string, idx map[string]any) {
			idx["weight_map"].(map[string]any)["model.layers.a.weight"] = "../x.safetensors"
		}, "plain file name"},
		{"empty map", func(dir string, idx map[string]any) {
			idx["weight_map"] = map[string]any{}
		}, "weight_map is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := writeSharded(dir, tensors, 800); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, IndexFileName)
			data, _ := os.ReadFile(path)
			var idx map[string]any
			json.Unmarshal(data, &idx)
			tc.mutate(dir, idx)
			data, _ = json.Marshal(idx)
			os.WriteFile(path, data, 0o644)
			_, err := OpenCheckpoint(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := OpenCheckpoint(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no model.safetensors") {
		t.Errorf("empty dir: %v", err)
	}
}

func TestCheckpointPrefix(t *testing.T) {
	tests := []struct {
		stored, standard string
	}{
		{"language_model.model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"},
		{"model.language_model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"},
		{"lm_head.weight", "lm_head.weight"},
	}
	for _, tc := range tests {
		dir := t.TempDir()
		tt, _ := NewF32Tensor(tc.stored, []int{2}, []float32{1, 2})
		if err := WriteFile(filepath.Join(dir, SingleFileName), []Tensor{tt}, nil); err != nil {
			t.Fatal(err)
		}
		c, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatal(err)
		}
		c.SetPrefix("language_model.")
		if !c.Has(tc.standard) {
			t.Errorf("%s not found as %s with prefix language_model.", tc.stored, tc.standard)
		}
		if info, err := c.Info(tc.standard); err != nil || info.Name != tc.stored {
			t.Errorf("Info(%s) = %+v, %v", tc.standard, info, err)
		}
		if _, _, err := c.Float32("model.absent"); !errors.Is(err, ErrTensorNotFound) {
			t.Errorf("missing tensor error %v does not wrap ErrTensorNotFound", err)
		}
		c.Close()
	}
}
