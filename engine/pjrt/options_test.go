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

func TestMemoryFraction(t *testing.T) {
	for _, tc := range []struct {
		config string
		want   float64
		bad    bool
	}{
		{config: "cuda", want: DefaultMemoryFraction},
		{config: "cuda,tf32", want: DefaultMemoryFraction},
		{config: "cuda,tf32,memory_fraction=0.5", want: 0.5},
		{config: "/p/plugin.so,memory_fraction=1", want: 1},
		{config: "cuda,memory_fraction=2", bad: true},
	} {
		got, err := MemoryFraction(tc.config)
		if tc.bad {
			if err == nil {
				t.Errorf("MemoryFraction(%q): expected an error", tc.config)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MemoryFraction(%q) = %v, %v; want %v", tc.config, got, err, tc.want)
		}
	}
}
