package cpubackend

import "unsafe"

// bits16 views 16-bit float values as their bits, the form the kernels of
// package internal/kernels take.
func bits16[T ~uint16](s []T) []uint16 {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&s[0])), len(s))
}
