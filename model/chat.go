package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"tether/tokenizer"
	"tether/tokenizer/chattemplate"
)

// This file is tether's one chat renderer: every command that turns a
// conversation into token ids (persona run, capture, project, the judge,
// chat, generate --chat, bench drift and its capability check) goes through
// RenderChat and ChatPrompt, so that an axis is calibrated on the same prompt
// format that a cap is later applied to. It renders as the reference
// Assistant Axis pipeline does:
//
//   - with the model's chat template and the template's own variables from
//     tokenizer_config.json (bos_token, eos_token, pad_token, unk_token),
//     plus enable_thinking=Model.EnableThinking (false by default) for
//     templates that read it;
//   - a leading system message folded into the first user turn as
//     "<system>\n\n<user>" when the template rejects a system message (it
//     raises) or silently drops it (its rendering does not contain the
//     system prompt), decided once per model the way the reference's
//     format_conversation does (see SystemFold);
//   - without a chat template (e.g. the bundled stories260K), the plain
//     format "User: <text>\nAssistant: <text>\n" per turn, ending with
//     "Assistant:" for a generation prompt, encoded with BOS; a system prompt
//     is folded into the first user turn, and generation stops at
//     PlainChatStop.

// PlainChatStop is the stop string of an assistant turn in the plain chat
// format: the start of the next user turn.
const PlainChatStop = "\nUser:"

// How a model renders a leading system message (Rendering.FoldMode).
const (
	// FoldNone: the chat template renders the system message itself.
	FoldNone = "none"
	// FoldRaises: the template raises on a system message (Gemma 2); the
	// system prompt is folded into the first user turn.
	FoldRaises = "template_raises"
	// FoldDrops: the template renders without the system prompt's text; it
	// is folded into the first user turn.
	FoldDrops = "template_drops"
	// FoldNoTemplate: the plain format has no system turn; the system prompt
	// is folded into the first user turn.
	FoldNoTemplate = "no_template"
)

// Rendering formats (Rendering.Format).
const (
	FormatTemplate = "chat_template"
	FormatPlain    = "plain"
)

// systemProbe is the system message content that tells whether a template
// keeps a system prompt (the reference's test message).
const systemProbe = "__SYSTEM_TEST__"

// chatState is what a Model learns about its chat template on first use.
type chatState struct {
	// loadErr is an error reading the template files, reported on first use.
	loadErr error

	parseOnce sync.Once
	tmpl      *chattemplate.Template
	parseErr  error

	foldOnce sync.Once
	fold     string
	foldErr  error
}

// HasChatTemplate reports whether the model has a chat template (parsed or
// not: a template that fails to parse still counts, and rendering reports
// its error instead of falling back to the plain format).
func (m *Model) HasChatTemplate() bool {
	return m.ChatTemplateSource != "" || m.chat.loadErr != nil
}

// ChatTemplate returns the model's chat template, parsed on first use; nil
// and no error when the model has none. A template that does not parse is an
// error naming the file it comes from.
func (m *Model) ChatTemplate() (*chattemplate.Template, error) {
	if m.chat.loadErr != nil {
		return nil, fmt.Errorf("model %s: chat template: %w", m.Name, m.chat.loadErr)
	}
	if m.ChatTemplateSource == "" {
		return nil, nil
	}
	m.chat.parseOnce.Do(func() {
		m.chat.tmpl, m.chat.parseErr = chattemplate.NewFile(m.ChatTemplateSource, tokenizer.DefaultChatTemplateName, m.ChatTemplateFile)
		if m.chat.parseErr != nil {
			m.chat.parseErr = m.templateError(m.chat.parseErr)
		}
	})
	return m.chat.tmpl, m.chat.parseErr
}

// templateError wraps an error of the chat template with the model's name
// (the tokenizer's error names the template's file and line).
func (m *Model) templateError(err error) error {
	return fmt.Errorf("model %s: %w", m.Name, err)
}

// templateReadsThinking reports whether the chat template reads
// enable_thinking (only such templates are passed it).
func (m *Model) templateReadsThinking() bool {
	return strings.Contains(m.ChatTemplateSource, "enable_thinking")
}

// templateOptions are the variables the chat template is rendered with.
func (m *Model) templateOptions(addGenerationPrompt bool) chattemplate.Options {
	var opts chattemplate.Options
	if m.TokenizerConfig != nil {
		opts = chattemplate.OptionsFor(m.TokenizerConfig)
	}
	opts.AddGenerationPrompt = addGenerationPrompt
	if m.templateReadsThinking() {
		thinking := m.EnableThinking
		opts.EnableThinking = &thinking
	}
	return opts
}

// SystemFold says how the model renders a leading system message: FoldNone
// when its chat template renders it, else why the system prompt is folded
// into the first user turn (FoldRaises, FoldDrops, FoldNoTemplate). Like the
// reference's format_conversation, it renders the conversation
// [system "__SYSTEM_TEST__", user "hello"] without a generation prompt once:
// an error means the template rejects system messages, a rendering without
// the test text means it drops them. A template that also fails on the user
// turn alone is broken, and that error is returned.
func (m *Model) SystemFold() (string, error) {
	tmpl, err := m.ChatTemplate()
	if err != nil {
		return "", err
	}
	if tmpl == nil {
		return FoldNoTemplate, nil
	}
	m.chat.foldOnce.Do(func() {
		opts := m.templateOptions(false)
		user := tokenizer.Message{Role: "user", Content: "hello"}
		out, err := tmpl.Render([]tokenizer.Message{{Role: "system", Content: systemProbe}, user}, opts)
		switch {
		case err == nil && strings.Contains(out, systemProbe):
			m.chat.fold = FoldNone
		case err == nil:
			m.chat.fold = FoldDrops
		default:
			if _, err2 := tmpl.Render([]tokenizer.Message{user}, opts); err2 != nil {
				m.chat.foldErr = m.templateError(err2)
				return
			}
			m.chat.fold = FoldRaises
		}
	})
	return m.chat.fold, m.chat.foldErr
}

// FoldSystemPrompt is how a system prompt joins the first user turn when it
// is folded: "<system>\n\n<user>" (just the user text for an empty system
// prompt), as the reference pipeline does.
func FoldSystemPrompt(system, user string) string {
	if system == "" {
		return user
	}
	return system + "\n\n" + user
}

// foldSystem merges a leading system message into the user message after it.
func foldSystem(msgs []tokenizer.Message, why string) ([]tokenizer.Message, error) {
	if len(msgs) < 2 || msgs[1].Role != "user" {
		return nil, fmt.Errorf("the system prompt must be folded into the first user turn (%s) but no user message follows it", why)
	}
	out := make([]tokenizer.Message, 0, len(msgs)-1)
	out = append(out, tokenizer.Message{Role: "user", Content: FoldSystemPrompt(msgs[0].Content, msgs[1].Content)})
	return append(out, msgs[2:]...), nil
}

// RenderChat renders a conversation as the model reads it (see the top of
// this file): with the chat template, a leading system message folded when
// the template rejects or drops it, or in the plain User/Assistant format
// without a template. addGenerationPrompt ends the text with the opening of
// an assistant turn.
func (m *Model) RenderChat(msgs []tokenizer.Message, addGenerationPrompt bool) (string, error) {
	tmpl, err := m.ChatTemplate()
	if err != nil {
		return "", err
	}
	if len(msgs) > 0 && msgs[0].Role == "system" {
		fold, err := m.SystemFold()
		if err != nil {
			return "", err
		}
		if fold != FoldNone {
			if msgs, err = foldSystem(msgs, fold); err != nil {
				return "", fmt.Errorf("model %s: %w", m.Name, err)
			}
		}
	}
	if tmpl == nil {
		text, err := renderPlain(msgs, addGenerationPrompt)
		if err != nil {
			return "", fmt.Errorf("model %s (no chat template): %w", m.Name, err)
		}
		return text, nil
	}
	text, err := tmpl.Render(msgs, m.templateOptions(addGenerationPrompt))
	if err != nil {
		return "", m.templateError(err)
	}
	return text, nil
}

// renderPlain is the chat format of a model without a chat template.
func renderPlain(msgs []tokenizer.Message, addGenerationPrompt bool) (string, error) {
	var b strings.Builder
	for i, msg := range msgs {
		switch msg.Role {
		case "user":
			b.WriteString("User: ")
		case "assistant":
			b.WriteString("Assistant: ")
		default:
			return "", fmt.Errorf("plain chat format: message %d has role %q (expected user or assistant; a system message only first)", i, msg.Role)
		}
		b.WriteString(msg.Content)
		b.WriteByte('\n')
	}
	if addGenerationPrompt {
		b.WriteString("Assistant:")
	}
	return b.String(), nil
}

// EncodeChat encodes text rendered by RenderChat, or a prefix of it: without
// added special tokens when a chat template writes them (as
// apply_chat_template(tokenize=True) does), with them (BOS) in the plain
// format.
func (m *Model) EncodeChat(text string) ([]int, error) {
	if !m.HasChatTemplate() {
		return m.PlainPrompt(text)
	}
	ids, err := m.Tokenizer.Encode(text, false)
	if err != nil {
		return nil, fmt.Errorf("model %s: encode chat: %w", m.Name, err)
	}
	return ids, nil
}

// ChatPrompt renders a conversation with RenderChat and encodes it with
// EncodeChat.
func (m *Model) ChatPrompt(msgs []tokenizer.Message, addGenerationPrompt bool) ([]int, error) {
	text, err := m.RenderChat(msgs, addGenerationPrompt)
	if err != nil {
		return nil, err
	}
	ids, err := m.EncodeChat(text)
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("model %s: the chat template rendered an empty prompt", m.Name)
	}
	return ids, nil
}

// ChatStopStrings are the stop strings of an assistant turn besides the stop
// tokens: PlainChatStop in the plain format, none with a chat template (it
// ends turns with a stop token).
func (m *Model) ChatStopStrings() []string {
	if m.HasChatTemplate() {
		return nil
	}
	return []string{PlainChatStop}
}

// AssistantText is the text of an assistant turn generated after prompt: the
// continuation (see Continuation), cut before PlainChatStop in the plain
// format.
func (m *Model) AssistantText(prompt, generated []int) (string, error) {
	text, err := m.Continuation(prompt, generated)
	if err != nil {
		return "", err
	}
	if !m.HasChatTemplate() {
		if i := strings.Index(text, PlainChatStop); i >= 0 {
			text = text[:i]
		}
	}
	return text, nil
}

// AssistantTurn is an assistant turn generated after prompt: its text (see
// AssistantText) and the generated ids that make up that text. In the plain
// format the ids after the text (those of PlainChatStop) are dropped; a token
// straddling the cut stays.
func (m *Model) AssistantTurn(prompt, generated []int) ([]int, string, error) {
	text, err := m.AssistantText(prompt, generated)
	if err != nil || m.HasChatTemplate() {
		return generated, text, err
	}
	cont := tokenizer.NewContinuation(m.Tokenizer, prompt) // decodes the prompt once
	k := len(generated)
	for k > 0 {
		shorter, err := cont.Decode(generated[:k-1], false)
		if err != nil {
			return nil, "", err
		}
		if len(shorter) < len(text) {
			break
		}
		k--
	}
	return generated[:k], text, nil
}

// Rendering describes how a model renders chats: what a persona run records
// in run.json, axis build copies into the axis file, and the capping
// commands compare with their own.
type Rendering struct {
	// Format is FormatTemplate or FormatPlain (no chat template).
	Format string `json:"format"`
	// TemplateSHA256 is the hex sha256 of the chat template's source.
	TemplateSHA256 string `json:"template_sha256,omitempty"`
	// EnableThinking is the enable_thinking value the template is rendered
	// with; nil when the template does not read it (or there is none).
	EnableThinking *bool `json:"enable_thinking"`
	// FoldMode is how a leading system message is rendered: FoldNone, or
	// folded into the first user turn (FoldRaises, FoldDrops, FoldNoTemplate).
	FoldMode string `json:"fold_mode"`
}

// ChatRendering describes how m renders chats (it parses the template and
// decides the fold mode when that has not happened yet).
func (m *Model) ChatRendering() (Rendering, error) {
	fold, err := m.SystemFold()
	if err != nil {
		return Rendering{}, err
	}
	if !m.HasChatTemplate() {
		return Rendering{Format: FormatPlain, FoldMode: fold}, nil
	}
	sum := sha256.Sum256([]byte(m.ChatTemplateSource))
	r := Rendering{Format: FormatTemplate, TemplateSHA256: hex.EncodeToString(sum[:]), FoldMode: fold}
	if m.templateReadsThinking() {
		thinking := m.EnableThinking
		r.EnableThinking = &thinking
	}
	return r, nil
}

// Folds reports whether a leading system message is folded into the first
// user turn.
func (r Rendering) Folds() bool { return r.FoldMode != FoldNone }

// String is a one-line description, e.g. "chat template sha256 1a2b3c4d5e6f,
// enable_thinking=false, system prompt rendered by the template".
func (r Rendering) String() string {
	var parts []string
	if r.Format == FormatPlain {
		parts = append(parts, "plain User/Assistant format (no chat template)")
	} else {
		parts = append(parts, fmt.Sprintf("chat template sha256 %.12s", r.TemplateSHA256))
	}
	if r.EnableThinking != nil {
		parts = append(parts, fmt.Sprintf("enable_thinking=%t", *r.EnableThinking))
	}
	switch r.FoldMode {
	case FoldNone:
		parts = append(parts, "system prompt rendered by the template")
	case FoldRaises:
		parts = append(parts, "system prompt folded into the first user turn (the template raises on a system message)")
	case FoldDrops:
		parts = append(parts, "system prompt folded into the first user turn (the template drops a system message)")
	case FoldNoTemplate:
		if r.Format != FormatPlain {
			parts = append(parts, "system prompt folded into the first user turn")
		}
	default:
		parts = append(parts, fmt.Sprintf("system prompt fold mode %q", r.FoldMode))
	}
	return strings.Join(parts, ", ")
}

// Equal reports whether two renderings turn the same conversations into the
// same text.
func (r Rendering) Equal(o Rendering) bool {
	same := func(a, b *bool) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	return r.Format == o.Format && r.TemplateSHA256 == o.TemplateSHA256 && same(r.EnableThinking, o.EnableThinking) && r.FoldMode == o.FoldMode
}

// JSON is the rendering as one line of JSON (the form axis files store).
func (r Rendering) JSON() string {
	out, _ := json.Marshal(r)
	return string(out)
}

// ParseRendering reads a Rendering from its JSON form; source names it in
// errors.
func ParseRendering(text, source string) (Rendering, error) {
	var r Rendering
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		return r, fmt.Errorf("%s: expected a JSON object {\"format\", \"template_sha256\", \"enable_thinking\", \"fold_mode\"}: %w", source, err)
	}
	switch r.Format {
	case FormatTemplate, FormatPlain:
	default:
		return r, fmt.Errorf("%s: format %q (expected %q or %q)", source, r.Format, FormatTemplate, FormatPlain)
	}
	switch r.FoldMode {
	case FoldNone, FoldRaises, FoldDrops, FoldNoTemplate:
	default:
		return r, fmt.Errorf("%s: fold_mode %q (expected %s, %s, %s or %s)", source, r.FoldMode, FoldNone, FoldRaises, FoldDrops, FoldNoTemplate)
	}
	return r, nil
}
