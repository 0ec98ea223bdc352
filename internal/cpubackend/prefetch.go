package cpubackend

import (
	"sync/atomic"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes/bfloat16"
	"github.com/x448/float16"

	"tether/internal/kernels"
)

// Prefetching the next products' weights.
//
// A decode step is a chain of matrix products that read their weights from memory (memory
// bound), separated by small operations on the caller that need no memory traffic (norms, rope,
// attention over a short cache, softmax). During those gaps an idle worker reads the weights of
// the products that come next into the cache (kernels.Touch, as kernels.Background work), so that
// memory is busy while the caller computes and the product then finds its first bytes cached.
// The worker stops as soon as a product needs it (Background's stop).

// prefetchMinBytes is the smallest weight worth prefetching: smaller ones are read about as
// fast as posting the work costs.
const prefetchMinBytes = 64 << 10

// prefetchWindow is how far ahead of the next product's first byte the worker reads: well
// inside the last-level cache, so that what it reads is still there when the product runs.
// (Measured on the project's 2-core EPYC VM, 32 MiB L3: 1, 2, 4 and 8 MiB did about as well;
// the gaps of a decode step are too short to read more than a few MiB each.)
var prefetchWindow int64 = 4 << 20

// prefetchMaxRows is the most rows (tokens) of the other operand for which a product is
// memory bound enough to prefetch its weight: decode steps, not prefill.
const prefetchMaxRows = 16

// weightRead is a product step that reads a parameter (a weight) as one of its operands.
type weightRead struct {
	step  int // index in Executable.steps
	param int // index in Executable.params
}

// planPrefetch lists the DotGeneral steps with an operand that is a parameter (directly or
// through reshapes, which share storage) of at least prefetchMinBytes, whose other operand
// has at most prefetchMaxRows rows per weight row read (output size over the weight's rows).
func planPrefetch(steps []*node) []weightRead {
	var reads []weightRead
	for i, n := range steps {
		if n.kind != backends.OpTypeDotGeneral {
			continue
		}
		for side, direct := range n.inputs {
			in := direct
			for in.kind == backends.OpTypeReshape {
				in = in.inputs[0]
			}
			if in.kind != backends.OpTypeParameter || in.shape.Size()*in.shape.DType.Size() < prefetchMinBytes {
				continue
			}
			contract := n.dot.lhsContract
			if side == 1 {
				contract = n.dot.rhsContract
			}
			weightRows := direct.shape.Size() / max(axesSize(direct.shape.Dimensions, contract), 1)
			if n.shape.Size() <= prefetchMaxRows*weightRows {
				reads = append(reads, weightRead{step: i, param: in.param})
			}
			break
		}
	}
	return reads
}

// axesSize is the product of dims over axes.
func axesSize(dims, axes []int) int {
	p := 1
	for _, a := range axes {
		p *= dims[a]
	}
	return p
}

// prefetcher runs the plan of one execution: the weights of its products as one stream of
// segments in step order, and how far into that stream the worker has read.
type prefetcher struct {
	pool   *kernels.Pool
	segs   [][]byte // each product's weight bytes
	off    []int64  // each segment's start in the stream
	next   int      // the segment of the next product to run
	steps  []int    // each segment's step index
	cursor atomic.Int64
	posted []*kernels.Background
}

// newPrefetcher returns the prefetcher of one execution over the parameters' storage, or nil
// when the plan is empty or the pool has no worker to spare. Parameters whose storage the
// execution owns (donated) are left out: they may be written during the execution.
func newPrefetcher(pool *kernels.Pool, reads []weightRead, params []*storage) *prefetcher {
	if len(reads) == 0 || pool.Workers() < 2 {
		return nil
	}
	pf := &prefetcher{pool: pool}
	var off int64
	for _, r := range reads {
		if params[r.param].owned {
			continue
		}
		b := flatBytes(params[r.param].flat)
		if len(b) == 0 {
			continue
		}
		pf.segs = append(pf.segs, b)
		pf.off = append(pf.off, off)
		pf.steps = append(pf.steps, r.step)
		off += int64(len(b))
	}
	if len(pf.segs) == 0 {
		return nil
	}
	pf.ahead()
	return pf
}

// ran tells the prefetcher that step i has run; after a product it posts the read-ahead of the
// next ones.
func (pf *prefetcher) ran(i int) {
	if pf == nil || pf.next >= len(pf.steps) || pf.steps[pf.next] != i {
		return
	}
	pf.next++
	if pf.next < len(pf.segs) {
		pf.ahead()
	}
}

// ahead posts background work reading the stream from the next product's first byte (or
// where the worker got to, if further) to prefetchWindow bytes past it.
func (pf *prefetcher) ahead() {
	start := max(pf.cursor.Load(), pf.off[pf.next])
	end := pf.off[pf.next] + prefetchWindow
	if start >= end {
		return
	}
	first := pf.next
	bg := kernels.NewBackground(func(stop func() bool) {
		for s := first; s < len(pf.segs) && start < end; s++ {
			segEnd := pf.off[s] + int64(len(pf.segs[s]))
			if start >= segEnd {
				continue
			}
			lo := start - pf.off[s]
			hi := min(end, segEnd) - pf.off[s]
			n := int64(kernels.Touch(pf.segs[s][lo:hi], stop))
			start += n
			advance(&pf.cursor, start)
			if n < hi-lo {
				return // stopped
			}
		}
	})
	pf.posted = append(pf.posted, bg)
	pf.pool.Post(bg)
}

// stop cancels the posted work and waits until no worker reads the weights any more (they may
// be unmapped once the execution returns).
func (pf *prefetcher) stop() {
	if pf == nil {
		return
	}
	for _, bg := range pf.posted {
		bg.Cancel()
	}
}

// advance raises c to v if v is larger.
func advance(c *atomic.Int64, v int64) {
	for {
		old := c.Load()
		if v <= old || c.CompareAndSwap(old, v) {
			return
		}
	}
}

// flatBytes returns the bytes of a flat slice of a backend dtype, or nil.
func flatBytes(flat any) []byte {
	switch f := flat.(type) {
	case []float32:
		return asBytes(f)
	case []bfloat16.BFloat16:
		return asBytes(f)
	case []float16.Float16:
		return asBytes(f)
	}
	return nil
}

// asBytes views s as its bytes.
func asBytes[T any](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(zero)))
}
