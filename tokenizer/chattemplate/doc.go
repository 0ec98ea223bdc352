// Package chattemplate renders conversations with a model's Jinja chat
// template exactly as Python's transformers (apply_chat_template, jinja2)
// does: Template parses a template once (New, NewFile) and renders
// []tokenizer.Message with Options (add_generation_prompt, the special
// tokens, enable_thinking, extra variables); OptionsFor takes the special
// tokens from a tokenizer_config.json.
//
// It is a compatibility layer over gonja, a Go Jinja engine: templates are
// rewritten at parse time where gonja does not parse what jinja2 does
// (rewrite*.go), Python's str and dict methods, tojson and repr are
// reimplemented (builtins.go, json.go, pyrepr.go, strftime.go), and
// rendering is bounded in steps, depth and output like transformers'
// sandbox (limits.go). testdata/gen.py renders the fixtures with jinja2.
package chattemplate
