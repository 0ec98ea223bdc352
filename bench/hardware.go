package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"tether/internal/kernels"
)

// DefaultBandwidthBytes is the buffer size MeasureVectorBandwidth reads when given bytes <= 0:
// large enough (256 MiB) to dwarf the caches of any current CPU.
const DefaultBandwidthBytes int64 = 256 << 20

// PeakRSS returns the peak resident set size of this process in bytes, read from VmHWM in
// /proc/self/status. It returns an error on systems without that file (anything but Linux).
func PeakRSS() (int64, error) {
	const path = "/proc/self/status"
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("bench: peak RSS: %s is only available on Linux, not %s", path, runtime.GOOS)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("bench: peak RSS: %w", err)
	}
	peak, err := parseVmHWM(bytes.NewReader(data))
	if err != nil {
		return 0, fmt.Errorf("bench: peak RSS: %s: %w", path, err)
	}
	return peak, nil
}

// parseVmHWM finds the "VmHWM:" line of a /proc/<pid>/status file, whose value is in kB, and
// returns it in bytes.
func parseVmHWM(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("field VmHWM %q: want a number followed by kB", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("field VmHWM %q: want a non-negative number of kB", fields[0])
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("reading: %w", err)
	}
	return 0, fmt.Errorf("field VmHWM not found")
}

// BandwidthSample is the memory read bandwidth of several timed passes, in GB/s.
type BandwidthSample struct {
	Median float64 `json:"median_gbps"`
	Min    float64 `json:"min_gbps"`
	Max    float64 `json:"max_gbps"`
	Passes int     `json:"passes"`
}

// MeasureVectorBandwidth reads a buffer of bytes (<= 0: DefaultBandwidthBytes), written once
// first so every page is mapped, passes times with kernels.ReadBandwidth (vector loads on a
// persistent pool of GOMAXPROCS workers, the way the cpu backend's products read weights) and
// returns the median, slowest and fastest pass. Decoding one token reads every weight once, so
// weight bytes / the median is the floor on decode time.
func MeasureVectorBandwidth(bytes int64, passes int) BandwidthSample {
	if bytes <= 0 {
		bytes = DefaultBandwidthBytes
	}
	passes = max(passes, 1)
	buf := make([]byte, bytes)
	for i := range buf {
		buf[i] = byte(i)
	}
	pool := kernels.NewPool(0)
	defer pool.Close()
	kernels.ReadBandwidth(pool, buf) // warm-up: workers started, pages touched
	rates := make([]float64, passes)
	for i := range rates {
		rates[i] = kernels.ReadBandwidth(pool, buf) / 1e9
	}
	return BandwidthSample{Median: median(rates), Min: slices.Min(rates), Max: slices.Max(rates), Passes: passes}
}

// median returns the median of xs (the mean of the middle two for an even
// count; 0 for none) without reordering xs.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
