package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"tether/runstore"
)

// addShardFlags adds --shard and --shards to a command that runs work units.
func addShardFlags(fs *pflag.FlagSet) (shard *string, shards *int) {
	shard = fs.String("shard", "", "run only shard i of N of the work units (i/N, 0-based), in the sub-directory shard-IIII-of-NNNN of --out; "+
		"auto: from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (an array 0-N with step 1), or JOB_COMPLETION_INDEX with --shards (Kubernetes)")
	shards = fs.Int("shards", 0, "the number of shards (with --shard auto in a Kubernetes Indexed Job: the Job's completions)")
	limit(fs, "shards", atLeast(0).with("0 = taken from --shard"))
	return shard, shards
}

// parseShardFlags reads --shard and --shards (nil: no sharding); a bad value, or a scheduler
// environment --shard auto cannot use, is a usage error.
func parseShardFlags(spec string, shards int) (*runstore.Shard, error) {
	s, ok, err := runstore.ParseShard(spec, shards, os.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	if !ok {
		return nil, nil
	}
	return &s, nil
}

// shardShare says how many of total units shard s runs.
func shardShare(total int, s runstore.Shard) string {
	n := 0
	for k := s.Index; k < total; k += s.Count {
		n++
	}
	return fmt.Sprintf("%d of the %d units", n, total)
}
