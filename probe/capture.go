package probe

import (
	"context"
	"fmt"
	"slices"

	"tether/engine"
)

// DefaultCaptureMaxBytes bounds the residual-stream values one forward pass of Capture returns
// (batch x padded length x captured layers x hidden x 4 bytes).
const DefaultCaptureMaxBytes = 512 << 20

// CaptureOptions selects what Capture keeps.
type CaptureOptions struct {
	// Layers are the decoder blocks whose output is read (0-based), in the order results are
	// returned; nil means every layer.
	Layers []int
	// PerToken keeps every token of the span instead of the mean over it.
	PerToken bool
	// MaxBytes bounds the values one forward pass returns (DefaultCaptureMaxBytes when <= 0):
	// sequences are run in groups small enough, and a single sequence too long for all layers
	// at once is run several times, each for a group of layers.
	MaxBytes int64
}

// Activations are the residual stream read for a batch of sequences.
type Activations struct {
	// Layers are the captured layers; index l of the slices below is Layers[l].
	Layers []int
	// Mean[seq][l] is the mean over the sequence's span [HiddenSize] (nil with PerToken). A
	// sequence whose span is empty has zero vectors and Count 0.
	Mean [][][]float32
	// Tokens[seq][l][pos] is the residual stream at position Start+pos (only with PerToken).
	Tokens [][][][]float32
	// Count[seq] is the number of span tokens.
	Count []int
}

// Capture runs the engine over whole sequences and reads the residual stream after the chosen
// blocks at the positions of each sequence's span, reduced to their mean (accumulated in float64)
// or kept per token. Only the requested layers are captured; the rest of the stream is never
// copied out of the engine.
func Capture(ctx context.Context, m *engine.Model, seqs []Span, opts CaptureOptions) (*Activations, error) {
	cfg := m.Config()
	layers := opts.Layers
	if layers == nil {
		layers = make([]int, cfg.NumLayers)
		for i := range layers {
			layers[i] = i
		}
	}
	seen := map[int]bool{}
	for _, l := range layers {
		if l < 0 || l >= cfg.NumLayers {
			return nil, fmt.Errorf("probe: capture: layer %d out of range (the model has %d layers, 0..%d)", l, cfg.NumLayers, cfg.NumLayers-1)
		}
		if seen[l] {
			return nil, fmt.Errorf("probe: capture: layer %d listed twice", l)
		}
		seen[l] = true
	}
	if len(layers) == 0 {
		return nil, fmt.Errorf("probe: capture: no layers requested")
	}
	for i, s := range seqs {
		if len(s.Tokens) == 0 {
			return nil, fmt.Errorf("probe: capture: sequence %d is empty", i)
		}
		if s.Start < 0 || s.End > len(s.Tokens) || s.Start > s.End {
			return nil, fmt.Errorf("probe: capture: sequence %d: span [%d, %d) outside its %d tokens", i, s.Start, s.End, len(s.Tokens))
		}
	}
	maxBytes := opts.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultCaptureMaxBytes
	}
	hidden := cfg.HiddenSize
	out := &Activations{Layers: slices.Clone(layers), Count: make([]int, len(seqs))}
	if opts.PerToken {
		out.Tokens = make([][][][]float32, len(seqs))
	} else {
		out.Mean = make([][][]float32, len(seqs))
	}
	for i, s := range seqs {
		out.Count[i] = s.Len()
		if opts.PerToken {
			out.Tokens[i] = make([][][]float32, len(layers))
		} else {
			out.Mean[i] = make([][]float32, len(layers))
			for l := range layers {
				out.Mean[i][l] = make([]float32, hidden)
			}
		}
	}

	bytesPer := func(seqLen, nLayers, nSeqs int) int64 {
		// The engine pads to a multiple of 8.
		padded := (seqLen + 7) / 8 * 8
		return int64(padded) * int64(nLayers) * int64(hidden) * 4 * int64(nSeqs)
	}
	for lo := 0; lo < len(seqs); {
		// Grow the group while its padded capture fits.
		hi, longest := lo+1, len(seqs[lo].Tokens)
		for hi < len(seqs) {
			l := max(longest, len(seqs[hi].Tokens))
			if bytesPer(l, len(layers), hi+1-lo) > maxBytes {
				break
			}
			longest = l
			hi++
		}
		// Layers per pass: all when they fit, else as many as fit (at least one).
		perPass := len(layers)
		for perPass > 1 && bytesPer(longest, perPass, hi-lo) > maxBytes {
			perPass--
		}
		group := seqs[lo:hi]
		tokens := make([][]int, len(group))
		for i, s := range group {
			tokens[i] = s.Tokens
		}
		for l0 := 0; l0 < len(layers); l0 += perPass {
			l1 := min(l0+perPass, len(layers))
			res, err := m.Forward(ctx, tokens, engine.ForwardOptions{CaptureLayers: layers[l0:l1]})
			if err != nil {
				return nil, fmt.Errorf("probe: capture: forward over sequences %d..%d: %w", lo, hi-1, err)
			}
			for li := l0; li < l1; li++ {
				layer := layers[li]
				byLayer, ok := res.Captured[layer]
				if !ok || len(byLayer) != len(group) {
					return nil, fmt.Errorf("probe: capture: the engine returned no capture of layer %d for %d sequences", layer, len(group))
				}
				for gi, s := range group {
					seqIdx := lo + gi
					states := byLayer[gi]
					if len(states) < s.End {
						return nil, fmt.Errorf("probe: capture: layer %d sequence %d: %d positions captured, want %d", layer, seqIdx, len(states), len(s.Tokens))
					}
					if opts.PerToken {
						rows := make([][]float32, s.Len())
						for p := range rows {
							rows[p] = slices.Clone(states[s.Start+p])
						}
						out.Tokens[seqIdx][li] = rows
						continue
					}
					meanInto(out.Mean[seqIdx][li], states[s.Start:s.End])
				}
			}
		}
		lo = hi
	}
	return out, nil
}

// meanInto writes the mean of rows into dst, accumulating in float64; with no rows dst stays zero.
func meanInto(dst []float32, rows [][]float32) {
	if len(rows) == 0 {
		return
	}
	acc := make([]float64, len(dst))
	for _, r := range rows {
		for j, v := range r {
			acc[j] += float64(v)
		}
	}
	n := float64(len(rows))
	for j := range dst {
		dst[j] = float32(acc[j] / n)
	}
}
