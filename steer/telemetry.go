package steer

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"tether/engine"
	"tether/internal/atomicfile"
)

// TelemetryRecord is what happened at one generated token on one recorded
// layer; its JSON form is one line of a --telemetry file.
//
// A layer's record is along its reported direction: the projection axis
// (Setup.Axis: the --axis file, or a server request's projections.axis) at
// that layer, or without one (Plan.Monitor unset) the direction of the
// layer's first cap, else of its first ablation. On a layer with caps or
// ablations along other axes only, the projection on the reported direction
// is still recorded (the interventions there may move it), never as capped.
type TelemetryRecord struct {
	Token int `json:"token"` // index of the generated token (0 = first new token)
	Layer int `json:"layer"`
	// Before is the projection on the layer's reported direction (unit)
	// after the layer's adds, before any of its caps and ablations acted;
	// After is the projection after the whole hook (every add, cap and
	// ablation of the layer).
	Before float32 `json:"before"`
	After  float32 `json:"after"`
	// Capped reports whether a cap along the reported direction acted on the
	// layer (the projection it met was below its tau). It is false for
	// ablations, monitors and caps along other axes.
	Capped bool `json:"capped"`
}

// Telemetry extracts the records of one generation result, token by token
// and layer by layer. The engine records, for generated token i, the
// position whose logits produced it (the previous token's position; the last
// prompt position for token 0).
func (c *Compiled) Telemetry(r engine.Result) []TelemetryRecord {
	layers := c.RecordedLayers()
	var out []TelemetryRecord
	for i, perLayer := range r.Telemetry {
		for _, layer := range layers {
			rec, ok := perLayer[layer]
			if !ok || len(rec.Before) == 0 {
				continue
			}
			capped := false
			for _, k := range c.slots[layer].caps {
				capped = capped || (k < len(rec.Acted) && rec.Acted[k])
			}
			out = append(out, TelemetryRecord{Token: i, Layer: layer, Before: rec.Before[0], After: rec.After[0], Capped: capped})
		}
	}
	return out
}

// Summary condenses telemetry for one answer.
type Summary struct {
	Tokens int // generated tokens with telemetry
	// CappedTokens counts tokens where a cap acted on at least one layer
	// (Capped: a cap along the layer's reported direction).
	CappedTokens int
	// CappedFraction is CappedTokens / Tokens (0 without tokens).
	CappedFraction float64
	// MeanBefore and MeanAfter are the mean projections at the summary's
	// layer over the tokens (NaN when the layer was not recorded).
	Layer                 int
	MeanBefore, MeanAfter float64
}

// Summarize computes the capped fraction over every recorded layer and the
// mean projection at layer.
func Summarize(recs []TelemetryRecord, layer int) Summary {
	s := Summary{Layer: layer}
	capped := map[int]bool{}
	tokens := map[int]bool{}
	var sumB, sumA float64
	n := 0
	for _, r := range recs {
		tokens[r.Token] = true
		if r.Capped {
			capped[r.Token] = true
		}
		if r.Layer == layer {
			sumB += float64(r.Before)
			sumA += float64(r.After)
			n++
		}
	}
	s.Tokens, s.CappedTokens = len(tokens), len(capped)
	if s.Tokens > 0 {
		s.CappedFraction = float64(s.CappedTokens) / float64(s.Tokens)
	}
	s.MeanBefore, s.MeanAfter = nan(), nan()
	if n > 0 {
		s.MeanBefore, s.MeanAfter = sumB/float64(n), sumA/float64(n)
	}
	return s
}

// WriteTelemetryJSONL writes one JSON object per record and line.
func WriteTelemetryJSONL(w io.Writer, recs []TelemetryRecord) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteTelemetryFile writes recs as JSONL to path atomically: to a temporary
// file in the same directory, synced, then renamed over path.
func WriteTelemetryFile(path string, recs []TelemetryRecord) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteTelemetryJSONL(w, recs) })
}

// WriteFileAtomic writes a file through a temporary sibling (synced) and a
// rename, so a reader never sees a partial file.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	if err := atomicfile.WriteFunc(path, write); err != nil {
		return fmt.Errorf("steer: %w", err)
	}
	return nil
}

func nan() float64 { return math.NaN() }
