package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/pflag"

	"tether/engine"
	"tether/model"
	"tether/steer"
	"tether/tokenizer"
)

func init() {
	register("generate", "generate text from a prompt, streamed to stdout", runGenerate)
}

// samplingFlags are the sampling options shared by every generating command.
type samplingFlags struct {
	maxNew                          int
	temperature, topP, minP, repPen float64
	topK                            int
	seed                            uint64
	stops                           []string
}

func addSamplingFlags(fs *pflag.FlagSet, s *samplingFlags) {
	fs.IntVarP(&s.maxNew, "max-tokens", "n", 256, "maximum number of new tokens")
	fs.Float64Var(&s.temperature, "temperature", 0.7, "sampling temperature; 0 is greedy")
	fs.Float64Var(&s.topP, "top-p", 0.9, "nucleus sampling: keep the smallest set of tokens with this much probability (1 = off)")
	fs.IntVar(&s.topK, "top-k", 0, "keep only the k most likely tokens (0 = off)")
	fs.Float64Var(&s.minP, "min-p", 0, "keep tokens at least this fraction as likely as the best (0 = off)")
	fs.Float64Var(&s.repPen, "repetition-penalty", 1, "penalty on tokens already present, as in transformers (1 = off)")
	fs.Uint64Var(&s.seed, "seed", 0, "random seed: the same seed on the same backend gives the same output")
	fs.StringArrayVar(&s.stops, "stop", nil, "stop when the text contains this string (repeatable)")
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "temperature", temperatureRange)
	limit(fs, "top-p", topPRange)
	limit(fs, "top-k", atLeast(0).with("0 = off"))
	limit(fs, "min-p", valueRange{min: 0, max: 1, maxOpen: true, note: "0 = off"})
	limit(fs, "repetition-penalty", above(0).with("1 = off"))
}

func (s samplingFlags) params() (engine.SamplingParams, error) {
	p := engine.SamplingParams{Temperature: s.temperature, TopK: s.topK, TopP: s.topP, MinP: s.minP,
		RepetitionPenalty: s.repPen, Seed: s.seed}
	return p, p.Validate()
}

// generateOutput is what `tether generate --json` prints.
type generateOutput struct {
	Model      string                `json:"model"`
	Backend    string                `json:"backend"`
	Prompt     string                `json:"prompt"`
	PromptIDs  []int                 `json:"prompt_ids"`
	Text       string                `json:"text"`
	IDs        []int                 `json:"ids"`
	StopReason string                `json:"stop_reason"`
	Sampling   engine.SamplingParams `json:"sampling"`
	Timings    timings               `json:"timings"`
	// Steering summarises the interventions' telemetry (with steering flags).
	Steering *steeringSummary `json:"steering,omitempty"`
}

// steeringSummary is the per-answer telemetry digest printed by generate and chat.
type steeringSummary struct {
	Layer          int     `json:"layer"`
	MeanProjection float64 `json:"mean_projection"`        // after the interventions
	MeanBefore     float64 `json:"mean_projection_before"` // before the cap/ablation at that layer
	CappedTokens   int     `json:"capped_tokens"`
	Tokens         int     `json:"tokens"`
	CappedFraction float64 `json:"capped_fraction"`
	// SteerUnits and SteerCoef record add-steering (--steer-units, or "norm" with
	// --steer-norm-units, and --steer-coef); absent without --steer.
	SteerUnits string  `json:"steer_units,omitempty"`
	SteerCoef  float64 `json:"steer_coef,omitempty"`
}

// summarize digests telemetry; nil when there is nothing to report.
func summarize(s *steer.Setup, recs []steer.TelemetryRecord) *steeringSummary {
	if !s.Reports {
		return nil
	}
	sm := steer.Summarize(recs, s.MeasureLayer)
	return &steeringSummary{Layer: sm.Layer, MeanProjection: jsonFloat(sm.MeanAfter), MeanBefore: jsonFloat(sm.MeanBefore),
		CappedTokens: sm.CappedTokens, Tokens: sm.Tokens, CappedFraction: sm.CappedFraction,
		SteerUnits: s.AddUnits, SteerCoef: s.AddCoef}
}

// String is the one-line form printed after an answer.
func (s *steeringSummary) String() string {
	return fmt.Sprintf("axis projection at layer %d: mean %.4g (before intervention %.4g); cap acted on %d of %d tokens (%.1f%%)",
		s.Layer, s.MeanProjection, s.MeanBefore, s.CappedTokens, s.Tokens, 100*s.CappedFraction)
}

// jsonFloat maps NaN to 0 (JSON has no NaN).
func jsonFloat(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// timings reports where a generation's time went.
type timings struct {
	LoadMS     float64 `json:"load_ms"`
	PrefillMS  float64 `json:"prefill_ms"`
	DecodeMS   float64 `json:"decode_ms"`
	PrefillTPS float64 `json:"prefill_tokens_per_s"`
	DecodeTPS  float64 `json:"decode_tokens_per_s"`
}

func runGenerate(args []string) error {
	fs := newFlags("generate", "--model M --prompt TEXT [--system TEXT] [--chat] [--enable-thinking] [-n N] [sampling flags] [steering flags] [--backend B] [--json]",
		`tether generate --model .tether/stories260K --prompt "Once upon a time" -n 64 --temperature 0
  tether generate --model M --chat --prompt "Hi" --axis axis.safetensors --cap-layers 46:54 --cap-percentile 25 --telemetry t.jsonl`)
	ref := fs.String("model", "", "model directory or Hugging Face id (org/name, resolved offline)")
	prompt := fs.String("prompt", "", "the prompt (empty: start from BOS)")
	system := fs.String("system", "", "system prompt (implies --chat)")
	chat := fs.Bool("chat", false, "wrap the prompt as a user turn, rendered as every chat is (the model's chat template, or the plain User/Assistant format without one)")
	thinking := addThinkingFlag(fs)
	backend := addBackendFlag(fs)
	asJSON := fs.Bool("json", false, "print one JSON object (prompt, text, ids, timings) instead of streaming text")
	var sf samplingFlags
	addSamplingFlags(fs, &sf)
	var stf steerFlags
	addSteerFlags(fs, &stf)
	if err := parseFlags(fs, args, "model"); err != nil {
		return err
	}
	params, err := sf.params()
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := stf.checkOutputs(); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()

	promptText := *prompt
	var ids []int
	stops := sf.stops
	asChat := *chat || fs.Changed("system")
	if asChat {
		promptText, ids, err = chatGeneratePrompt(m, *system, *prompt)
		stops = append(append([]string(nil), stops...), m.ChatStopStrings()...)
	} else {
		ids, err = m.PlainPrompt(*prompt)
	}
	if err != nil {
		return err
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	setup, err := stf.build(ctx, fs, m)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if asChat {
		// A plain prompt is not rendered as a chat: only a chat compares with the axis's rendering.
		if err := warnAxisRendering(warnOut, stf.axisPath, stf.axisOf(setup), m); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	if setup.Description != "" && !*asJSON {
		fmt.Fprintf(os.Stderr, "[steering: %s]\n", setup.Description)
	}
	var stream *textStream
	// The text is the prompt's continuation, as in Decode(prompt+generated):
	// decoding the generated ids alone would drop the first word's space.
	opts := engine.GenerateOptions{Detokenizer: tokenizer.NewContinuation(m.Tokenizer, ids), Hooks: setup.Compiled.Hooks}
	if !*asJSON {
		stream = newTextStream(m.Tokenizer, ids, stops)
		opts.OnToken = func(_ int, tok int) { stream.push(tok) }
	}
	req := engine.Request{Prompt: ids, MaxNewTokens: sf.maxNew, Sampling: params,
		StopTokens: m.StopTokens(), StopStrings: stops}
	results, err := m.Engine.Generate(ctx, []engine.Request{req}, opts)
	if stream != nil {
		stream.finish()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	r := results[0]
	var summary *steeringSummary
	if setup.Active {
		recs := setup.Compiled.Telemetry(r)
		if stf.telemetry != "" {
			if err := steer.WriteTelemetryFile(stf.telemetry, recs); err != nil {
				return err
			}
		}
		summary = summarize(setup, recs)
	}
	t := timings{LoadMS: ms(m.LoadTime), PrefillMS: ms(r.PrefillDuration), DecodeMS: ms(r.DecodeDuration),
		PrefillTPS: rate(len(ids), r.PrefillDuration), DecodeTPS: rate(len(r.Tokens)-1, r.DecodeDuration)}
	if *asJSON {
		return writeJSONLine(os.Stdout, generateOutput{Model: m.Name, Backend: *backend, Prompt: promptText,
			PromptIDs: ids, Text: r.Text, IDs: nonNil(r.Tokens), StopReason: r.StopReason, Sampling: params, Timings: t, Steering: summary})
	}
	fmt.Fprintf(os.Stderr, "[%d prompt tokens, %d new, %s; prefill %.1f tok/s, decode %.1f tok/s]\n",
		len(ids), len(r.Tokens), r.StopReason, t.PrefillTPS, t.DecodeTPS)
	if summary != nil {
		fmt.Fprintf(os.Stderr, "[%s]\n", summary)
	}
	if note := contextNote(r, m.Config.MaxPositions); note != "" {
		fmt.Fprintln(os.Stderr, note)
	}
	return nil
}

// contextNote says that an answer was cut by the model's context (stop reason
// "context"), not by --max-tokens; "" for any other stop.
func contextNote(r engine.Result, maxPositions int) string {
	if r.StopReason != engine.StopContext {
		return ""
	}
	return fmt.Sprintf("[note: the answer stopped at the model's context of %d tokens (%d prompt + %d new), before --max-tokens]",
		maxPositions, r.PromptTokens, len(r.Tokens))
}

// chatGeneratePrompt is the prompt of generate --chat: the system prompt
// (when not empty) and the prompt as a user turn, rendered by the model's chat
// renderer; it returns the text and its ids.
func chatGeneratePrompt(m *model.Model, system, prompt string) (string, []int, error) {
	var msgs []tokenizer.Message
	if system != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: system})
	}
	msgs = append(msgs, tokenizer.Message{Role: "user", Content: prompt})
	text, err := m.RenderChat(msgs, true)
	if err != nil {
		return "", nil, err
	}
	ids, err := m.EncodeChat(text)
	return text, ids, err
}

// textStream prints generated text as it comes: a streaming decoder keeps
// UTF-8 whole, and a stop matcher holds back what may be the start of a stop
// string, so the printed text is exactly Result.Text.
type textStream struct {
	out     io.Writer
	dec     *tokenizer.StreamDecoder
	stops   *engine.StopMatcher
	stopped bool
}

// newTextStream streams to stdout the text that generated ids add after
// prompt (tokenizer.NewContinuationDecoder), as the engine's Result.Text
// does with a tokenizer.Continuation: special tokens skipped.
func newTextStream(tok tokenizer.Tokenizer, prompt []int, stops []string) *textStream {
	return &textStream{out: os.Stdout, dec: tokenizer.NewContinuationDecoder(tok, prompt, true), stops: engine.NewStopMatcher(stops)}
}

// newTextStreamTo streams to w the text of the generated ids decoded alone,
// as the engine's Result.Text does with the tokenizer itself as Detokenizer:
// special tokens skipped.
func newTextStreamTo(w io.Writer, tok tokenizer.Tokenizer, stops []string) *textStream {
	return &textStream{out: w, dec: tokenizer.NewStreamDecoder(tok, true), stops: engine.NewStopMatcher(stops)}
}

func (s *textStream) push(tok int) {
	if s.stopped {
		return
	}
	piece, err := s.dec.Push(tok)
	if err != nil {
		return
	}
	out, stopped := s.stops.Push(piece)
	s.stopped = stopped
	io.WriteString(s.out, out)
}

func (s *textStream) finish() {
	if !s.stopped {
		out, _ := s.stops.Push(s.dec.Flush())
		io.WriteString(s.out, out+s.stops.Flush())
	}
	io.WriteString(s.out, "\n")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// rate is n per second over d (0 when d is 0).
func rate(n int, d time.Duration) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func nonNil(x []int) []int {
	if x == nil {
		return []int{}
	}
	return x
}
