package kernels

import (
	"sync/atomic"
	"unsafe"
)

// touchChunk is how many bytes Touch reads between two looks at stop: about a microsecond of
// memory traffic.
const touchChunk = 16 << 10

// touchSink keeps the loads of Touch from being optimised away.
var touchSink uint64

// Touch reads one word of every 64-byte cache line of b, front to back, so that b is in the
// cache when a matrix product reads it next. It looks at stop every touchChunk bytes and
// returns early when stop reports true; it returns how many bytes of b it read.
func Touch(b []byte, stop func() bool) int {
	var acc uint64
	done := 0
	for done < len(b) {
		if stop() {
			break
		}
		end := min(len(b), done+touchChunk)
		p := unsafe.Pointer(unsafe.SliceData(b))
		i := done
		for ; i+256 <= end; i += 256 {
			acc ^= *(*uint64)(unsafe.Add(p, i)) ^ *(*uint64)(unsafe.Add(p, i+64)) ^
				*(*uint64)(unsafe.Add(p, i+128)) ^ *(*uint64)(unsafe.Add(p, i+192))
		}
		for ; i < end; i += 64 {
			acc ^= uint64(b[i])
		}
		done = end
	}
	atomic.AddUint64(&touchSink, acc)
	return done
}
