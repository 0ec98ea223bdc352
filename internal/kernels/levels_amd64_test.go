//go:build amd64

package kernels

// levels lists the kernel sets this CPU can run, widest first (each test runs every one).
func levels() []*kernelSet {
	var ls []*kernelSet
	if hasAVX512() {
		ls = append(ls, avx512Set)
	}
	if hasAVX2() {
		ls = append(ls, avx2Set)
	}
	return append(ls, genericSet)
}
