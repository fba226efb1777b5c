// Package serve is an HTTP inference server for MobileOne models: image
// classification and raw logits, with dynamic micro-batching, a bounded
// queue, request limits, Prometheus metrics, health and readiness.
//
//	s, err := serve.New([]serve.Model{{Name: "s1", Model: m, Weights: "s1.safetensors"}}, serve.Options{})
//	srv := &http.Server{Addr: ":8080", Handler: s}
//
// A model is a float one (*mobileone.Model) or an int8 one (*quant.Model,
// from mobileone quantize); both run on planned engines, one plan per
// batch size, behind the same batcher.
//
// Routes:
//
//	POST /v1/models/{name}/classify  an image body, or multipart/form-data with image files; ?top=5&logits=1
//	POST /v1/models/{name}/logits    a float32 .npy (N, C, H, W) or (C, H, W) body; .npy out, or JSON (?format=json)
//	GET  /v1/models                  the models served
//	GET  /v1/models/{name}           one of them
//	GET  /healthz                    200 while the process runs
//	GET  /readyz                     200 when serving, 503 while draining
//	GET  /metrics                    Prometheus text format
//
// A server holds no state between requests: replicas share nothing.
// Every error is a 4xx or 503 with a one-line JSON body {"error": "..."}
// naming the problem; a 500 means a bug.
package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Model is a model to serve under a name.
type Model struct {
	// Name is the model's name in URLs: 1-64 letters, digits, '.', '_'
	// or '-', starting with a letter or digit.
	Name string
	// Model is a float model, Int8 an int8 one (quant.Load, a file that
	// mobileone quantize wrote): set one of the two.
	Model *mobileone.Model
	Int8  *quant.Model
	// Weights says where the weights come from (a file name, "built-in",
	// "random (seed 1)"), shown in /v1/models.
	Weights string
	// Note, if set, is shown in /v1/models (e.g. that the weights are
	// random and the predictions meaningless).
	Note string
}

// Options are the server's limits and batching parameters; zero values
// take the defaults below.
type Options struct {
	// MaxBatch is the most images run as one batch (default 8).
	MaxBatch int
	// MaxWait is how long a batch that is not full may wait for requests
	// that are still being read and decoded (default 2 ms; negative: never
	// wait). A batch never waits when no request for its model is on its
	// way, so a lone request runs at once.
	MaxWait time.Duration
	// QueueSize is how many images may wait per model; beyond it requests
	// get 503 with Retry-After (default 128).
	QueueSize int
	// MaxInFlight is how many model requests (classify, logits) may be
	// handled at once, from reading the body to the answer; beyond it
	// requests get 503 with Retry-After before their body is read
	// (default 256).
	MaxInFlight int
	// MaxBodyBytes is the largest request body (default 32 MiB).
	MaxBodyBytes int64
	// MaxPixels is the largest image (width × height) decoded; larger ones
	// are refused from their header (default mobileone.DefaultMaxPixels).
	MaxPixels int
	// MaxImages is the most images (or tensor rows) in one request
	// (default 64; at most QueueSize).
	MaxImages int
	// Timeout bounds a request from its headers to its answer (waiting
	// for a decoder, the queue and the batch); when it passes the answer is
	// 503 (default 30 s).
	Timeout time.Duration
	// Decoders is how many images are decoded and preprocessed at once,
	// which bounds the memory decoded pixels take (default GOMAXPROCS).
	Decoders int
	// CORSOrigin, if set, is sent as Access-Control-Allow-Origin ("*" or
	// one origin) and OPTIONS preflight requests are answered. Default:
	// off, no CORS headers.
	CORSOrigin string
	// Logger receives the request log (2xx at Debug, 4xx at Info, 5xx
	// at Error) and batcher errors (default: slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.MaxBatch == 0 {
		o.MaxBatch = 8
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	if o.QueueSize == 0 {
		o.QueueSize = 128
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = 256
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.MaxPixels == 0 {
		o.MaxPixels = mobileone.DefaultMaxPixels
	}
	if o.MaxImages == 0 {
		o.MaxImages = min(64, o.QueueSize)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Decoders == 0 {
		o.Decoders = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.MaxBatch < 1 || o.MaxBatch > 256:
		return fmt.Errorf("max batch must be 1..256, got %d", o.MaxBatch)
	case o.QueueSize < 1:
		return fmt.Errorf("queue size must be at least 1, got %d", o.QueueSize)
	case o.MaxInFlight < 1:
		return fmt.Errorf("max in-flight requests must be at least 1, got %d", o.MaxInFlight)
	case o.MaxBodyBytes < 1:
		return fmt.Errorf("max body size must be at least 1 byte, got %d", o.MaxBodyBytes)
	case o.MaxPixels < 1:
		return fmt.Errorf("max pixels must be at least 1, got %d", o.MaxPixels)
	case o.MaxImages < 1 || o.MaxImages > o.QueueSize:
		return fmt.Errorf("max images per request must be 1..queue size (%d), got %d", o.QueueSize, o.MaxImages)
	case o.Timeout < 0:
		return fmt.Errorf("timeout must not be negative, got %v", o.Timeout)
	case o.Decoders < 1:
		return fmt.Errorf("decoders must be at least 1, got %d", o.Decoders)
	}
	return nil
}

// Server is an http.Handler serving models; see the package comment.
type Server struct {
	opts     Options
	models   map[string]*served
	order    []*served
	handler  http.Handler
	met      *metrics
	log      *slog.Logger
	draining atomic.Bool
	inFlight atomic.Int64
	decoders chan struct{}
	compute  sync.Mutex
	close    sync.Once
}

// served is a model with its batcher and what requests are checked against.
type served struct {
	Model
	size  int // input height and width
	chans int
	pre   imageproc.Params
	names []string // class names
	b     *batcher
	info  ModelInfo
	// The .npy headers of one image, (1, C, H, W) and (C, H, W), and a
	// pool of input buffers for them (readTensor's fast path).
	npyHead4, npyHead3 []byte
	inputs             sync.Pool
}

func (m *served) getInput() []float32 {
	if p, ok := m.inputs.Get().(*[]float32); ok {
		return *p
	}
	return make([]float32, m.b.per)
}

func (m *served) putInput(x []float32) { m.inputs.Put(&x) }

// ModelInfo describes a served model in /v1/models.
type ModelInfo struct {
	Name       string       `json:"name"`
	Variant    string       `json:"variant"` // s0..s4, or "custom"
	Input      [3]int       `json:"input"`   // (C, H, W) of the logits endpoint and after preprocessing
	Classes    int          `json:"classes"`
	Precision  string       `json:"precision"` // of the arithmetic
	Weights    string       `json:"weights"`
	Note       string       `json:"note,omitempty"`
	Parameters int          `json:"parameters"`
	MaxBatch   int          `json:"max_batch"`
	Preprocess preprocessJS `json:"preprocessing"`
}

type preprocessJS struct {
	ResizeShort int        `json:"resize_short"`
	Crop        int        `json:"crop"`
	Gray        bool       `json:"gray"`
	Mean        [3]float32 `json:"mean"`
	Std         [3]float32 `json:"std"`
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// New prepares the models (one plan per batch size 1..MaxBatch each, run
// once so that their buffers exist) and starts their batchers. The kernels
// use kernel.Threads() threads: set them before New. Close stops it.
func New(models []Model, opts Options) (*Server, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, errors.New("no models to serve")
	}
	s := &Server{opts: opts, models: map[string]*served{}, met: newMetrics(opts.MaxBatch), log: opts.Logger,
		decoders: make(chan struct{}, opts.Decoders)}
	for _, m := range models {
		if !validName.MatchString(m.Name) {
			s.Close()
			return nil, fmt.Errorf("model name %q: use 1-64 letters, digits, '.', '_' or '-'", m.Name)
		}
		if s.models[m.Name] != nil {
			s.Close()
			return nil, fmt.Errorf("two models named %q", m.Name)
		}
		sv, err := s.prepare(m)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.met.queueCap.WithLabelValues(m.Name).Set(float64(opts.QueueSize))
		s.met.queueDepth.WithLabelValues(m.Name).Set(0)
		s.models[m.Name] = sv
		s.order = append(s.order, sv)
		go sv.b.loop()
	}
	sort.Slice(s.order, func(i, j int) bool { return s.order[i].Name < s.order[j].Name })
	s.met.ready.Set(1)
	s.handler = s.routes()
	return s, nil
}

// prepare plans a model for every batch size and describes it.
func (s *Server) prepare(m Model) (*served, error) {
	var (
		cfg       model.Config
		precision string
		params    int
		newPlan   func(n, size int) (plan, error)
		sv        = &served{Model: m}
	)
	switch {
	case m.Model == nil && m.Int8 == nil:
		return nil, fmt.Errorf("model %q is nil: set Model (float) or Int8", m.Name)
	case m.Model != nil && m.Int8 != nil:
		return nil, fmt.Errorf("model %q: set Model (float) or Int8, not both", m.Name)
	case m.Model != nil:
		if !m.Model.IsFused() {
			m.Model = m.Model.Fuse()
			sv.Model = m
		}
		fm := m.Model
		p, err := model.ParsePrecision(fm.Precision)
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", m.Name, err)
		}
		cfg, precision, params = fm.Config, p, fm.Params()
		sv.pre, sv.names = fm.Preprocessing(), fm.ClassNames()
		newPlan = func(n, size int) (plan, error) {
			return model.NewPlanWith(fm.Model, n, size, size, model.PlanOptions{Precision: p})
		}
	default:
		q := m.Int8
		cfg, precision, params = q.Config, "int8", q.Config.Params()
		sv.pre, sv.names = q.Preprocessing(), q.ClassNames()
		newPlan = func(n, size int) (plan, error) { return q.NewPlan(n, size, size) }
	}
	sv.size, sv.chans = sv.pre.Crop, cfg.InChannels
	want := 3 // RGB
	if sv.pre.Gray {
		want = 1
	}
	if sv.chans != want {
		return nil, fmt.Errorf("model %q takes %d channels, its preprocessing makes %d", m.Name, sv.chans, want)
	}
	b, err := newBatcher(m.Name, sv.chans*sv.size*sv.size, func(n int) (plan, error) { return newPlan(n, sv.size) },
		&s.opts, &s.compute, s.met)
	if err != nil {
		return nil, err
	}
	b.onPanic = func(v any) { s.log.Error("batch failed", "model", m.Name, "panic", fmt.Sprint(v)) }
	sv.b = b
	sv.npyHead4, sv.npyHead3 = npyHeader(1, sv.chans, sv.size, sv.size), npyHeader(sv.chans, sv.size, sv.size)
	if len(sv.npyHead3) != len(sv.npyHead4) || len(sv.npyHead4) > 256 {
		sv.npyHead4, sv.npyHead3 = nil, nil // (never seen) no fast path
	}
	variant := cfg.Name
	if variant == "" {
		variant = "custom"
	}
	p := sv.pre
	sv.info = ModelInfo{
		Name: m.Name, Variant: variant, Input: [3]int{sv.chans, sv.size, sv.size}, Classes: b.out,
		Precision: precision, Weights: m.Weights, Note: m.Note, Parameters: params, MaxBatch: s.opts.MaxBatch,
		Preprocess: preprocessJS{ResizeShort: p.ResizeShort, Crop: p.Crop, Gray: p.Gray, Mean: p.Mean, Std: p.Std},
	}
	return sv, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes /readyz answer 503 so that load balancers stop sending
// requests; the server goes on answering those that still come.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.met.ready.Set(0)
}

// Ready reports whether /readyz answers 200.
func (s *Server) Ready() bool { return !s.draining.Load() }

// Close stops the batchers: images still queued get 503. Call it after
// http.Server.Shutdown has returned.
func (s *Server) Close() {
	s.close.Do(func() {
		s.Drain()
		for _, m := range s.models {
			m.b.close()
		}
	})
}

// Models describes the models served, by name.
func (s *Server) Models() []ModelInfo {
	out := make([]ModelInfo, len(s.order))
	for i, m := range s.order {
		out[i] = m.info
	}
	return out
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		// The same path with another method: a JSON 405 (a method-less
		// pattern is less specific, so it only gets the other methods).
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			allow := method
			if method == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			writeError(w, &apiError{http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, shortPath(r.URL.Path), method)})
		})
	}
	route(http.MethodPost, "/v1/models/{name}/classify", s.handleClassify)
	route(http.MethodPost, "/v1/models/{name}/logits", s.handleLogits)
	route(http.MethodGet, "/v1/models", s.handleModels)
	route(http.MethodGet, "/v1/models/{name}", s.handleModel)
	route(http.MethodGet, "/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route(http.MethodGet, "/readyz", func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	route(http.MethodGet, "/metrics", promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{}).ServeHTTP)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, fmt.Sprintf("no route %s %s (see GET /v1/models)", r.Method, shortPath(r.URL.Path))})
	})
	return s.observe(s.cors(mux))
}

// shortPath shortens a client's path for an error message.
func shortPath(p string) string {
	if len(p) > 200 {
		p = p[:200] + "..."
	}
	return p
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Models []ModelInfo `json:"models"`
	}{s.Models()})
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	m, err := s.model(r)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, m.info)
}

func (s *Server) model(r *http.Request) (*served, *apiError) {
	name := r.PathValue("name")
	if m := s.models[name]; m != nil {
		return m, nil
	}
	names := make([]string, len(s.order))
	for i, m := range s.order {
		names[i] = m.Name
	}
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	return nil, &apiError{http.StatusNotFound, fmt.Sprintf("unknown model %q (serving: %s)", name, strings.Join(names, ", "))}
}

// apiError is an answer other than 200: a status and a one-line message.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status, fmt.Sprintf(format, args...)}
}

// statusClientClosed is recorded (nginx's convention) when the client went
// away before the answer.
const statusClientClosed = 499

func writeError(w http.ResponseWriter, e *apiError) {
	if rec, ok := w.(*recorder); ok {
		rec.errMsg = e.msg
	}
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]string{"error": strings.ReplaceAll(e.msg, "\n", "; ")})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // messages quote '<f8' and the like
	var b []byte
	if err := enc.Encode(v); err != nil { // our own types: a bug
		status = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: encoding the answer failed"}` + "\n")
	} else {
		b = buf.Bytes()
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// recorder captures the status and error message of an answer for the
// metrics and the log.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	errMsg string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// observe counts, times and logs every request, and turns a panic into a
// 500 (a bug: bad input is always a 4xx).
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		rec := &recorder{ResponseWriter: w}
		s.met.inFlight.Inc()
		defer func() {
			s.met.inFlight.Dec()
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
				if rec.status == 0 {
					writeError(rec, errorf(http.StatusInternalServerError, "internal error"))
				}
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			d := time.Since(t0)
			handler, modelName := routeName(r.Pattern), ""
			if m := s.models[r.PathValue("name")]; m != nil {
				modelName = m.Name
			}
			s.met.requests.WithLabelValues(handler, modelName, strconv.Itoa(rec.status)).Inc()
			s.met.duration.WithLabelValues(handler, modelName).Observe(d.Seconds())
			level := slog.LevelDebug
			switch {
			case rec.status >= 500:
				level = slog.LevelError
			case rec.status >= 400:
				level = slog.LevelInfo
			}
			if s.log.Enabled(r.Context(), level) {
				attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
					slog.Int("status", rec.status), slog.Float64("ms", float64(d.Microseconds())/1e3),
					slog.Int64("bytes", rec.bytes), slog.String("remote", r.RemoteAddr)}
				if rec.errMsg != "" {
					attrs = append(attrs, slog.String("error", rec.errMsg))
				}
				s.log.LogAttrs(r.Context(), level, "request", attrs...)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// routeName turns a matched pattern into a metric label.
func routeName(pattern string) string {
	switch {
	case pattern == "" || pattern == "/":
		return "unmatched"
	case strings.HasSuffix(pattern, "/classify"):
		return "classify"
	case strings.HasSuffix(pattern, "/logits"):
		return "logits"
	case strings.HasSuffix(pattern, "{name}"):
		return "model"
	}
	_, path, _ := strings.Cut(pattern, "/")
	return strings.ReplaceAll(path, "/", "_")
}

// cors adds the CORS headers when an origin is configured and answers
// preflight requests.
func (s *Server) cors(next http.Handler) http.Handler {
	origin := s.opts.CORSOrigin
	if origin == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		if origin != "*" {
			h.Add("Vary", "Origin")
		}
		h.Set("Access-Control-Expose-Headers", "Server-Timing, Retry-After")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Accept")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Loading returns the handler to serve while the models load: /healthz
// answers 200, /readyz 503 "loading", anything else 503 with Retry-After.
func Loading() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		case "/readyz":
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
		default:
			writeError(w, errorf(http.StatusServiceUnavailable, "the server is loading its models"))
		}
	})
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
