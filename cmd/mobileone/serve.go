package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/serve"
)

const serveUsage = `usage: mobileone serve [-w [NAME=]CKPT]... [-m s0..s4] [--addr :8080] [--threads N]
                     [--max-batch 8] [--max-wait 2ms] [--queue 128] [--timeout 30s] [--drain-delay 0s] ...

An HTTP inference server. Without -w it serves the built-in Fashion-MNIST model
as "fashion-mnist"; each -w serves a checkpoint, named NAME or after its file
(mobileone_s1.pth.tar: "mobileone_s1"). An int8 file (mobileone quantize) runs
on the int8 engine with the preprocessing it stores; /v1/models gives each
model's precision. -m s0..s4 checks that every float checkpoint is that
variant (it does not apply to int8 files); without -w it serves that variant
with random weights (seeded, for benchmarking only: the predictions mean
nothing, and /v1/models says so).

  POST /v1/models/NAME/classify  an image body (JPEG, PNG, GIF, WebP, BMP, TIFF), or
                                 multipart/form-data with image files; ?top=5&logits=true
  POST /v1/models/NAME/logits    a float32 .npy (N, C, H, W) body; .npy out, or JSON
                                 with ?format=json or Accept: application/json
  GET  /v1/models, /v1/models/NAME, /healthz, /readyz, /metrics (Prometheus)

  curl --data-binary @cat.jpg 'localhost:8080/v1/models/fashion-mnist/classify?top=3'
  curl -F a=@cat.jpg -F b=@dog.png localhost:8080/v1/models/fashion-mnist/classify

Requests that arrive together run as one batch of up to --max-batch images; a
partial batch waits up to --max-wait, and only while more requests for the model
are being read. When --queue images wait, requests get 503 with Retry-After.
Errors are 4xx (503 under overload) with a one-line JSON body {"error": "..."}.
On SIGTERM or Ctrl-C, /readyz turns 503, the server keeps answering for
--drain-delay (while load balancers notice), then stops accepting connections,
finishes the requests in flight (up to --drain-timeout) and exits 0; a second
signal exits at once with status 1. Logs (log/slog) go to stderr.`

// The garbage collector's room. The models' plans (packed weights and
// preallocated buffers for every batch size: 226 MB of heap for S0 with
// --max-batch 8) are nearly all of the live heap, and Go's default target
// (GOGC=100) lets the heap grow by as much again before the next
// collection: under load the requests' garbage (bodies, decoded images,
// answers, bookkeeping) fills that room and the RSS climbs towards twice
// the plans. Once the models are loaded, serve sets GOGC so that the room
// is about --gc-headroom-mb beyond the live heap, within
// [minGCPercent, 100]: S0 with --max-batch 8 gets 28, a model whose plans
// take under 64 MB Go's default. A collection costs a few ms of CPU (the
// plans' buffers hold no pointers).
const (
	defaultGCHeadroomMiB = 64
	minGCPercent         = 10
)

// gcPercentFor is the GOGC that gives a live heap of live bytes about
// headroom bytes of garbage, within [minGCPercent, 100].
func gcPercentFor(live, headroom uint64) int {
	if live == 0 {
		return 100
	}
	return int(min(max(headroom*100/live, minGCPercent), 100))
}

// liveHeap is the heap the last collection found live, in bytes.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// gcPercent is the garbage collector's target percentage (-1: off).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// weightList collects repeated -w flags.
type weightList []string

func (w *weightList) String() string     { return strings.Join(*w, ",") }
func (w *weightList) Set(v string) error { *w = append(*w, v); return nil }

// serveConfig is what cmdServe parsed.
type serveConfig struct {
	addr                                   string
	threads                                int
	opts                                   serve.Options
	readTimeout, writeTimeout, idleTimeout time.Duration
	drainDelay, drainTimeout               time.Duration
	weights                                []string
	variant                                string
	seed                                   uint64
	precision                              string // of the float models: model.Float32 or model.BFloat16
	// gcHeadroomMiB sets GOGC once the models are loaded (see
	// gcPercentFor; 0: leave Go's, which the GOGC environment variable sets).
	gcHeadroomMiB int
}

func cmdServe(args []string, stdout, stderr io.Writer) error {
	c, log, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	defer signal.Stop(sigs)
	return runServer(c, log, sigs, nil)
}

// parseServe parses serve's flags; the logger writes to stderr.
func parseServe(args []string, stderr io.Writer) (serveConfig, *slog.Logger, error) {
	fs := newFlags("serve", serveUsage, stderr)
	var c serveConfig
	var weights weightList
	fs.Var(&weights, "w", "checkpoint `[NAME=]FILE` to serve (repeatable); none: the built-in model")
	fs.Var(&weights, "weights", "same as -w")
	fs.StringVar(&c.variant, "m", "", "variant `s0..s4`: check each checkpoint is this variant; without -w, serve it with random weights")
	fs.StringVar(&c.variant, "model", "", "same as -m")
	fs.Uint64Var(&c.seed, "random-seed", 1, "seed of the random weights of -m without -w")
	precision := fs.String("precision", "", "arithmetic of the float models: `float32` (the default) or bf16 (bfloat16 weights and layer inputs, float32 sums; see predict -h); int8 files run in int8")
	fs.StringVar(&c.addr, "addr", ":8080", "listen on this `host:port`")
	fs.IntVar(&c.threads, "threads", runtime.GOMAXPROCS(0), "threads the kernels may use (as bench --threads)")
	fs.IntVar(&c.opts.MaxBatch, "max-batch", 8, "most images run as one batch")
	fs.DurationVar(&c.opts.MaxWait, "max-wait", 2*time.Millisecond, "longest a partial batch waits for requests still being read (0: never)")
	fs.IntVar(&c.opts.QueueSize, "queue", 128, "images that may wait per model; beyond that, 503 with Retry-After")
	fs.IntVar(&c.opts.MaxInFlight, "max-inflight", 256, "model requests handled at once; beyond that, 503 before reading the body")
	fs.IntVar(&c.opts.MaxImages, "max-images", 64, "most images (or tensor rows) per request; at most --queue")
	maxBodyMiB := fs.Int64("max-body-mb", 32, "largest request body, in MiB")
	maxMP := fs.Float64("max-megapixels", mobileone.DefaultMaxPixels/1e6, "refuse images larger than this from their header")
	fs.IntVar(&c.opts.Decoders, "decoders", runtime.GOMAXPROCS(0), "images decoded at once (bounds the memory of decoded pixels)")
	fs.DurationVar(&c.opts.Timeout, "timeout", 30*time.Second, "per-request limit from headers to answer; then 503")
	fs.DurationVar(&c.readTimeout, "read-timeout", 30*time.Second, "limit for reading a request, body included (slow clients)")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 65*time.Second, "limit from a request's headers to the end of its answer; more than --timeout")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "after SIGTERM, keep answering this long with /readyz 503 before closing the listener")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "after the drain delay, how long requests in flight may take to finish")
	fs.IntVar(&c.gcHeadroomMiB, "gc-headroom-mb", defaultGCHeadroomMiB, "once the models are loaded, set GOGC so that garbage may take about this many `MiB` beyond the live heap (GOGC 10..100; 0: Go's GOGC); the GOGC environment variable, if set, wins over the default (docs/serving.md, \"Memory under load\")")
	fs.StringVar(&c.opts.CORSOrigin, "cors-origin", "", "send Access-Control-Allow-Origin with this `origin` (\"*\" for any); default: no CORS")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug (every request), info (4xx too), warn or error")
	rest, err := parse(fs, args)
	if err != nil {
		return c, nil, err
	}
	if len(rest) > 0 {
		return c, nil, fmt.Errorf("unexpected argument %q (checkpoints go with -w)", rest[0])
	}
	c.weights = weights
	if err := c.check(*maxBodyMiB, *maxMP); err != nil {
		return c, nil, err
	}
	if c.precision, err = parsePrecisionFlag(*precision); err != nil {
		return c, nil, err
	}
	headroomSet := false
	fs.Visit(func(f *flag.Flag) { headroomSet = headroomSet || f.Name == "gc-headroom-mb" })
	if !headroomSet && os.Getenv("GOGC") != "" {
		c.gcHeadroomMiB = 0 // the environment's
	}
	if c.opts.MaxWait == 0 {
		c.opts.MaxWait = -1 // serve.Options: 0 means the default
	}
	c.opts.MaxBodyBytes = *maxBodyMiB << 20
	c.opts.MaxPixels = int(*maxMP * 1e6)
	logger, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return c, nil, err
	}
	c.opts.Logger = logger
	return c, logger, nil
}

func (c *serveConfig) check(maxBodyMiB int64, maxMP float64) error {
	switch {
	case c.threads < 1 || c.threads > 1024:
		return fmt.Errorf("--threads must be 1..1024, got %d", c.threads)
	case c.opts.MaxBatch < 1 || c.opts.MaxBatch > 256:
		return fmt.Errorf("--max-batch must be 1..256, got %d", c.opts.MaxBatch)
	case c.opts.MaxWait < 0:
		return fmt.Errorf("--max-wait must not be negative, got %v", c.opts.MaxWait)
	case c.opts.QueueSize < 1:
		return fmt.Errorf("--queue must be at least 1, got %d", c.opts.QueueSize)
	case c.opts.MaxInFlight < 1:
		return fmt.Errorf("--max-inflight must be at least 1, got %d", c.opts.MaxInFlight)
	case c.opts.MaxImages < 1 || c.opts.MaxImages > c.opts.QueueSize:
		return fmt.Errorf("--max-images must be 1..--queue (%d), got %d", c.opts.QueueSize, c.opts.MaxImages)
	case maxBodyMiB < 1 || maxBodyMiB > 1<<14:
		return fmt.Errorf("--max-body-mb must be 1..16384, got %d", maxBodyMiB)
	case maxMP <= 0 || maxMP > 1e6:
		return fmt.Errorf("--max-megapixels must be in (0, 1e6], got %g", maxMP)
	case c.opts.Decoders < 1:
		return fmt.Errorf("--decoders must be at least 1, got %d", c.opts.Decoders)
	case c.opts.Timeout <= 0 || c.readTimeout <= 0 || c.writeTimeout <= 0 || c.idleTimeout <= 0 || c.drainTimeout <= 0:
		return errors.New("--timeout, --read-timeout, --write-timeout, --idle-timeout and --drain-timeout must be positive")
	case c.writeTimeout <= c.opts.Timeout:
		return fmt.Errorf("--write-timeout (%v) must be more than --timeout (%v), or answers are cut off", c.writeTimeout, c.opts.Timeout)
	case c.drainDelay < 0:
		return fmt.Errorf("--drain-delay must not be negative, got %v", c.drainDelay)
	case c.gcHeadroomMiB < 0 || c.gcHeadroomMiB > 1<<20:
		return fmt.Errorf("--gc-headroom-mb must be 0..1048576, got %d", c.gcHeadroomMiB)
	}
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// handlerSwitch serves serve.Loading until the models are ready, then the
// server.
type handlerSwitch struct{ h atomic.Pointer[http.Handler] }

func (s *handlerSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (s *handlerSwitch) set(h http.Handler) { s.h.Store(&h) }

// runServer listens, loads the models (answering /healthz, and /readyz
// with 503, meanwhile), serves until the first signal, then drains: /readyz
// 503, drainDelay of service, no new connections, requests in flight
// finished. started, if set, is called with the address once listening.
func runServer(c serveConfig, log *slog.Logger, sigs <-chan os.Signal, started func(net.Addr)) error {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	sw := &handlerSwitch{}
	sw.set(serve.Loading())
	srv := &http.Server{
		Handler:           sw,
		ReadHeaderTimeout: min(10*time.Second, c.readTimeout),
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	if started != nil {
		started(ln.Addr())
	}

	type loaded struct {
		s   *serve.Server
		err error
	}
	ready := make(chan loaded, 1)
	go func() {
		kernel.SetThreads(c.threads)
		models, err := loadServeModels(c, log)
		if err != nil {
			ready <- loaded{nil, err}
			return
		}
		s, err := serve.New(models, c.opts)
		ready <- loaded{s, err}
	}()
	var s *serve.Server
	select {
	case l := <-ready:
		if l.err != nil {
			srv.Close()
			return l.err
		}
		s = l.s
	case sig := <-sigs:
		log.Info("signal while loading: stopping", "signal", sig.String())
		srv.Close()
		if l := <-ready; l.s != nil {
			l.s.Close()
		}
		return nil
	case err := <-served:
		return err
	}
	defer s.Close()
	if c.gcHeadroomMiB > 0 {
		runtime.GC() // what is live now is the models and their plans
		debug.SetGCPercent(gcPercentFor(liveHeap(), uint64(c.gcHeadroomMiB)<<20))
	}
	sw.set(s)
	log.Info("ready", "gogc", gcPercent(), "live_heap_mb", liveHeap()>>20, "threads", c.threads,
		"max_batch", c.opts.MaxBatch, "max_wait", c.opts.MaxWait.String(), "queue", c.opts.QueueSize, "timeout", c.opts.Timeout.String(), "kernels", kernel.Kernels(), "layout", model.DefaultLayout())

	var sig os.Signal
	select {
	case sig = <-sigs:
	case err := <-served:
		return err
	}
	s.Drain()
	log.Info("draining: /readyz now answers 503", "signal", sig.String(), "drain_delay", c.drainDelay.String(),
		"drain_timeout", c.drainTimeout.String())
	if c.drainDelay > 0 {
		select {
		case <-time.After(c.drainDelay):
		case sig := <-sigs:
			srv.Close()
			return fmt.Errorf("second signal (%s) during the drain: stopped without finishing requests in flight", sig)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
	defer cancel()
	go func() {
		select {
		case sig := <-sigs:
			log.Warn("second signal: stopping without finishing requests in flight", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("drain: requests still in flight after %v (or a second signal): %w", c.drainTimeout, err)
	}
	s.Close()
	log.Info("drained: every request in flight was answered; exiting")
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// loadServeModels loads what the flags name: the built-in model, a zoo
// variant with random weights, or checkpoints.
func loadServeModels(c serveConfig, log *slog.Logger) ([]serve.Model, error) {
	if len(c.weights) == 0 {
		if c.variant != "" {
			cfg, err := model.Variant(c.variant)
			if err != nil {
				return nil, err
			}
			m, err := mobileone.New(cfg, true, c.seed)
			if err != nil {
				return nil, err
			}
			m.Precision = c.precision
			log.Warn("serving random weights: for benchmarking only, the predictions mean nothing",
				"model", cfg.Name, "seed", c.seed)
			return []serve.Model{{Name: cfg.Name, Model: m, Weights: fmt.Sprintf("random (seed %d)", c.seed),
				Note: "random weights, for benchmarking only: the predictions mean nothing"}}, nil
		}
		m, err := zoo.Default()
		if err != nil {
			return nil, err
		}
		m.Precision = c.precision
		log.Info("no -w given: serving the built-in model", "model", "fashion-mnist", "what", zoo.DefaultName)
		return []serve.Model{{Name: "fashion-mnist", Model: m, Weights: "built-in",
			Note: "MobileOne trained on Fashion-MNIST by this project (10 clothing classes, grey 28x28)"}}, nil
	}
	var out []serve.Model
	for _, w := range c.weights {
		name, path := "", w
		if n, p, ok := strings.Cut(w, "="); ok && !strings.ContainsAny(n, `/\`) {
			name, path = n, p
		}
		if name == "" {
			name = modelName(path)
		}
		if quant.IsInt8(path) {
			if c.variant != "" {
				return nil, fmt.Errorf("%s is an int8 model, which stores its settings: -m does not apply", path)
			}
			q, err := quant.Load(path)
			if err != nil {
				return nil, err
			}
			log.Info("loaded", "model", name, "file", path, "variant", q.Config.Name, "classes", q.Config.NumClasses,
				"precision", "int8")
			out = append(out, serve.Model{Name: name, Int8: q, Weights: filepath.Base(path)})
			continue
		}
		m, err := mobileone.Load(path, mobileone.LoadOptions{Variant: c.variant})
		if err != nil {
			return nil, err
		}
		m.Precision = c.precision
		log.Info("loaded", "model", name, "file", path, "variant", m.Config.Name, "classes", m.Config.NumClasses,
			"precision", c.precision)
		out = append(out, serve.Model{Name: name, Model: m, Weights: filepath.Base(path)})
	}
	return out, nil
}

// modelName names a model after its checkpoint file: the base name without
// its extensions, unsafe characters replaced.
func modelName(path string) string {
	base := filepath.Base(path)
	for _, ext := range []string{".tar", ".pth", ".pt", ".safetensors"} {
		base = strings.TrimSuffix(base, ext)
	}
	base = strings.Trim(unsafeName.ReplaceAllString(base, "-"), "-._")
	if len(base) > 64 {
		base = base[:64]
	}
	if base == "" {
		base = "model"
	}
	return base
}
