package bench

import (
	"math"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestMeasureVectorBandwidthSanity checks only that results are positive, finite, physically
// plausible and ordered (min <= median <= max); it sets no speed threshold.
func TestMeasureVectorBandwidthSanity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bytes  int64
		passes int
	}{
		{"32 MiB, 3 passes", 32 << 20, 3},
		{"odd size, 1 pass", 1<<20 + 77, 1},
		{"passes 0 means 1", 4 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := MeasureVectorBandwidth(tc.bytes, tc.passes)
			for _, v := range []float64{s.Min, s.Median, s.Max} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 || v > 1e5 {
					t.Fatalf("MeasureVectorBandwidth(%d, %d) = %+v GB/s, want positive plausible figures", tc.bytes, tc.passes, s)
				}
			}
			if s.Min > s.Median || s.Median > s.Max || s.Passes != max(tc.passes, 1) {
				t.Errorf("MeasureVectorBandwidth(%d, %d) = %+v: want min <= median <= max and %d passes", tc.bytes, tc.passes, s, max(tc.passes, 1))
			}
		})
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{2, 2, 9, 2}, 2},
	} {
		in := append([]float64(nil), c.xs...)
		if got := median(c.xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
		for i := range in {
			if in[i] != c.xs[i] {
				t.Errorf("median reordered its input: %v, was %v", c.xs, in)
			}
		}
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
