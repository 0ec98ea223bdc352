package pjrt

import (
	"fmt"
	"strconv"
	"strings"
)

// splitClientOptions takes the ",<options>" part of an "xla:<plugin>,<options>"
// backend name and separates the PJRT client options the engine understands
// from the options left for GoMLX's XLA backend (shared_buffers, tf32, ...):
//
//   - memory_fraction=F (0 < F <= 1): the share of GPU memory XLA's CUDA
//     client may use (XLA's default is 0.75);
//   - preallocate=true|false: whether that share is reserved at start-up.
//
// rest keeps the other options with their leading commas.
func splitClientOptions(opts string) (rest string, client map[string]any, err error) {
	for _, o := range strings.Split(opts, ",") {
		if o == "" {
			continue
		}
		key, val, hasVal := strings.Cut(o, "=")
		switch key {
		case "memory_fraction":
			f, perr := strconv.ParseFloat(val, 32)
			if !hasVal || perr != nil || f <= 0 || f > 1 {
				return "", nil, fmt.Errorf("pjrt: backend option %q: memory_fraction wants a number in (0, 1], e.g. memory_fraction=0.9", o)
			}
			if client == nil {
				client = map[string]any{}
			}
			client["memory_fraction"] = float32(f)
		case "preallocate":
			b, perr := strconv.ParseBool(val)
			if !hasVal || perr != nil {
				return "", nil, fmt.Errorf("pjrt: backend option %q: preallocate wants true or false", o)
			}
			if client == nil {
				client = map[string]any{}
			}
			client["preallocate"] = b
		default:
			rest += "," + o
		}
	}
	return rest, client, nil
}

// DefaultMemoryFraction is the share of GPU memory XLA's CUDA client uses
// when the backend name sets no memory_fraction.
const DefaultMemoryFraction = 0.75

// MemoryFraction returns the share of GPU memory the XLA backend config
// ("cuda,memory_fraction=0.9,...", the part after "xla:") lets XLA use:
// its memory_fraction option, or DefaultMemoryFraction.
func MemoryFraction(config string) (float64, error) {
	_, opts, _ := strings.Cut(config, ",")
	_, client, err := splitClientOptions(opts)
	if err != nil {
		return 0, err
	}
	if f, ok := client["memory_fraction"].(float32); ok {
		return float64(f), nil
	}
	return DefaultMemoryFraction, nil
}
