package steer

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLayers(t *testing.T) {
	tests := []struct {
		spec    string
		n       int
		want    []int
		wantErr string
	}{
		{"46:54", 64, []int{46, 47, 48, 49, 50, 51, 52, 53}, ""},
		{"10,12,14", 30, []int{10, 12, 14}, ""},
		{"14,10,12,12", 30, []int{10, 12, 14}, ""},
		{"2:5,8", 10, []int{2, 3, 4, 8}, ""},
		{"7:", 10, []int{7, 8, 9}, ""},
		{":3", 10, []int{0, 1, 2}, ""},
		{"0:10:3", 10, []int{0, 3, 6, 9}, ""},
		{"-1", 10, []int{9}, ""},
		{"-3:", 10, []int{7, 8, 9}, ""},
		{":-8", 10, []int{0, 1}, ""},
		{"-4:-1", 10, []int{6, 7, 8}, ""},
		{"0,-1", 10, []int{0, 9}, ""},
		{"-10", 10, []int{0}, ""},
		{" 3 , 4 ", 10, []int{3, 4}, ""},
		{"0:10", 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, ""},
		{"10", 10, nil, "out of range"},
		{"0:11", 10, nil, "out of range"},
		{"-11", 10, nil, "-10..-1 counting from the end"},
		{"5:5", 10, nil, "selects no layer"},
		{"6:2", 10, nil, "selects no layer"},
		{"", 10, nil, "empty selection"},
		{"3,,4", 10, nil, "empty item"},
		{"a", 10, nil, "not an integer"},
		{"1:2:3:4", 10, nil, "more than start:stop:step"},
		{"0:4:0", 10, nil, "positive integer"},
		{"1", 0, nil, "model has 0 layers"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseLayers(tc.spec, tc.n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseLayers(%q, %d) error %v, want one containing %q", tc.spec, tc.n, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("ParseLayers(%q, %d) = %v, want %v", tc.spec, tc.n, got, tc.want)
			}
			// FormatLayers writes something that parses back to the same set.
			back, err := ParseLayers(FormatLayers(got), tc.n)
			if err != nil || !slices.Equal(back, got) {
				t.Fatalf("FormatLayers(%v) = %q parses to %v, %v", got, FormatLayers(got), back, err)
			}
		})
	}
}
