package engine

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// NonFiniteError reports a step whose residual stream or logits were not
// finite (NaN weights, or steering so strong that float32 overflows).
// Generation stops at the first such step.
type NonFiniteError struct {
	// Step is 0 for the prompt (prefill) and k for the k-th decoding step,
	// the one that feeds generated token k.
	Step int
	// Layer is the first block whose output (after its hook, if any) holds a
	// value that is NaN, infinite, or beyond ±1.8e19, where its square in the
	// next RMS norm overflows float32; -1 when only the logits are non-finite.
	Layer int
	// Count is how many values of that block's output (or of the logits)
	// failed the check, over the whole batch and every position of the step.
	Count int
	// Values is the size of that block's output (or of the logits) in this
	// step, padding included.
	Values int
}

// Error names the step and the layer.
func (e *NonFiniteError) Error() string {
	step := fmt.Sprintf("step %d (decode)", e.Step)
	if e.Step == 0 {
		step = "step 0 (prefill)"
	}
	if e.Layer < 0 {
		return fmt.Sprintf("engine: %s: non-finite logits (%d of %d values; check the weights of the final norm and output projection)",
			step, e.Count, e.Values)
	}
	return fmt.Sprintf("engine: %s: non-finite residual stream after layer %d (%d of %d values NaN, Inf or beyond ±1.8e19; first non-finite layer; check the weights or steering magnitudes)",
		step, e.Layer, e.Count, e.Values)
}

// checkFinite reads the graph's finite check output ([L+1] int32: per block,
// then the logits; see nonFiniteCount) and returns a *NonFiniteError for the
// first non-zero entry. residual and logits are the number of values checked
// per block and in the logits.
func checkFinite(t *tensors.Tensor, step, residual, logits int) error {
	counts, err := tensors.CopyFlatData[int32](t)
	if err != nil {
		return fmt.Errorf("engine: reading the finite check %s: %w", t.Shape(), err)
	}
	_ = t.FinalizeAll()
	last := len(counts) - 1
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if i == last {
			return &NonFiniteError{Step: step, Layer: -1, Count: int(c), Values: logits}
		}
		return &NonFiniteError{Step: step, Layer: i, Count: int(c), Values: residual}
	}
	return nil
}
