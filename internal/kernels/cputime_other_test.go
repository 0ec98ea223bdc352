//go:build !unix

package kernels

// cpuTime is not measured on this platform (the benchmark then reports 0 CPU time).
func cpuTime() int64 { return 0 }
