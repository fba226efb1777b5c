package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// job is one image of a request on its way through a model's batcher.
type job struct {
	x   []float32 // input: (C, H, W) flattened, read by the batcher
	out []float32 // logits (classes), written by the batcher
	req *pending

	// Written by the batcher before the job is finished.
	queued    time.Time     // when it was submitted
	started   time.Time     // when its batch started
	inference time.Duration // how long its batch ran
	batchSize int
}

// pending is a request's set of jobs; done closes when the last one is
// finished.
type pending struct {
	ctx       context.Context
	remaining atomic.Int32
	done      chan struct{}
	mu        sync.Mutex
	err       error
}

func newPending(ctx context.Context, n int) *pending {
	p := &pending{ctx: ctx, done: make(chan struct{})}
	p.remaining.Store(int32(n))
	return p
}

func (p *pending) finish(err error) {
	if err != nil {
		p.mu.Lock()
		if p.err == nil {
			p.err = err
		}
		p.mu.Unlock()
	}
	if p.remaining.Add(-1) == 0 {
		close(p.done)
	}
}

// wait returns when every job is finished or the request's context ends.
func (p *pending) wait() error {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.err
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

var (
	errQueueFull    = errors.New("queue full")
	errShuttingDown = errors.New("shutting down")
)

// plan runs batches of a fixed number of images: x (N, C, H, W)
// flattened in, the outputs (N, Outputs()) out, in a slice that belongs to
// the plan and is overwritten by the next Run. The float engine
// (*model.Plan) and the int8 one (*graph.Int8Plan) are plans.
type plan interface {
	Run(x []float32) ([]float32, error)
	Outputs() int
}

// batcher runs one model's jobs in batches of up to maxBatch images: it
// takes what is queued when the engine becomes free and, while requests
// for the model are still being read and decoded, waits up to maxWait for
// them to fill the batch. Each batch size has its own plan (packed weights,
// preallocated buffers), made and run once at start, so steady-state
// batches allocate nothing.
type batcher struct {
	name     string
	per, out int // floats per image in and out
	maxBatch int
	maxWait  time.Duration
	capacity int64
	compute  *sync.Mutex // shared by every model's batcher: one batch at a time

	queue     chan *job
	queued    atomic.Int64 // images submitted and not yet taken
	preparing atomic.Int64 // requests for this model being read and decoded
	waiting   atomic.Int32 // batches waiting for the engine (tests wait on it)

	mu      sync.RWMutex // held for writing to stop; submit holds it for reading
	stopped bool
	stop    chan struct{}
	done    chan struct{}

	plans []plan    // plans[n-1] runs n images
	x     []float32 // the batch's input, maxBatch*per
	batch []*job
	timer *time.Timer

	onPanic func(v any)

	batchSize  prometheus.Observer
	batchTime  prometheus.Observer
	queueWait  prometheus.Observer
	queueDepth prometheus.Gauge
}

// newBatcher makes the batcher of a model whose images have per values:
// newPlan(n) plans the model for batches of n images.
func newBatcher(name string, per int, newPlan func(n int) (plan, error), o *Options, compute *sync.Mutex, met *metrics) (*batcher, error) {
	b := &batcher{
		name: name, per: per, maxBatch: o.MaxBatch, maxWait: o.MaxWait,
		capacity: int64(o.QueueSize), compute: compute,
		queue: make(chan *job, o.QueueSize), stop: make(chan struct{}), done: make(chan struct{}),
		batch:      make([]*job, 0, o.MaxBatch),
		batchSize:  met.batchSize.WithLabelValues(name),
		batchTime:  met.batchTime.WithLabelValues(name),
		queueWait:  met.queueWait.WithLabelValues(name),
		queueDepth: met.queueDepth.WithLabelValues(name),
	}
	b.x = make([]float32, o.MaxBatch*b.per)
	for n := 1; n <= o.MaxBatch; n++ {
		p, err := newPlan(n)
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		// One run allocates the plan's buffers for the current number of
		// threads (kernel.SetThreads before New), so serving allocates
		// nothing and the memory is all there from the start.
		if _, err := p.Run(b.x[:n*b.per]); err != nil {
			return nil, fmt.Errorf("model %q: %w", name, err)
		}
		b.plans = append(b.plans, p)
	}
	b.out = b.plans[0].Outputs()
	b.timer = time.NewTimer(time.Hour)
	b.timer.Stop()
	return b, nil
}

// submit queues jobs, all or none: errQueueFull if they do not fit,
// errShuttingDown after close.
func (b *batcher) submit(jobs []*job) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.stopped {
		return errShuttingDown
	}
	n := int64(len(jobs))
	for {
		q := b.queued.Load()
		if q+n > b.capacity {
			return errQueueFull
		}
		if b.queued.CompareAndSwap(q, q+n) {
			break
		}
	}
	now := time.Now()
	for _, j := range jobs {
		j.queued = now
		b.queue <- j // never blocks: queued counts what is in the channel
	}
	b.queueDepth.Set(float64(b.queued.Load()))
	return nil
}

// close stops taking jobs; the batch running finishes, those still queued
// fail with errShuttingDown. It returns when the batcher has stopped.
func (b *batcher) close() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.stop)
	}
	b.mu.Unlock()
	<-b.done
}

func (b *batcher) loop() {
	defer close(b.done)
	for {
		select {
		case <-b.stop: // before any queued job
			b.failQueued()
			return
		default:
		}
		select {
		case j := <-b.queue:
			b.take(j)
		case <-b.stop:
			b.failQueued()
			return
		}
		if len(b.batch) == 0 {
			continue // its request had gone
		}
		b.collect()
		b.run()
	}
}

// take moves j from the queue into the batch, or finishes it if its
// request has ended.
func (b *batcher) take(j *job) {
	b.queueDepth.Set(float64(b.queued.Add(-1)))
	if err := j.req.ctx.Err(); err != nil {
		j.req.finish(err)
		return
	}
	b.batch = append(b.batch, j)
}

// collect fills the batch with what is queued, then waits up to maxWait
// (from now) for more, but only while requests for this model are still
// being read or decoded: otherwise nothing is on its way.
func (b *batcher) collect() {
	var deadline time.Time
	for len(b.batch) < b.maxBatch {
		select {
		case j := <-b.queue:
			b.take(j)
			continue
		default:
		}
		if b.maxWait <= 0 || b.preparing.Load() == 0 {
			return
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(b.maxWait)
		}
		left := deadline.Sub(now)
		if left <= 0 {
			return
		}
		// Poll in short steps so that a request that fails while being
		// decoded (preparing drops to 0) does not hold the batch back.
		b.timer.Reset(min(left, 250*time.Microsecond))
		select {
		case j := <-b.queue:
			b.timer.Stop() // (Go 1.23 timers: no stale tick after Stop)
			b.take(j)
		case <-b.timer.C:
		case <-b.stop:
			b.timer.Stop()
			return
		}
	}
}

// run runs the batch and finishes its jobs.
func (b *batcher) run() {
	n := len(b.batch)
	defer func() {
		if v := recover(); v != nil {
			if b.onPanic != nil {
				b.onPanic(v)
			}
			for _, j := range b.batch {
				j.req.finish(fmt.Errorf("internal error in model %q", b.name))
			}
		}
		clear(b.batch)
		b.batch = b.batch[:0]
	}()
	x := b.x[:n*b.per]
	for i, j := range b.batch {
		copy(x[i*b.per:(i+1)*b.per], j.x)
	}
	t0, y, err := b.infer(x, n)
	d := time.Since(t0)
	b.batchSize.Observe(float64(n))
	b.batchTime.Observe(d.Seconds())
	for i, j := range b.batch {
		if err == nil {
			copy(j.out, y[i*b.out:(i+1)*b.out])
		}
		j.started, j.inference, j.batchSize = t0, d, n
		b.queueWait.Observe(t0.Sub(j.queued).Seconds())
		j.req.finish(err)
	}
}

// infer runs the plan for n images while holding the engine; the engine
// is released even if the plan panics (run recovers).
func (b *batcher) infer(x []float32, n int) (t0 time.Time, y []float32, err error) {
	b.waiting.Add(1)
	b.compute.Lock()
	b.waiting.Add(-1)
	defer b.compute.Unlock()
	t0 = time.Now()
	y, err = b.plans[n-1].Run(x)
	return t0, y, err
}

func (b *batcher) failQueued() {
	for {
		select {
		case j := <-b.queue:
			b.queueDepth.Set(float64(b.queued.Add(-1)))
			j.req.finish(errShuttingDown)
		default:
			return
		}
	}
}
