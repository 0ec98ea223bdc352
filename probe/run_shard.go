package probe

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"strconv"

	"tether/runstore"
	"tether/weights"
)

// Names inside an activation shard.
const (
	ShardMeanTensor  = "mean"
	ShardCountTensor = "count"
	ShardIDsKey      = "ids"
)

// ShardName is the path, relative to the run directory, of activation shard number n.
func ShardName(n int) string {
	return path.Join(ActivationsDir, fmt.Sprintf("shard-%06d.safetensors", n))
}

// writeShard writes a shard atomically (runstore.WriteShard): F32 "mean" [rows, layers,
// hidden], F32 "count" [rows], metadata ids/layers/hidden_size.
func writeShard(runDir, name string, ids []string, means [][][]float32, counts []int, layers, hidden int) error {
	file := filepath.Join(runDir, filepath.FromSlash(name))
	flat := make([]float32, 0, len(ids)*layers*hidden)
	for i, perLayer := range means {
		if len(perLayer) != layers {
			return fmt.Errorf("probe: shard %s: row %d has %d layers, want %d", file, i, len(perLayer), layers)
		}
		for _, v := range perLayer {
			if len(v) != hidden {
				return fmt.Errorf("probe: shard %s: row %d has width %d, want %d", file, i, len(v), hidden)
			}
			flat = append(flat, v...)
		}
	}
	mean, err := weights.NewF32Tensor(ShardMeanTensor, []int{len(ids), layers, hidden}, flat)
	if err != nil {
		return fmt.Errorf("probe: shard %s: %w", file, err)
	}
	cnt := make([]float32, len(counts))
	for i, c := range counts {
		cnt[i] = float32(c)
	}
	count, err := weights.NewF32Tensor(ShardCountTensor, []int{len(counts)}, cnt)
	if err != nil {
		return fmt.Errorf("probe: shard %s: %w", file, err)
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("probe: shard %s: %w", file, err)
	}
	meta := map[string]string{ShardIDsKey: string(idsJSON), "layers": strconv.Itoa(layers), "hidden_size": strconv.Itoa(hidden)}
	if err := runstore.WriteShard(runDir, name, []weights.Tensor{mean, count}, meta); err != nil {
		return fmt.Errorf("probe: run %s: %w", runDir, err)
	}
	return nil
}

// shardIDs reads the "ids" metadata of an open shard.
func shardIDs(f *weights.File) ([]string, error) {
	raw, ok := f.Metadata()[ShardIDsKey]
	if !ok {
		return nil, fmt.Errorf("probe: shard %s: no %q metadata", f.Path(), ShardIDsKey)
	}
	var ids []string
	if err := json.Unmarshal([]byte(raw), &ids); err != nil {
		return nil, fmt.Errorf("probe: shard %s: metadata %q: %w", f.Path(), ShardIDsKey, err)
	}
	return ids, nil
}

// MeanActivations returns, for each id, the rollout's mean residual stream per layer
// [len(ids)][Layers][HiddenSize], reading one shard at a time (each shard is opened, its rows
// copied out, and closed). Every id must be a completed rollout of the run.
func (r *Run) MeanActivations(ids []string) ([][][]float32, error) {
	byID := make(map[string]*Rollout, len(r.rollouts))
	for i := range r.rollouts {
		byID[r.rollouts[i].ID] = &r.rollouts[i]
	}
	type want struct{ out, row int }
	byShard := map[string][]want{}
	var order []string
	for i, id := range ids {
		ro, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("probe: run %s: no completed rollout %q", r.dir, id)
		}
		if _, ok := byShard[ro.Shard]; !ok {
			order = append(order, ro.Shard)
		}
		byShard[ro.Shard] = append(byShard[ro.Shard], want{i, ro.Row})
	}
	L, H := r.manifest.Layers, r.manifest.HiddenSize
	out := make([][][]float32, len(ids))
	for _, name := range order {
		file := filepath.Join(r.dir, filepath.FromSlash(name))
		f, err := runstore.OpenShard(r.dir, name)
		if err != nil {
			return nil, fmt.Errorf("probe: run %s: %w", r.dir, err)
		}
		err = func() error {
			defer f.Close()
			vals, shape, err := f.Float32(ShardMeanTensor)
			if err != nil {
				return fmt.Errorf("probe: shard %s: tensor %q: %w", file, ShardMeanTensor, err)
			}
			if len(shape) != 3 || shape[1] != L || shape[2] != H {
				return fmt.Errorf("probe: shard %s: tensor %q has shape %v (expected [rows, %d, %d])", file, ShardMeanTensor, shape, L, H)
			}
			shardRowIDs, err := shardIDs(f)
			if err != nil {
				return err
			}
			if len(shardRowIDs) != shape[0] {
				return fmt.Errorf("probe: shard %s: %d ids for %d rows", file, len(shardRowIDs), shape[0])
			}
			for _, w := range byShard[name] {
				if w.row < 0 || w.row >= shape[0] || shardRowIDs[w.row] != ids[w.out] {
					return fmt.Errorf("probe: shard %s: rollout %q is not at row %d", file, ids[w.out], w.row)
				}
				rows := make([][]float32, L)
				base := w.row * L * H
				for l := range rows {
					rows[l] = append([]float32(nil), vals[base+l*H:base+(l+1)*H]...)
				}
				out[w.out] = rows
			}
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
