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
	"sync"
	"sync/atomic"
	"time"

	"tether/internal/kernels"
)

// DefaultBandwidthBytes is the buffer size MeasureBandwidth reads when given bytes <= 0: large
// enough (256 MiB) to dwarf the caches of any current CPU.
const DefaultBandwidthBytes int64 = 256 << 20

// bandwidthRounds is how many timed passes MeasureBandwidth makes; it reports the best.
const bandwidthRounds = 6

// bandwidthSink receives every sum so the compiler cannot drop the reads.
var bandwidthSink atomic.Uint64

// MeasureBandwidth returns the sustainable memory read bandwidth in GB/s (1e9 bytes per second)
// when `threads` goroutines together read a buffer of `bytes` bytes, each summing its own
// contiguous share as uint64 words. The buffer is written once first so every page is really
// mapped, then read in several timed passes, all goroutines starting together; the fastest pass
// counts. threads <= 0 means GOMAXPROCS; bytes <= 0 means DefaultBandwidthBytes. The buffer is
// rounded down to whole cache lines per goroutine, with at least one line each. Decoding one
// token reads every weight once, so weight bytes / this figure is the floor on decode time.
func MeasureBandwidth(threads int, bytes int64) (gbps float64) {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if bytes <= 0 {
		bytes = DefaultBandwidthBytes
	}
	const lineWords = 8 // 64-byte cache line
	wordsPerThread := max(bytes/8/int64(threads)/lineWords*lineWords, lineWords)
	buf := make([]uint64, wordsPerThread*int64(threads))
	for i := range buf {
		buf[i] = uint64(i)
	}
	shares := make([][]uint64, threads)
	for t := range shares {
		shares[t] = buf[int64(t)*wordsPerThread : int64(t+1)*wordsPerThread]
	}

	best := time.Duration(1<<63 - 1)
	for range bandwidthRounds {
		if d := timeParallelRead(shares); d < best {
			best = d
		}
	}
	readBytes := float64(len(buf) * 8)
	return readBytes / max(best.Seconds(), 1e-9) / 1e9
}

// timeParallelRead starts one goroutine per share, releases them together, and returns the time
// until the last one has summed its share.
func timeParallelRead(shares [][]uint64) time.Duration {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(len(shares))
	done.Add(len(shares))
	for _, share := range shares {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			bandwidthSink.Add(sumWords(share))
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}

// sumWords adds up words with eight independent accumulators, so the loop is bound by loads
// rather than by the latency of one chain of additions.
func sumWords(words []uint64) uint64 {
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(words) >= 8 {
		s0 += words[0]
		s1 += words[1]
		s2 += words[2]
		s3 += words[3]
		s4 += words[4]
		s5 += words[5]
		s6 += words[6]
		s7 += words[7]
		words = words[8:]
	}
	for _, w := range words {
		s0 += w
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

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
