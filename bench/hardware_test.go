package bench

import (
	"math"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

func TestSumWords(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 1000, 1 << 16} {
		words := make([]uint64, n)
		for i := range words {
			words[i] = uint64(i)
		}
		want := uint64(n) * uint64(max(n-1, 0)) / 2 // 0 + 1 + ... + n-1
		if got := sumWords(words); got != want {
			t.Errorf("sumWords(0..%d) = %d, want %d", n-1, got, want)
		}
	}
}

// TestMeasureBandwidthSanity checks only that results are positive, finite and physically
// plausible; it sets no speed threshold.
func TestMeasureBandwidthSanity(t *testing.T) {
	cases := []struct {
		name    string
		threads int
		bytes   int64
	}{
		{"one thread", 1, 64 << 20},
		{"two threads", 2, 64 << 20},
		{"default threads", 0, 32 << 20},
		{"tiny buffer", 3, 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gbps := MeasureBandwidth(tc.threads, tc.bytes)
			if math.IsNaN(gbps) || math.IsInf(gbps, 0) || gbps <= 0 || gbps > 1e5 {
				t.Fatalf("MeasureBandwidth(%d, %d) = %v GB/s, want a positive plausible figure", tc.threads, tc.bytes, gbps)
			}
			t.Logf("MeasureBandwidth(%d, %d) = %.1f GB/s", tc.threads, tc.bytes, gbps)
		})
	}
}

func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := PeakRSS(); err == nil {
			t.Fatalf("PeakRSS on %s returned no error", runtime.GOOS)
		}
		t.Skip("VmHWM exists only on Linux")
	}
	const touched = 96 << 20
	buf := make([]byte, touched)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	peak, err := PeakRSS()
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(buf)
	if peak < touched {
		t.Errorf("PeakRSS = %d bytes after touching %d bytes", peak, touched)
	}
	// getrusage's ru_maxrss (kB on Linux) is the kernel's other report of the same peak.
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	maxrss := usage.Maxrss * 1024
	if diff := math.Abs(float64(peak - maxrss)); diff > 0.1*float64(maxrss)+8<<20 {
		t.Errorf("PeakRSS = %d bytes, getrusage ru_maxrss = %d bytes: too far apart", peak, maxrss)
	}
}

func TestParseVmHWM(t *testing.T) {
	cases := []struct {
		name    string
		status  string
		want    int64
		wantErr string
	}{
		{"typical", "Name:\ttether\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 1000 kB\n", 12345 * 1024, ""},
		{"zero", "VmHWM:\t0 kB\n", 0, ""},
		{"missing", "Name:\ttether\nVmRSS:\t 1000 kB\n", 0, "not found"},
		{"wrong unit", "VmHWM:\t 12 MB\n", 0, "kB"},
		{"not a number", "VmHWM:\t lots kB\n", 0, "number"},
		{"negative", "VmHWM:\t -5 kB\n", 0, "non-negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseVmHWM(strings.NewReader(tc.status))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseVmHWM error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseVmHWM = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
