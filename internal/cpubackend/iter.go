package cpubackend

// stridesOf returns the row-major strides of dims.
func stridesOf(dims []int) []int {
	s := make([]int, len(dims))
	acc := 1
	for i := len(dims) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= dims[i]
	}
	return s
}

// walk visits every index of dims in row-major order, one run of the last
// axis at a time: fn gets each operand's offset at the start of the run
// (operand k moves by strides[k][axis] along axis, starting at bases[k])
// and the run's length. Operand offsets along the last axis advance by
// strides[k][len(dims)-1] per element.
func walk(dims []int, strides [][]int, bases []int, fn func(offs []int, n int)) {
	r := len(dims)
	offs := append([]int(nil), bases...)
	if r == 0 {
		fn(offs, 1)
		return
	}
	for _, d := range dims {
		if d == 0 {
			return
		}
	}
	idx := make([]int, r-1)
	n := dims[r-1]
	for {
		fn(offs, n)
		a := r - 2
		for ; a >= 0; a-- {
			idx[a]++
			for k := range offs {
				offs[k] += strides[k][a]
			}
			if idx[a] < dims[a] {
				break
			}
			for k := range offs {
				offs[k] -= strides[k][a] * dims[a]
			}
			idx[a] = 0
		}
		if a < 0 {
			return
		}
	}
}

// broadcastStrides returns the strides of an operand of dims (same rank as
// the output, or a scalar) read in the output's index space: 0 on axes
// where it has size 1.
func broadcastStrides(dims []int, outRank int) []int {
	s := make([]int, outRank)
	if len(dims) == 0 {
		return s
	}
	st := stridesOf(dims)
	for a := range dims {
		if dims[a] != 1 {
			s[a] = st[a]
		}
	}
	return s
}
