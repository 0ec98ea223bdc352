package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/pflag"

	"tether/axis"
	"tether/conversation"
	"tether/engine"
	"tether/model"
	"tether/probe"
	"tether/steer"
	"tether/tokenizer"
)

func init() {
	register("chat", "multi-turn chat in the terminal (or replay a conversation file), with capping and steering", runChat)
}

// chatTurnTelemetry is one line of chat's --telemetry file: the turn it
// belongs to and steer's per-token, per-layer record.
type chatTurnTelemetry struct {
	Turn int `json:"turn"`
	steer.TelemetryRecord
}

// chatTurnOutput is what `tether chat --json` prints after each answer.
type chatTurnOutput struct {
	Turn       int              `json:"turn"`
	User       string           `json:"user"`
	Assistant  string           `json:"assistant"`
	Tokens     int              `json:"tokens"`
	StopReason string           `json:"stop_reason"`
	Steering   *steeringSummary `json:"steering,omitempty"`
}

// chatSession holds a conversation and everything needed to continue it.
type chatSession struct {
	m        *model.Model
	setup    *steer.Setup
	params   engine.SamplingParams
	sf       samplingFlags
	messages []tokenizer.Message
	out      io.Writer
	asJSON   bool
	// telemetryPath, when set, is rewritten (atomically) after every turn
	// with the telemetry of every turn so far.
	telemetryPath string
	telemetry     []chatTurnTelemetry
	turns         int
}

func runChat(args []string) error {
	fs := newFlags("chat", "--model M [--system TEXT] [--script FILE.json] [--enable-thinking] [sampling flags] [steering flags] [--backend B] [--json]",
		`tether chat --model M --axis axis.safetensors --cap-layers 46:54 --cap-percentile 25
  tether chat --model M --script conversation.json --axis axis.safetensors --cap-layers 46:54 --cap-tau 3.5 --json`)
	ref := fs.String("model", "", "model directory or Hugging Face id (org/name, resolved offline)")
	system := fs.String("system", "", "system prompt (a script's own system message comes first)")
	script := fs.String("script", "", `replay this conversation non-interactively: a JSON list of {"role","content"} messages (or {"messages": [...]}, see docs/conversations.md); user turns are replayed, assistant turns regenerated`)
	backend := addBackendFlag(fs)
	thinking := addThinkingFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per answer instead of streaming text")
	var sf samplingFlags
	addSamplingFlags(fs, &sf)
	var stf steerFlags
	addSteerFlags(fs, &stf)
	if err := parseFlags(fs, args, "model"); err != nil {
		return err
	}
	params, err := sf.params()
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	if err := stf.checkOutputs(); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	var scripted []tokenizer.Message
	if *script != "" {
		if scripted, err = readConversation(*script); err != nil {
			return err
		}
	}
	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	setup, err := stf.build(ctx, fs, m)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	if err := warnAxisRendering(warnOut, stf.axisPath, stf.axisOf(setup), m); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	cs := &chatSession{m: m, setup: setup, params: params, sf: sf, out: chatStdout, asJSON: *asJSON, telemetryPath: stf.telemetry}
	if *system != "" {
		cs.messages = append(cs.messages, tokenizer.Message{Role: "system", Content: *system})
	}
	if *script != "" {
		return cs.replay(ctx, scripted)
	}
	// The banner and "> " prompts go to stderr, and only when a person types.
	var prompts io.Writer = io.Discard
	if f, ok := chatStdin.(*os.File); ok && isTerminal(f) {
		prompts = os.Stderr
	}
	return cs.interactive(ctx, chatStdin, prompts)
}

// readConversation reads a --script file (package conversation): roles
// system, user and assistant, and at least one user message to replay.
func readConversation(path string) ([]tokenizer.Message, error) {
	c, err := conversation.ReadChecked(path, conversation.Rules{Need: conversation.RoleUser, Purpose: "to replay"})
	if err != nil {
		return nil, fmt.Errorf("chat: --script: %w", err)
	}
	return c.Messages, nil
}

// replay runs a scripted conversation: system messages are kept, each user
// message is answered anew, and the script's assistant messages are dropped
// (regenerated).
func (cs *chatSession) replay(ctx context.Context, script []tokenizer.Message) error {
	for _, msg := range script {
		switch msg.Role {
		case "system":
			cs.messages = append(cs.messages, msg)
		case "user":
			if !cs.asJSON {
				fmt.Fprintf(cs.out, "user: %s\nassistant: ", msg.Content)
			}
			if err := cs.turn(ctx, msg.Content); err != nil {
				return err
			}
		}
	}
	return nil
}

// interactive reads user lines from in until EOF or /exit; /reset starts over.
func (cs *chatSession) interactive(ctx context.Context, in io.Reader, prompt io.Writer) error {
	fmt.Fprintln(prompt, "[chat: type a message and press Enter; /reset starts over, /exit or Ctrl-D ends]")
	if cs.setup.Description != "" {
		fmt.Fprintf(prompt, "[steering: %s]\n", cs.setup.Description)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	system := cs.messages
	for {
		fmt.Fprint(prompt, "> ")
		if !sc.Scan() {
			fmt.Fprintln(prompt)
			return sc.Err()
		}
		line := strings.TrimSpace(sc.Text())
		switch line {
		case "":
			continue
		case "/exit", "/quit":
			return nil
		case "/reset":
			cs.messages = append([]tokenizer.Message(nil), system...)
			fmt.Fprintln(prompt, "[conversation reset]")
			continue
		}
		if err := cs.turn(ctx, line); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// turn answers one user message, streams the answer, records telemetry and
// prints the projection summary.
func (cs *chatSession) turn(ctx context.Context, user string) error {
	ids, err := cs.nextPrompt(user)
	if err != nil {
		return err
	}
	if len(ids) >= cs.m.Config.MaxPositions {
		return fmt.Errorf("chat: the conversation (%d tokens) fills the model's context of %d tokens; /reset to start over", len(ids), cs.m.Config.MaxPositions)
	}
	opts := engine.GenerateOptions{Detokenizer: cs.m.Tokenizer, Hooks: cs.setup.Compiled.Hooks}
	stops := append(append([]string(nil), cs.sf.stops...), cs.m.ChatStopStrings()...)
	var stream *textStream
	if !cs.asJSON {
		stream = newTextStreamTo(cs.out, cs.m.Tokenizer, stops)
		opts.OnToken = func(_ int, tok int) { stream.push(tok) }
	}
	req := engine.Request{Prompt: ids, MaxNewTokens: cs.sf.maxNew, Sampling: cs.params,
		StopTokens: cs.m.StopTokens(), StopStrings: stops}
	results, err := cs.m.Engine.Generate(ctx, []engine.Request{req}, opts)
	if stream != nil {
		stream.finish()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	r := results[0]
	cs.messages = append(cs.messages, tokenizer.Message{Role: "assistant", Content: r.Text})
	var summary *steeringSummary
	if cs.setup.Active {
		recs := cs.setup.Compiled.Telemetry(r)
		for _, rec := range recs {
			cs.telemetry = append(cs.telemetry, chatTurnTelemetry{Turn: cs.turns, TelemetryRecord: rec})
		}
		if cs.telemetryPath != "" {
			if err := writeChatTelemetry(cs.telemetryPath, cs.telemetry); err != nil {
				return err
			}
		}
		summary = summarize(cs.setup, recs)
	}
	defer func() { cs.turns++ }()
	if cs.asJSON {
		return writeJSONLine(cs.out, chatTurnOutput{Turn: cs.turns, User: user, Assistant: r.Text,
			Tokens: len(r.Tokens), StopReason: r.StopReason, Steering: summary})
	}
	if summary != nil {
		fmt.Fprintf(cs.out, "  [%s]\n", summary)
	}
	if note := contextNote(r, cs.m.Config.MaxPositions); note != "" {
		fmt.Fprintln(os.Stderr, note+"; /reset to start over")
	}
	return nil
}

// addThinkingFlag defines --enable-thinking, for the commands that render
// chats.
func addThinkingFlag(fs *pflag.FlagSet) *bool {
	return fs.Bool("enable-thinking", false, "render chats with enable_thinking=true for templates that read it (Qwen 3: the model may write a reasoning block first); default false, as the reference pipeline renders")
}

// warnAxisRendering writes a warning to w when the persona run behind the
// axis (nil: no --axis) rendered its chats otherwise than m renders them now.
func warnAxisRendering(w io.Writer, axisPath string, ax *axis.Axis, m *model.Model) error {
	if ax == nil {
		return nil
	}
	warning, err := probe.AxisRenderingMismatch(ax, m)
	if err != nil {
		return fmt.Errorf("--axis %s: %w", axisPath, err)
	}
	if warning != "" {
		fmt.Fprintf(w, "warning: --axis %s: %s\n", axisPath, warning)
	}
	return nil
}

// nextPrompt adds a user message to the conversation and returns the
// prompt that the answer continues, rendered by the model's chat renderer.
func (cs *chatSession) nextPrompt(user string) ([]int, error) {
	cs.messages = append(cs.messages, tokenizer.Message{Role: "user", Content: user})
	return cs.m.ChatPrompt(cs.messages, true)
}

// writeChatTelemetry writes the records as JSONL, atomically.
func writeChatTelemetry(path string, recs []chatTurnTelemetry) error {
	err := steer.WriteFileAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("chat: --telemetry: %w", err)
	}
	return nil
}

// warnOut receives warnings (replaced in tests).
var warnOut io.Writer = os.Stderr

// chatStdin and chatStdout are the terminal (replaced in tests).
var (
	chatStdin  io.Reader = os.Stdin
	chatStdout io.Writer = os.Stdout
)
