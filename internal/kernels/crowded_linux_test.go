package kernels

import "testing"

// TestRunningThreads checks the parsing of /proc/loadavg's running count.
func TestRunningThreads(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"0.52 0.58 0.59 3/467 12345\n", 3, true},
		{"10.00 9.00 8.00 17/1024 99", 17, true},
		{"0.52 0.58 0.59", 0, false},
		{"0.52 0.58 0.59 x/467 1", 0, false},
		{"0.52 0.58 0.59 3467 1", 0, false},
		{"", 0, false},
	} {
		got, ok := runningThreads([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("runningThreads(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
