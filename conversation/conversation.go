// Package conversation reads conversation files, the one format that
// `tether chat --script`, `tether project --conversation`, `tether template
// --messages` and the drift benchmark's scenarios (bench/scenarios) share.
//
// A conversation file is JSON, OpenAI-style messages:
//
//	[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
//
// or an object holding them under "messages", with optional metadata (the
// drift benchmark's scenarios use it; other commands ignore it):
//
//	{"id": "coding-01", "domain": "coding", "persona": "...", "topic": "...",
//	 "messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}]}
//
// A file may also hold a list of such objects (several conversations; only
// the scenarios directory takes them). "conversation" is read as a synonym of
// "messages", so the assistant-axis reference project's transcripts and
// tether's earlier project and scenario files are read unchanged. Every
// message needs "role" (a non-empty string) and "content" (a string); other
// fields, of messages and of the object, are ignored. Errors name the file,
// the message's index and the field.
//
// What a command needs beyond the format (which roles, a system message only
// first, at least one user or assistant message) is a Rules value, checked by
// Conversation.Check or ReadChecked. docs/conversations.md is the user's
// description.
package conversation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"tether/tokenizer"
)

// Roles of the messages tether's conversations are made of.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Conversation is one conversation read from a file.
type Conversation struct {
	// Messages are the conversation's messages, in order.
	Messages []tokenizer.Message
	// ID, Domain, Persona and Topic are the object's optional metadata
	// ("id", "domain", "persona", "topic"), trimmed of surrounding space.
	ID, Domain, Persona, Topic string
	// File names the source in errors.
	File string
	// Index is the conversation's position in a file holding a list of
	// conversations, -1 in a file holding one.
	Index int
	// key is where the messages stood ("messages", "conversation", or ""
	// for a plain list), to name fields in errors as the file spells them.
	key string
}

// Field returns the JSON path of field name ("role", "content") of message
// i as the file spells it, e.g. `messages[2].role` or `[1].conversation[0].content`.
func (c *Conversation) Field(i int, name string) string {
	var b strings.Builder
	if c.Index >= 0 {
		fmt.Fprintf(&b, "[%d]", c.Index)
		if c.key != "" {
			b.WriteByte('.')
		}
	}
	fmt.Fprintf(&b, "%s[%d].%s", c.key, i, name)
	return b.String()
}

// where names the conversation in errors: the file, and the conversation's
// index when the file holds several.
func (c *Conversation) where() string {
	if c.Index >= 0 {
		return fmt.Sprintf("%s: conversation %d", c.File, c.Index)
	}
	return c.File
}

// Errorf returns an error about field name of message i, naming the file,
// the message and the field: `FILE: message I: field "PATH": <text>`.
func (c *Conversation) Errorf(i int, name, format string, args ...any) error {
	return fmt.Errorf("%s: message %d: field %q: %s", c.where(), i, c.Field(i, name), fmt.Sprintf(format, args...))
}

// Fail returns an error about the whole conversation, naming the file (and
// the conversation's index when the file holds several).
func (c *Conversation) Fail(format string, args ...any) error {
	return fmt.Errorf("%s: %s", c.where(), fmt.Sprintf(format, args...))
}

// Rules are what a command needs of a conversation besides its format.
// Every rule set allows only the roles system, user and assistant (the
// reader itself accepts any role, because some chat templates take others,
// such as tool).
type Rules struct {
	// Need is a role of which the conversation must hold at least one
	// message; Purpose says in the error what it is for ("to replay").
	Need, Purpose string
	// SystemFirst refuses a system message anywhere but first.
	SystemFirst bool
	// NonEmptyNeed refuses a message of role Need whose content is only
	// white space.
	NonEmptyNeed bool
}

// Check reports the first message that breaks the rules, naming its index
// and field, or a conversation without a message of role r.Need.
func (c *Conversation) Check(r Rules) error {
	for i, m := range c.Messages {
		switch m.Role {
		case RoleSystem, RoleUser, RoleAssistant:
		default:
			return c.Errorf(i, "role", "role %q: expected %q, %q or %q", m.Role, RoleSystem, RoleUser, RoleAssistant)
		}
		if r.SystemFirst && m.Role == RoleSystem && i != 0 {
			return c.Errorf(i, "role", "a system message may only come first")
		}
		if r.NonEmptyNeed && m.Role == r.Need && strings.TrimSpace(m.Content) == "" {
			return c.Errorf(i, "content", "empty %s message", m.Role)
		}
	}
	if r.Need != "" && c.Count(r.Need) == 0 {
		return c.Fail("no %s message %s", r.Need, r.Purpose)
	}
	return nil
}

// Count returns the number of messages with the given role.
func (c *Conversation) Count(role string) int {
	n := 0
	for _, m := range c.Messages {
		if m.Role == role {
			n++
		}
	}
	return n
}

// ReadFile reads every conversation of a file.
func ReadFile(path string) ([]Conversation, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("conversation: %w", err)
	}
	return Parse(data, path)
}

// ReadOne reads a file that holds exactly one conversation.
func ReadOne(path string) (Conversation, error) {
	cs, err := ReadFile(path)
	if err != nil {
		return Conversation{}, err
	}
	if len(cs) != 1 {
		return Conversation{}, fmt.Errorf("conversation: %s: holds %d conversations, expected one (a list of messages or one object with \"messages\")", path, len(cs))
	}
	return cs[0], nil
}

// ReadChecked reads a file holding one conversation that keeps the rules r.
func ReadChecked(path string, r Rules) (Conversation, error) {
	c, err := ReadOne(path)
	if err != nil {
		return Conversation{}, err
	}
	if err := c.Check(r); err != nil {
		return Conversation{}, fmt.Errorf("conversation: %w", err)
	}
	return c, nil
}

// formatHint says what a conversation file holds, for errors.
const formatHint = `expected a JSON list of {"role", "content"} messages, an object with "messages" (or "conversation"), or a list of such objects`

// Parse reads the conversations of one file's contents; file names it in
// errors.
func Parse(data []byte, file string) ([]Conversation, error) {
	cs, err := parse(data, file)
	if err != nil {
		return nil, fmt.Errorf("conversation: %w", err)
	}
	return cs, nil
}

// parse is Parse without the package's prefix on errors.
func parse(data []byte, file string) ([]Conversation, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: empty file: %s", file, formatHint)
	}
	switch data[0] {
	case '{':
		c, err := parseObject(data, file, -1)
		if err != nil {
			return nil, err
		}
		return []Conversation{c}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(data, &items); err != nil {
			return nil, fmt.Errorf("%s: not valid JSON: %s: %v", file, formatHint, err)
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("%s: empty array: expected at least one message", file)
		}
		if !isConversationObject(items[0]) {
			c := Conversation{File: file, Index: -1}
			if err := c.parseMessages(items); err != nil {
				return nil, err
			}
			return []Conversation{c}, nil
		}
		out := make([]Conversation, len(items))
		for i, item := range items {
			c, err := parseObject(item, file, i)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	}
	if json.Valid(data) {
		return nil, fmt.Errorf("%s: a JSON %s: %s", file, jsonKind(data[0]), formatHint)
	}
	return nil, fmt.Errorf("%s: not JSON: %s", file, formatHint)
}

// jsonKind names the kind of JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// isConversationObject reports whether a list item is a conversation object
// (it has "messages" or "conversation") rather than a message.
func isConversationObject(item json.RawMessage) bool {
	var probe map[string]json.RawMessage
	if json.Unmarshal(item, &probe) != nil {
		return false
	}
	_, m := probe["messages"]
	_, c := probe["conversation"]
	return m || c
}

// object is a conversation object as the file holds it.
type object struct {
	ID           *string           `json:"id"`
	Domain       *string           `json:"domain"`
	Persona      *string           `json:"persona"`
	Topic        *string           `json:"topic"`
	Messages     []json.RawMessage `json:"messages"`
	Conversation []json.RawMessage `json:"conversation"`
}

// parseObject reads one conversation object; index is its position in a
// list of conversations, -1 for a file holding one.
func parseObject(data []byte, file string, index int) (Conversation, error) {
	c := Conversation{File: file, Index: index}
	var obj object
	if err := json.Unmarshal(data, &obj); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return c, c.Fail("field %q: expected %s, got a JSON %s", te.Field, expectedType(te.Field), te.Value)
		}
		return c, c.Fail("not valid JSON: %s: %v", formatHint, err)
	}
	items := obj.Messages
	c.key = "messages"
	switch {
	case obj.Messages != nil && obj.Conversation != nil:
		return c, c.Fail(`both "messages" and "conversation": expected one list of messages`)
	case obj.Conversation != nil:
		items, c.key = obj.Conversation, "conversation"
	case obj.Messages == nil:
		return c, c.Fail(`field "messages": missing: expected a list of {"role", "content"} messages (or "conversation", as in the reference project's transcripts)`)
	}
	if len(items) == 0 {
		return c, c.Fail("field %q: empty: expected at least one message", c.key)
	}
	for _, f := range []struct {
		dst *string
		src *string
	}{{&c.ID, obj.ID}, {&c.Domain, obj.Domain}, {&c.Persona, obj.Persona}, {&c.Topic, obj.Topic}} {
		if f.src != nil {
			*f.dst = strings.TrimSpace(*f.src)
		}
	}
	return c, c.parseMessages(items)
}

// expectedType describes what an object field holds, for type errors.
func expectedType(field string) string {
	if field == "messages" || field == "conversation" {
		return `a list of {"role", "content"} messages`
	}
	return "a string"
}

// message is one message as the file holds it.
type message struct {
	Role    *string `json:"role"`
	Content *string `json:"content"`
}

// parseMessages reads the messages of c from their JSON items.
func (c *Conversation) parseMessages(items []json.RawMessage) error {
	c.Messages = make([]tokenizer.Message, 0, len(items))
	for i, item := range items {
		var m message
		if err := json.Unmarshal(item, &m); err != nil {
			var te *json.UnmarshalTypeError
			switch {
			case errors.As(err, &te) && te.Field != "":
				return c.Errorf(i, te.Field, "expected a string, got a JSON %s", te.Value)
			case errors.As(err, &te):
				return c.Fail("message %d: expected an object {\"role\", \"content\"}, got a JSON %s", i, te.Value)
			}
			return c.Fail("message %d: %v", i, err)
		}
		if m.Role == nil || *m.Role == "" {
			return c.Errorf(i, "role", `missing or empty: every message needs both "role" and "content" (strings)`)
		}
		if m.Content == nil {
			return c.Errorf(i, "content", `missing: every message needs both "role" and "content" (strings)`)
		}
		c.Messages = append(c.Messages, tokenizer.Message{Role: *m.Role, Content: *m.Content})
	}
	return nil
}
