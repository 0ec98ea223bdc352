package steer

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ParseLayers parses a layer selection for a model with numLayers decoder
// blocks. The syntax follows the reference project's Python slices and
// lists, combined with commas:
//
//	"46:54"     layers 46 to 53 (the end is exclusive)
//	"10,12,14"  those layers
//	"20:"       layers 20 to numLayers-1;  ":4" layers 0 to 3
//	"0:30:2"    every second layer from 0 to 28
//	"-1"        the last layer: negative indices count from the end, as
//	            in Python ("-8:" the last 8 layers, ":-1" all but the last)
//
// The result is sorted and free of duplicates. Every index must lie within
// the model (no silent clipping), and an empty selection is an error.
func ParseLayers(spec string, numLayers int) ([]int, error) {
	if numLayers <= 0 {
		return nil, fmt.Errorf("steer: layers %q: model has %d layers", spec, numLayers)
	}
	if strings.TrimSpace(spec) == "" {
		return nil, fmt.Errorf("steer: layers: empty selection, expected e.g. \"46:54\" or \"10,12,14\"")
	}
	var out []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("steer: layers %q: empty item between commas", spec)
		}
		if !strings.Contains(part, ":") {
			i, err := layerIndex(part, numLayers, false)
			if err != nil {
				return nil, fmt.Errorf("steer: layers %q: %w", spec, err)
			}
			out = append(out, i)
			continue
		}
		fields := strings.Split(part, ":")
		if len(fields) > 3 {
			return nil, fmt.Errorf("steer: layers %q: slice %q has more than start:stop:step", spec, part)
		}
		start, stop, step := 0, numLayers, 1
		var err error
		if f := strings.TrimSpace(fields[0]); f != "" {
			if start, err = layerIndex(f, numLayers, false); err != nil {
				return nil, fmt.Errorf("steer: layers %q: slice start: %w", spec, err)
			}
		}
		if f := strings.TrimSpace(fields[1]); f != "" {
			if stop, err = layerIndex(f, numLayers, true); err != nil {
				return nil, fmt.Errorf("steer: layers %q: slice stop: %w", spec, err)
			}
		}
		if len(fields) == 3 {
			if f := strings.TrimSpace(fields[2]); f != "" {
				if step, err = strconv.Atoi(f); err != nil || step <= 0 {
					return nil, fmt.Errorf("steer: layers %q: slice step %q: expected a positive integer", spec, f)
				}
			}
		}
		if start >= stop {
			return nil, fmt.Errorf("steer: layers %q: slice %q selects no layer (start %d >= stop %d; the stop is exclusive)", spec, part, start, stop)
		}
		for i := start; i < stop; i += step {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// layerIndex parses one index; a slice stop may equal numLayers.
func layerIndex(s string, numLayers int, isStop bool) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer layer index", s)
	}
	if i < 0 {
		i += numLayers
	}
	limit := numLayers - 1
	if isStop {
		limit = numLayers
	}
	if i < 0 || i > limit {
		return 0, fmt.Errorf("layer %s out of range: the model has %d layers (0..%d, or -%d..-1 counting from the end)", s, numLayers, numLayers-1, numLayers)
	}
	return i, nil
}

// FormatLayers writes layers compactly in ParseLayers syntax, runs of
// consecutive layers as slices ("2:5,8").
func FormatLayers(layers []int) string {
	var parts []string
	for i := 0; i < len(layers); {
		j := i
		for j+1 < len(layers) && layers[j+1] == layers[j]+1 {
			j++
		}
		if j-i >= 2 {
			parts = append(parts, fmt.Sprintf("%d:%d", layers[i], layers[j]+1))
		} else {
			for k := i; k <= j; k++ {
				parts = append(parts, strconv.Itoa(layers[k]))
			}
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}
