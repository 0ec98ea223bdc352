package weights

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
)

// shardFileName returns the Hugging Face name of shard i (1-based) of n:
// model-0000i-of-0000n.safetensors.
func shardFileName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// writeSharded writes tensors into dir as model-0000N-of-0000M.safetensors
// shards of at most maxShardBytes of tensor data each (a larger single tensor
// gets a shard of its own), plus model.safetensors.index.json. Tensors are
// assigned to shards in name order.
func writeSharded(dir string, tensors []Tensor, maxShardBytes int64) error {
	if maxShardBytes <= 0 {
		return fmt.Errorf("weights: %s: maxShardBytes must be positive, got %d", dir, maxShardBytes)
	}
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var shards [][]Tensor
	var cur []Tensor
	var curBytes, total int64
	for _, t := range sorted {
		n := int64(len(t.Data))
		total += n
		if len(cur) > 0 && curBytes+n > maxShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t)
		curBytes += n
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	idx := shardIndex{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
	for i, shard := range shards {
		name := shardFileName(i+1, len(shards))
		if err := WriteFile(filepath.Join(dir, name), shard, map[string]string{"format": "pt"}); err != nil {
			return err
		}
		for _, t := range shard {
			idx.WeightMap[t.Name] = name
		}
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("weights: %s: index: %w", dir, err)
	}
	return writeFileAtomic(filepath.Join(dir, IndexFileName), append(data, '\n'))
}
