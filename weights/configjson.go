package weights

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
)

// jsonObject is a decoded config.json object whose values are decoded on
// demand, so that absent keys, nulls and wrong types can be told apart.
type jsonObject struct {
	source string
	fields map[string]json.RawMessage
}

// parseJSONObject decodes data as one JSON object.
func parseJSONObject(data []byte, source string) (*jsonObject, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("weights: %s: expected a JSON object: %w", source, err)
	}
	if fields == nil {
		return nil, fmt.Errorf("weights: %s: expected a JSON object, got null", source)
	}
	return &jsonObject{source: source, fields: fields}, nil
}

// isNull reports whether a raw value is JSON null.
func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// has reports whether key is present and not null.
func (o *jsonObject) has(key string) bool {
	raw, ok := o.fields[key]
	return ok && !isNull(raw)
}

// present reports whether key is present (possibly null).
func (o *jsonObject) present(key string) bool {
	_, ok := o.fields[key]
	return ok
}

// fieldErr formats an error about one field.
func (o *jsonObject) fieldErr(key, expected string, err error) error {
	if err != nil {
		return fmt.Errorf("weights: %s: field %q: expected %s: %w", o.source, key, expected, err)
	}
	return fmt.Errorf("weights: %s: field %q: expected %s", o.source, key, expected)
}

// float returns key as a number, or def when absent or null.
func (o *jsonObject) float(key string, def float64) (float64, error) {
	if !o.has(key) {
		return def, nil
	}
	var v float64
	if err := json.Unmarshal(o.fields[key], &v); err != nil {
		return 0, o.fieldErr(key, "a number", err)
	}
	return v, nil
}

// int returns key as an integer (a number with no fraction), or def when
// absent or null.
func (o *jsonObject) int(key string, def int) (int, error) {
	if !o.has(key) {
		return def, nil
	}
	var v float64
	if err := json.Unmarshal(o.fields[key], &v); err != nil || v != math.Trunc(v) || math.Abs(v) > 1<<53 {
		return 0, o.fieldErr(key, "an integer", err)
	}
	return int(v), nil
}

// bool returns key as a boolean, or def when absent or null.
func (o *jsonObject) bool(key string, def bool) (bool, error) {
	if !o.has(key) {
		return def, nil
	}
	var v bool
	if err := json.Unmarshal(o.fields[key], &v); err != nil {
		return false, o.fieldErr(key, "true or false", err)
	}
	return v, nil
}

// string returns key as a string, or def when absent or null.
func (o *jsonObject) string(key string, def string) (string, error) {
	if !o.has(key) {
		return def, nil
	}
	var v string
	if err := json.Unmarshal(o.fields[key], &v); err != nil {
		return "", o.fieldErr(key, "a string", err)
	}
	return v, nil
}

// ints returns key as an integer or a list of integers (eos_token_id): def
// when absent, nil when null (None in transformers).
func (o *jsonObject) ints(key string, def []int) ([]int, error) {
	if !o.present(key) {
		return def, nil
	}
	if !o.has(key) {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(o.fields[key], &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(o.fields[key], &many); err != nil {
		return nil, o.fieldErr(key, "an integer or a list of integers", err)
	}
	return many, nil
}

// object returns key as a nested object, or nil when absent or null.
func (o *jsonObject) object(key string) (*jsonObject, error) {
	if !o.has(key) {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(o.fields[key], &fields); err != nil {
		return nil, o.fieldErr(key, "an object", err)
	}
	return &jsonObject{source: o.source + ": " + key, fields: fields}, nil
}

// strings returns key as a list of strings, or nil when absent or null.
func (o *jsonObject) strings(key string) ([]string, error) {
	if !o.has(key) {
		return nil, nil
	}
	var v []string
	if err := json.Unmarshal(o.fields[key], &v); err != nil {
		return nil, o.fieldErr(key, "a list of strings", err)
	}
	return v, nil
}
