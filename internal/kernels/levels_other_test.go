//go:build !amd64

package kernels

// levels lists the kernel sets this platform can run (each test runs every one).
func levels() []*kernelSet { return []*kernelSet{genericSet} }
