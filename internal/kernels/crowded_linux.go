package kernels

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
)

// crowded reports whether the machine has more runnable threads than this process may use CPUs
// (the running count of /proc/loadavg against runtime.NumCPU), or true when /proc/loadavg cannot
// be read.
func crowded() bool {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return true
	}
	running, ok := runningThreads(b)
	return !ok || running > runtime.NumCPU()
}

// runningThreads parses the running count of /proc/loadavg ("0.52 0.58 0.59 3/467 12345": 3).
func runningThreads(loadavg []byte) (int, bool) {
	f := bytes.Fields(loadavg)
	if len(f) < 4 {
		return 0, false
	}
	r, _, ok := bytes.Cut(f[3], []byte("/"))
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(string(r))
	return n, err == nil && n >= 0
}
