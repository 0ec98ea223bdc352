package pjrt

import (
	"maps"
	"testing"
)

func TestSplitClientOptions(t *testing.T) {
	for _, tc := range []struct {
		opts, rest string
		client     map[string]any
		bad        bool
	}{
		{opts: "", rest: ""},
		{opts: ",shared_buffers,tf32", rest: ",shared_buffers,tf32"},
		{opts: ",memory_fraction=0.9", client: map[string]any{"memory_fraction": float32(0.9)}},
		{opts: ",tf32,preallocate=false,memory_fraction=1", rest: ",tf32", client: map[string]any{"preallocate": false, "memory_fraction": float32(1)}},
		{opts: ",memory_fraction=0", bad: true},
		{opts: ",memory_fraction=1.5", bad: true},
		{opts: ",memory_fraction", bad: true},
		{opts: ",preallocate=maybe", bad: true},
	} {
		rest, client, err := splitClientOptions(tc.opts)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: expected an error", tc.opts)
			}
			continue
		}
		if err != nil || rest != tc.rest || !maps.Equal(client, tc.client) {
			t.Errorf("%q: got %q %v %v, want %q %v", tc.opts, rest, client, err, tc.rest, tc.client)
		}
	}
}
