package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"tether/axis"
	"tether/engine"
	"tether/internal/testmodels"
	"tether/model"
	"tether/steer"
	"tether/tokenizer"
)

// tinyServe is the random chat model of these tests: 4 layers, so that caps, adds and
// ablations can sit on different layers.
var tinyServe = testmodels.Llama{Hidden: 32, Intermediate: 64, Layers: 4, Heads: 4, KVHeads: 2, Vocab: 320,
	MaxPositions: 256, BOS: 318, EOS: 319}

// fixture is a running server on loopback.
type fixture struct {
	m        *model.Model
	url      string
	axisPath string
	ax       *axis.Axis
	gen      *engine.Batcher
	client   openai.Client
	stop     context.CancelFunc
	served   chan error
	logs     *bytes.Buffer
	// second is the axis loaded as "second" (options.second), another random direction per
	// layer calibrated as ax is.
	second *axis.Axis
}

// options adjust a fixture.
type options struct {
	apiKey             string
	maxBatch, maxQueue int
	maxBody            int64
	model              *model.Model
	// second loads a second axis as "second"; maxClamps is the clamps per layer of the
	// batcher and the server (0: DefaultMaxClamps).
	second    bool
	maxClamps int
}

// calibrationPrompt is the chat the test axis's taus are calibrated on.
var calibrationPrompt = []tokenizer.Message{{Role: "user", Content: "tell me a story about a robot"}}

// writeAxis writes an axis of random directions (drawn from seed) for m whose percentiles 25
// and 50 are the quartile and the median of the uncapped projections of a generation, so that
// caps at them act on some tokens and not on others.
func writeAxis(t testing.TB, m *model.Model, seed uint64) (string, *axis.Axis) {
	t.Helper()
	L, H := m.Config.NumLayers, m.Config.HiddenSize
	rng := rand.New(rand.NewPCG(seed, 4))
	a := &axis.Axis{Model: m.Name, Layers: L, Hidden: H, Percentiles: []float64{25, 50}}
	for range L {
		v := make([]float32, H)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		a.Axis = append(a.Axis, v)
	}
	monitor := steer.Plan{Record: true, Monitor: map[int][]float32{}}
	for l := range L {
		monitor.Monitor[l] = a.Axis[l]
	}
	c, err := steer.Compile(monitor, H, L)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := m.ChatPrompt(calibrationPrompt, true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Engine.Generate(t.Context(), []engine.Request{{Prompt: ids, MaxNewTokens: 24, IgnoreEOS: true}},
		engine.GenerateOptions{Hooks: c.Hooks})
	if err != nil {
		t.Fatal(err)
	}
	per := map[int][]float64{}
	for _, r := range c.Telemetry(res[0]) {
		per[r.Layer] = append(per[r.Layer], float64(r.Before))
	}
	a.Tau = [][]float32{make([]float32, L), make([]float32, L)}
	for l := range L {
		slices.Sort(per[l])
		a.Tau[0][l] = float32(per[l][len(per[l])/4])
		a.Tau[1][l] = float32(per[l][len(per[l])/2])
	}
	path := filepath.Join(t.TempDir(), "axis.safetensors")
	if err := axis.Write(path, a); err != nil {
		t.Fatal(err)
	}
	back, err := axis.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, back
}

// tinyModel writes and opens the random chat model.
func tinyModel(t testing.TB) *model.Model {
	t.Helper()
	return testmodels.Open(t, testmodels.Write(t, t.TempDir(), tinyServe, 11))
}

// startServer serves m (default: a fresh tiny model) with its axis as "assistant".
func startServer(t *testing.T, o options) *fixture {
	t.Helper()
	m := o.model
	if m == nil {
		m = tinyModel(t)
	}
	f := &fixture{m: m, logs: &bytes.Buffer{}, served: make(chan error, 1)}
	f.axisPath, f.ax = writeAxis(t, m, 3)
	files := []string{"assistant=" + f.axisPath}
	if o.second {
		var path string
		path, f.second = writeAxis(t, m, 5)
		files = append(files, "second="+path)
	}
	axes, err := LoadAxes(files, m)
	if err != nil {
		t.Fatal(err)
	}
	if o.maxBatch == 0 {
		o.maxBatch = 8
	}
	if o.maxQueue == 0 {
		o.maxQueue = 64
	}
	if o.maxBody == 0 {
		o.maxBody = 1 << 20
	}
	if o.maxClamps == 0 {
		o.maxClamps = DefaultMaxClamps
	}
	f.gen, err = m.Engine.NewBatcher(engine.BatcherOptions{MaxBatch: o.maxBatch, MaxQueue: o.maxQueue, MaxClamps: o.maxClamps})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Model: m, ModelName: "tiny", Axes: axes, Generator: f.gen, APIKey: o.apiKey,
		MaxBodyBytes: o.maxBody, MaxTokens: 200, MaxN: 4, MaxClamps: o.maxClamps, Logger: slog.New(slog.NewJSONHandler(&syncWriter{buf: f.logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.stop = cancel
	go func() { f.served <- srv.Serve(ctx, ln, 5*time.Second) }()
	f.url = "http://" + ln.Addr().String()
	key := o.apiKey
	if key == "" {
		key = "unused"
	}
	f.client = openai.NewClient(option.WithBaseURL(f.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	t.Cleanup(func() { f.shutdown(t) })
	return f
}

// shutdown stops the server and checks that it returned cleanly (once).
func (f *fixture) shutdown(t *testing.T) {
	t.Helper()
	if f.stop == nil {
		return
	}
	f.stop()
	f.stop = nil
	select {
	case err := <-f.served:
		if err != nil {
			t.Errorf("Serve returned %v after shutdown, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Serve did not return within 20 s of shutdown")
	}
}

// syncWriter serialises writes to a buffer.
type syncWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// post sends body to path and returns the status and decoded JSON.
func (f *fixture) post(t *testing.T, path, body string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: status %d, body not JSON: %q", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// sseEvents reads the data lines of a server-sent event stream.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	return out
}
