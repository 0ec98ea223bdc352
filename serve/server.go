package serve

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"tether/model"
)

// Config configures a Server.
type Config struct {
	// Model is the opened model; ModelName its id in requests and /v1/models.
	Model     *model.Model
	ModelName string
	// Axes are the loaded axes by name.
	Axes map[string]AxisFile
	// Generator runs the sequences.
	Generator Generator
	// APIKey, when not empty, must be sent as "Authorization: Bearer KEY" on every request.
	APIKey string
	// MaxBodyBytes bounds a request body (413 beyond).
	MaxBodyBytes int64
	// MaxPromptTokens bounds a prompt (0: the model's context minus one).
	MaxPromptTokens int
	// MaxTokens bounds max_tokens; it is also the default.
	MaxTokens int
	// MaxN bounds n.
	MaxN int
	// MaxContext is the generator's bound on prompt plus generated tokens (0: the model's
	// context).
	MaxContext int
	// MaxClamps is the generator's bound on the clamps of a sequence's hooks on one layer
	// (engine.BatcherOptions.MaxClamps; 0: DefaultMaxClamps): a request needing more gets 400.
	MaxClamps int
	// Logger receives the structured logs (nil: slog.Default()).
	Logger *slog.Logger
}

// DefaultMaxClamps is the default bound on the clamps per layer of a request (caps and
// ablations on one layer, and one to record the projection axis when it is not the first
// one's): enough for caps along two axes and an ablation. Every row of a batch pays for the
// bound at every step, steered or not.
const DefaultMaxClamps = 4

// Server answers the OpenAI-compatible API with tether's steering.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
	nextID  atomic.Uint64
	idBase  string
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Model == nil || cfg.Model.Engine == nil:
		return nil, fmt.Errorf("serve: no model (with weights) to serve")
	case cfg.Generator == nil:
		return nil, fmt.Errorf("serve: no generator")
	case cfg.ModelName == "":
		return nil, fmt.Errorf("serve: empty model name")
	case cfg.MaxBodyBytes <= 0 || cfg.MaxTokens <= 0 || cfg.MaxN <= 0:
		return nil, fmt.Errorf("serve: limits must be positive: body %d bytes, max_tokens %d, n %d", cfg.MaxBodyBytes, cfg.MaxTokens, cfg.MaxN)
	}
	ctxLen := cfg.Model.Config.MaxPositions
	if cfg.MaxContext <= 0 || cfg.MaxContext > ctxLen {
		cfg.MaxContext = ctxLen
	}
	if cfg.MaxPromptTokens <= 0 || cfg.MaxPromptTokens > cfg.MaxContext-1 {
		cfg.MaxPromptTokens = cfg.MaxContext - 1
	}
	if cfg.MaxClamps <= 0 {
		cfg.MaxClamps = DefaultMaxClamps
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: newMetrics(), mux: http.NewServeMux(), idBase: hex.EncodeToString(b)}
	s.mux.HandleFunc("POST /v1/chat/completions", s.chat)
	s.mux.HandleFunc("POST /v1/completions", s.completions)
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /v1/models/{id}", s.modelByID)
	s.mux.HandleFunc("GET /v1/steering", s.steering)
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /metrics", s.metricsPage)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found",
			Message: fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return s, nil
}

// Handler is the server's HTTP handler: request ids, logs, metrics and the API key check
// around the routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := fmt.Sprintf("%s-%d", s.idBase, s.nextID.Add(1))
		w.Header().Set("X-Request-Id", id)
		rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		r = r.WithContext(ctx)
		if s.authorized(r) {
			r.Body = http.MaxBytesReader(rw, r.Body, s.cfg.MaxBodyBytes)
			s.mux.ServeHTTP(rw, r)
		} else {
			writeError(rw, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: "invalid_api_key",
				Message: "missing or wrong API key: send it as \"Authorization: Bearer KEY\""})
		}
		s.metrics.request(r.URL.Path, rw.status)
		s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rw.status,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

// authorized checks the API key in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.cfg.APIKey)) == 1
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// statusWriter records the status code and passes flushes through (SSE).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Serve answers on ln until ctx ends, then shuts down: it stops accepting, lets in-flight
// requests finish for up to grace, cancels those still running, and closes the generator. It
// returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	base, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	hs := &http.Server{Handler: s.Handler(), BaseContext: func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 30 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "model", s.cfg.ModelName, "axes", len(s.cfg.Axes))
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("grace period over: cancelling in-flight requests", "error", err)
		cancelAll()
		_ = hs.Close()
	}
	cctx, cancel2 := context.WithTimeout(context.Background(), grace+5*time.Second)
	defer cancel2()
	if err := s.cfg.Generator.Close(cctx); err != nil {
		return err
	}
	s.log.Info("stopped")
	return nil
}

// decode reads a JSON body into v, mapping errors to OpenAI's shape.
func decode(r *http.Request, v any) *apiError {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
				Message: fmt.Sprintf("request body over the limit of %d bytes", tooBig.Limit)}
		}
		return invalid("", "reading the request body: %v", err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := strings.TrimPrefix(te.Field, "commonParams.")
			return invalid(field, "field %s: expected %s, got JSON %s", field, te.Type.String(), te.Value)
		case errors.As(err, &se):
			return invalid("", "malformed JSON at byte %d: %v", se.Offset, err)
		default:
			return invalid("", "invalid request body: %v", err)
		}
	}
	return nil
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{s.modelObject()}})
}

func (s *Server) modelByID(w http.ResponseWriter, r *http.Request) {
	if id := r.PathValue("id"); id != s.cfg.ModelName {
		writeError(w, s.modelNotFound(id))
		return
	}
	writeJSON(w, http.StatusOK, s.modelObject())
}

func (s *Server) modelObject() map[string]any {
	return map[string]any{"id": s.cfg.ModelName, "object": "model", "created": 0, "owned_by": "tether",
		"context_length": s.cfg.Model.Config.MaxPositions}
}

func (s *Server) modelNotFound(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: "model", Code: "model_not_found",
		Message: fmt.Sprintf("the model %q does not exist: this server serves %q", id, s.cfg.ModelName)}
}

func (s *Server) steering(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": s.cfg.ModelName,
		"model_layers": s.cfg.Model.Config.NumLayers, "data": describeAxes(s.cfg.Axes)})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	st := s.cfg.Generator.Stats()
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "model": s.cfg.ModelName, "queued": st.Queued, "running": st.Active})
}

func (s *Server) metricsPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.metrics.write(w, s.cfg.Generator.Stats())
}
