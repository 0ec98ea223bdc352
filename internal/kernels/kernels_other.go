//go:build !amd64

package kernels

// detect picks the portable kernels: only amd64 has SIMD kernels.
func detect() *kernelSet { return genericSet }
