package tokenizer

import (
	"encoding/json"
	"fmt"
)

// componentJSON holds any normalizer, pre-tokenizer, post-processor or
// decoder object of a tokenizer.json; which fields matter depends on Type.
type componentJSON struct {
	Type string `json:"type"`

	Normalizers   []componentJSON `json:"normalizers"`
	Pretokenizers []componentJSON `json:"pretokenizers"`
	Decoders      []componentJSON `json:"decoders"`
	Processors    []componentJSON `json:"processors"`

	Pattern  *patternJSON `json:"pattern"`
	Content  string       `json:"content"`
	Prepend  string       `json:"prepend"`
	Behavior string       `json:"behavior"`
	Invert   bool         `json:"invert"`

	AddPrefixSpace   *bool  `json:"add_prefix_space"`
	TrimOffsets      bool   `json:"trim_offsets"`
	UseRegex         *bool  `json:"use_regex"`
	IndividualDigits bool   `json:"individual_digits"`
	Replacement      string `json:"replacement"`
	PrependScheme    string `json:"prepend_scheme"`
	Split            *bool  `json:"split"`

	// Strip decoder / normalizer.
	Start      int  `json:"start"`
	Stop       int  `json:"stop"`
	StripLeft  bool `json:"strip_left"`
	StripRight bool `json:"strip_right"`

	// TemplateProcessing.
	Single        []templatePieceJSON         `json:"single"`
	Pair          []templatePieceJSON         `json:"pair"`
	SpecialTokens map[string]templateSpecJSON `json:"special_tokens"`

	// RobertaProcessing / BertProcessing: ["<s>", 0].
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
}

// metaspaceSettings are a Metaspace component's replacement (default
// U+2581) and prepend scheme: prepend_scheme, else "never" when
// add_prefix_space is false, else "always".
func (c *componentJSON) metaspaceSettings() (replacement, scheme string) {
	replacement, scheme = c.Replacement, c.PrependScheme
	if replacement == "" {
		replacement = "\u2581"
	}
	if scheme == "" {
		scheme = "always"
		if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
			scheme = "never"
		}
	}
	return replacement, scheme
}

// patternJSON is {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p *patternJSON) compile(field string) (matcher, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("%s: missing", field)
	case p.String != nil:
		return stringMatcher{*p.String}, nil
	case p.Regex != nil:
		m, err := compilePattern(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return m, nil
	default:
		return nil, fmt.Errorf("%s: expected {\"String\": ...} or {\"Regex\": ...}", field)
	}
}

type templatePieceJSON struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"Sequence"`
}

type templateSpecJSON struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

// addedTokenJSON is one entry of "added_tokens".
type addedTokenJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized bool    `json:"normalized"`
	Special    bool    `json:"special"`
}

// modelJSON is the "model" object apart from its vocabulary and merges,
// which are parsed by hand.
type modelJSON struct {
	Type                    string   `json:"type"`
	Dropout                 *float64 `json:"dropout"`
	UnkToken                *string  `json:"unk_token"`
	ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
	FuseUnk                 bool     `json:"fuse_unk"`
	ByteFallback            bool     `json:"byte_fallback"`
	IgnoreMerges            bool     `json:"ignore_merges"`
}
