package serve

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"tether/engine"
	"tether/model"
	"tether/tokenizer"
)

// BenchOptions configures Bench.
type BenchOptions struct {
	// Concurrency lists the numbers of concurrent clients to measure (e.g. 1, 8, 32).
	Concurrency []int
	// Requests is the number of requests per client; MaxTokens the tokens each generates.
	Requests, MaxTokens int
	// MaxBatch is the batcher's row count.
	MaxBatch int
	// Cap, when not nil, is the steering field of the capped runs (nil: uncapped only).
	Cap *Steering
	// Axes are the axes Cap names.
	Axes map[string]AxisFile
	// Prompt is the user message of every request.
	Prompt string
}

// BenchRow is one measured setting.
type BenchRow struct {
	Mode        string  `json:"mode"` // "served" or "sequential generate"
	Capped      bool    `json:"capped"`
	Clients     int     `json:"clients"`
	Requests    int     `json:"requests"`
	Tokens      int     `json:"tokens"`
	Seconds     float64 `json:"seconds"`
	TokensPerS  float64 `json:"tokens_per_s"`
	MeanTTFTms  float64 `json:"mean_ttft_ms"`
	WorstTTFTms float64 `json:"worst_ttft_ms"`
}

// Bench measures the server on loopback: for each concurrency, uncapped and (with Cap) capped,
// every client streams its requests one after the other (after one untimed warm-up request per
// client, sent together);
// throughput is generated tokens over
// wall time, time to first token the time to the first chunk with text. The baseline runs the
// same requests one by one with engine.Generate, as tether generate would.
func Bench(ctx context.Context, m *model.Model, o BenchOptions) ([]BenchRow, error) {
	var rows []BenchRow
	modes := []*Steering{nil}
	if o.Cap != nil {
		modes = append(modes, o.Cap)
	}
	for _, st := range modes {
		row, err := benchSequential(ctx, m, o, st)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
		for _, c := range o.Concurrency {
			row, err := benchServed(ctx, m, o, st, c)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// benchSequential generates the requests of one client, one at a time, with engine.Generate.
func benchSequential(ctx context.Context, m *model.Model, o BenchOptions, st *Steering) (BenchRow, error) {
	row := BenchRow{Mode: "sequential generate", Capped: st != nil, Clients: 1, Requests: o.Requests}
	ids, err := m.ChatPrompt([]tokenizer.Message{{Role: "user", Content: o.Prompt}}, true)
	if err != nil {
		return row, err
	}
	r, err := resolveSteering(ctx, st, m, o.Axes, DefaultMaxClamps)
	if err != nil {
		return row, err
	}
	// One request first, so that graph compilation is not timed.
	if _, err := m.Engine.Generate(ctx, []engine.Request{{Prompt: ids, MaxNewTokens: o.MaxTokens}}, engine.GenerateOptions{Hooks: r.hooks()}); err != nil {
		return row, err
	}
	start := time.Now()
	var ttft time.Duration
	for i := range o.Requests {
		t0 := time.Now()
		first := time.Duration(0)
		res, err := m.Engine.Generate(ctx, []engine.Request{{Prompt: ids, MaxNewTokens: o.MaxTokens,
			Sampling: engine.SamplingParams{Temperature: 1, TopP: 1, RepetitionPenalty: 1, Seed: uint64(i)}}},
			engine.GenerateOptions{Hooks: r.hooks(), OnToken: func(int, int) {
				if first == 0 {
					first = time.Since(t0)
				}
			}})
		if err != nil {
			return row, err
		}
		row.Tokens += len(res[0].Tokens)
		ttft += first
		row.WorstTTFTms = max(row.WorstTTFTms, ms(first))
	}
	row.Seconds = time.Since(start).Seconds()
	row.TokensPerS = float64(row.Tokens) / row.Seconds
	row.MeanTTFTms = ms(ttft) / float64(o.Requests)
	return row, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchServed runs clients concurrent streaming clients against a fresh server.
func benchServed(ctx context.Context, m *model.Model, o BenchOptions, st *Steering, clients int) (BenchRow, error) {
	row := BenchRow{Mode: "served", Capped: st != nil, Clients: clients, Requests: clients * o.Requests}
	gen, err := m.Engine.NewBatcher(engine.BatcherOptions{MaxBatch: o.MaxBatch, MaxQueue: clients * o.Requests, MaxClamps: DefaultMaxClamps})
	if err != nil {
		return row, err
	}
	srv, err := New(Config{Model: m, ModelName: "bench", Axes: o.Axes, Generator: gen, MaxBodyBytes: 1 << 20,
		MaxTokens: o.MaxTokens, MaxN: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return row, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return row, err
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln, 10*time.Second) }()
	defer func() {
		stop()
		<-served
	}()
	url := "http://" + ln.Addr().String() + "/v1/chat/completions"
	var mu sync.Mutex
	var ttft time.Duration
	var firstErr error
	var wg sync.WaitGroup
	// One untimed request per client first, all at once, so that compiling the graphs of the
	// batch sizes this concurrency reaches is not timed.
	for range clients {
		wg.Go(func() {
			if _, _, err := streamOnce(ctx, url, o, st, 0); err != nil {
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return row, firstErr
	}
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			for k := range o.Requests {
				tokens, first, err := streamOnce(ctx, url, o, st, uint64(c*o.Requests+k))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				row.Tokens += tokens
				ttft += first
				row.WorstTTFTms = max(row.WorstTTFTms, ms(first))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return row, firstErr
	}
	row.Seconds = time.Since(start).Seconds()
	row.TokensPerS = float64(row.Tokens) / row.Seconds
	row.MeanTTFTms = ms(ttft) / float64(row.Requests)
	return row, nil
}

// streamOnce streams one chat request and returns its completion tokens and the time to its
// first text chunk.
func streamOnce(ctx context.Context, url string, o BenchOptions, st *Steering, seed uint64) (int, time.Duration, error) {
	body, err := json.Marshal(map[string]any{"messages": []any{map[string]any{"role": "user", "content": o.Prompt}},
		"max_tokens": o.MaxTokens, "seed": seed, "stream": true, "stream_options": map[string]any{"include_usage": true}, "steering": st})
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, 0, fmt.Errorf("serve bench: status %d: %s", resp.StatusCode, b)
	}
	var first time.Duration
	tokens := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			response
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return 0, 0, fmt.Errorf("serve bench: chunk %q: %w", data, err)
		}
		if chunk.Error != nil {
			return 0, 0, fmt.Errorf("serve bench: the server failed mid-stream: %s", chunk.Error.Message)
		}
		if first == 0 && len(chunk.Choices) > 0 && chunk.Choices[0].Delta != nil && chunk.Choices[0].Delta.Content != nil && *chunk.Choices[0].Delta.Content != "" {
			first = time.Since(t0)
		}
		if chunk.Usage != nil {
			tokens = chunk.Usage.CompletionTokens
		}
	}
	return tokens, first, sc.Err()
}
