package serve

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics, in a registry of its own
// (with the Go runtime and process collectors), served at /metrics.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec   // handler, model, code
	duration   *prometheus.HistogramVec // handler, model
	inFlight   prometheus.Gauge
	batchSize  *prometheus.HistogramVec // model
	batchTime  *prometheus.HistogramVec // model
	queueWait  *prometheus.HistogramVec // model
	queueDepth *prometheus.GaugeVec     // model
	queueCap   *prometheus.GaugeVec     // model
	images     *prometheus.CounterVec   // model, endpoint
	ready      prometheus.Gauge
}

func newMetrics(maxBatch int) *metrics {
	// 0.25 ms to 16 s, doubling.
	latency := prometheus.ExponentialBuckets(0.00025, 2, 17)
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mobileone_http_requests_total",
			Help: "HTTP requests answered, by route, model and status code (499: the client went away).",
		}, []string{"handler", "model", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mobileone_http_request_duration_seconds",
			Help:    "Time from the request's headers to its answer, by route and model.",
			Buckets: latency,
		}, []string{"handler", "model"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mobileone_http_requests_in_flight",
			Help: "Requests being handled.",
		}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mobileone_batch_size",
			Help:    "Images per batch run by the engine.",
			Buckets: prometheus.LinearBuckets(1, 1, maxBatch),
		}, []string{"model"}),
		batchTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mobileone_batch_duration_seconds",
			Help:    "Time the engine took per batch.",
			Buckets: latency,
		}, []string{"model"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mobileone_queue_wait_seconds",
			Help:    "Time an image waited in the queue before its batch started.",
			Buckets: latency,
		}, []string{"model"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mobileone_queue_depth",
			Help: "Images waiting for a batch.",
		}, []string{"model"}),
		queueCap: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mobileone_queue_capacity",
			Help: "Images the queue holds before requests are refused with 503.",
		}, []string{"model"}),
		images: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mobileone_images_total",
			Help: "Images answered, by model and endpoint.",
		}, []string{"model", "endpoint"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mobileone_ready",
			Help: "1 when /readyz answers 200, 0 while draining.",
		}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.batchSize, m.batchTime, m.queueWait,
		m.queueDepth, m.queueCap, m.images, m.ready,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
