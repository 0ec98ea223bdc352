package bench

import (
	"strings"
	"testing"
)

// TestCapFindingStatesTolerance: the cap-check finding names the tolerance
// of the check, so a slightly negative smallest margin (float32 rounding)
// reads as held within it, and a failed check says beyond it.
func TestCapFindingStatesTolerance(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check CapCheck
		want  string
	}{
		{"held", CapCheck{Tokens: 40, Held: true, MinMargin: -2.98e-7}, "held >= tau [0.5], within float32 rounding (tolerance 0.0001 x max(|tau|, 1))"},
		{"violated", CapCheck{Tokens: 40, Violations: 3, MinMargin: -0.25}, "fell below tau [0.5], beyond float32 rounding (tolerance 0.0001 x max(|tau|, 1)), on 3 of 40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &DriftReport{CapCheck: tc.check, Settings: DriftSettings{CapTaus: []float32{0.5}, CapLayers: []int{2}}}
			all := strings.Join(DriftFindings(rep), "\n")
			if !strings.Contains(all, tc.want) {
				t.Fatalf("findings %q lack %q", all, tc.want)
			}
		})
	}
}
