package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"tether/engine"
	"tether/model"
	"tether/serve"
)

func init() {
	register("serve", "an OpenAI-compatible HTTP server with per-request capping, steering and projections", runServe)
}

func runServe(args []string) error {
	fs := newFlags("serve", "--model M [--axis NAME=FILE ...] [--addr 127.0.0.1:8080] [--model-name NAME] [--api-key KEY] [limits]",
		`tether serve --model .tether/stories260K --axis assistant=axis.safetensors --addr 127.0.0.1:8080
  curl -s localhost:8080/v1/completions -d '{"prompt": "Once upon a time", "max_tokens": 32, "seed": 1,
    "steering": {"cap": [{"axis": "assistant", "layers": "2:4", "percentile": 25}], "projections": {"axis": "assistant"}}}'`)
	ref := fs.String("model", "", "model directory or Hugging Face id (org/name, resolved offline)")
	name := fs.String("model-name", "", "the model's id in the API (default: the directory's base name or the Hugging Face id)")
	axes := fs.StringArray("axis", nil, "an axis file requests can name, as NAME=FILE (repeatable)")
	addr := fs.String("addr", "127.0.0.1:8080", "listen address; loopback unless told otherwise")
	apiKey := fs.String("api-key", "", "require \"Authorization: Bearer KEY\" on every request (default: $TETHER_API_KEY; empty: no key)")
	backend := addBackendFlag(fs)
	thinking := addThinkingFlag(fs)
	maxBody := fs.Int64("max-body-bytes", 1<<20, "largest request body accepted (413 beyond)")
	maxPrompt := fs.Int("max-prompt-tokens", 0, "longest prompt accepted in tokens (0: the model's context minus one)")
	maxTokens := fs.Int("max-tokens", 1024, "largest max_tokens accepted, and the default")
	maxN := fs.Int("max-n", 8, "largest n (choices per request)")
	maxBatch := fs.Int("max-batch", 8, "sequences decoded together (continuous batching)")
	queue := fs.Int("queue", 64, "sequences that may wait for a batch row (429 beyond)")
	maxClamps := fs.Int("max-clamps", serve.DefaultMaxClamps, "most caps and ablations a request may put on one layer, counting one more that records the projection axis when the layer's first is along another axis (400 beyond; every row of a batch pays for them at every step)")
	maxContext := fs.Int("max-context", 4096, "longest prompt plus answer in tokens (at most the model's context; sizes the KV cache)")
	grace := fs.Float64("shutdown-timeout", 30, "on SIGTERM/SIGINT, seconds in-flight requests may take to finish before they are cancelled")
	logJSON := fs.Bool("log-json", false, "write the logs as JSON lines instead of text")
	limit(fs, "max-body-bytes", atLeast(1))
	limit(fs, "max-prompt-tokens", atLeast(0).with("0 = the model's context"))
	limit(fs, "max-tokens", atLeast(1))
	limit(fs, "max-n", atLeast(1))
	limit(fs, "max-batch", atLeast(1))
	limit(fs, "queue", atLeast(1))
	limit(fs, "shutdown-timeout", atLeast(0))
	limit(fs, "max-context", atLeast(2))
	limit(fs, "max-clamps", atLeast(1))
	if err := parseFlags(fs, args, "model"); err != nil {
		return err
	}
	if !fs.Changed("api-key") {
		*apiKey = os.Getenv("TETHER_API_KEY")
	}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *logJSON {
		handler = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(handler)
	m, err := openModel(*ref, model.Options{Backend: *backend, EnableThinking: *thinking})
	if err != nil {
		return err
	}
	defer m.Close()
	loaded, err := serve.LoadAxes(*axes, m)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = m.Name
	}
	ctxLen := min(m.Config.MaxPositions, *maxContext)
	gen, err := m.Engine.NewBatcher(engine.BatcherOptions{MaxBatch: *maxBatch, MaxQueue: *queue, MaxContext: ctxLen, MaxClamps: *maxClamps})
	if err != nil {
		return err
	}
	srv, err := serve.New(serve.Config{Model: m, ModelName: *name, Axes: loaded, Generator: gen, APIKey: *apiKey,
		MaxBodyBytes: *maxBody, MaxPromptTokens: *maxPrompt, MaxTokens: *maxTokens, MaxN: *maxN, MaxContext: ctxLen, MaxClamps: *maxClamps, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if host, _, _ := net.SplitHostPort(*addr); *apiKey == "" && !isLoopback(host) {
		log.Warn("listening beyond loopback without an API key: anyone who reaches this address can use the model", "addr", *addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return srv.Serve(ctx, ln, time.Duration(*grace*float64(time.Second)))
}

// isLoopback reports whether host names the loopback interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
