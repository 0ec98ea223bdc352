package tokenizer

import (
	"encoding/json"
	"fmt"
)

// postProcessor adds the special tokens of a single sequence (the
// "post_processor" of tokenizer.json), used when Encode's addSpecial is set.
type postProcessor interface {
	process(ids []int) []int
}

// templateProcessor is TemplateProcessing's "single" template.
type templateProcessor struct {
	before, after []int // ids around the sequence
}

func (p templateProcessor) process(ids []int) []int {
	out := make([]int, 0, len(p.before)+len(ids)+len(p.after))
	out = append(out, p.before...)
	out = append(out, ids...)
	return append(out, p.after...)
}

type postProcessorSeq []postProcessor

func (s postProcessorSeq) process(ids []int) []int {
	for _, p := range s {
		ids = p.process(ids)
	}
	return ids
}

// buildPostProcessor turns the "post_processor" JSON object into a
// postProcessor (nil when it adds no ids).
func buildPostProcessor(c *componentJSON, field string) (postProcessor, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq postProcessorSeq
		for i := range c.Processors {
			p, err := buildPostProcessor(&c.Processors[i], fmt.Sprintf("%s.processors[%d]", field, i))
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		if len(seq) == 0 {
			return nil, nil
		}
		return seq, nil
	case "ByteLevel":
		return nil, nil // only adjusts offsets
	case "TemplateProcessing":
		var p templateProcessor
		seenSeq := false
		for i, pc := range c.Single {
			switch {
			case pc.Sequence != nil:
				if seenSeq {
					return nil, fmt.Errorf("%s.single[%d]: a second sequence in a single template", field, i)
				}
				seenSeq = true
			case pc.SpecialToken != nil:
				spec, ok := c.SpecialTokens[pc.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%s.single[%d]: special token %q is not in special_tokens", field, i, pc.SpecialToken.ID)
				}
				if seenSeq {
					p.after = append(p.after, spec.IDs...)
				} else {
					p.before = append(p.before, spec.IDs...)
				}
			default:
				return nil, fmt.Errorf("%s.single[%d]: expected SpecialToken or Sequence", field, i)
			}
		}
		if !seenSeq {
			return nil, fmt.Errorf("%s.single: no Sequence piece", field)
		}
		return p, nil
	case "RobertaProcessing", "BertProcessing":
		cls, err := tokenIDPair(c.Cls, field+".cls")
		if err != nil {
			return nil, err
		}
		sep, err := tokenIDPair(c.Sep, field+".sep")
		if err != nil {
			return nil, err
		}
		return templateProcessor{before: []int{cls}, after: []int{sep}}, nil
	case "":
		return nil, fmt.Errorf("%s: missing \"type\"", field)
	default:
		return nil, fmt.Errorf("%s: unsupported post-processor type %q (supported: Sequence, ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing)", field, c.Type)
	}
}

// tokenIDPair reads the id of a ["<s>", 0] pair.
func tokenIDPair(raw []json.RawMessage, field string) (int, error) {
	if len(raw) != 2 {
		return 0, fmt.Errorf("%s: expected [token, id]", field)
	}
	var id int
	if err := json.Unmarshal(raw[1], &id); err != nil {
		return 0, fmt.Errorf("%s: expected [token, id]: %w", field, err)
	}
	return id, nil
}
