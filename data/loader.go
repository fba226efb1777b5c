package data

import (
	"errors"
	"fmt"
	"iter"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/tensor"
)

// Options configure a Loader.
type Options struct {
	// BatchSize is the number of samples per batch (> 0).
	BatchSize int
	// Shuffle draws a new order every epoch from (Seed, epoch); otherwise
	// samples come in index order.
	Shuffle bool
	// DropLast drops the final batch when it is smaller than BatchSize.
	DropLast bool
	// Even splits an epoch of n samples into ceil(n/BatchSize) batches
	// whose sizes differ by at most one (200 samples at BatchSize 128: two
	// batches of 100), so that every sample is seen and no batch is a small
	// remainder (BatchNorm's statistics over a handful of images are
	// noise). It excludes DropLast.
	Even bool
	// Workers is the number of goroutines that read, augment and assemble
	// batches (each worker builds whole batches). 0 means GOMAXPROCS.
	Workers int
	// Prefetch is how many batches may be in flight (being built or ready)
	// ahead of the consumer. 0 means 2*Workers.
	Prefetch int
	// Transform turns each image into (C, H, W) floats; nil means ToTensor
	// only (x/255, channels as stored). Every sample of a batch must come
	// out the same shape.
	Transform *Transform
	// Seed drives the shuffle and every augmentation.
	Seed uint64
}

// Loader produces batches from a Dataset: see Epoch.
type Loader struct {
	ds   Dataset
	opts Options
	tr   atomic.Pointer[compiled]
	free chan *Batch // released batches, for reuse
}

// Batch is one batch: X (N, C, H, W), Labels and Indices (dataset indices)
// of length N. It belongs to the consumer until Release.
type Batch struct {
	X       *tensor.Tensor
	Labels  []int
	Indices []int
	Epoch   int
	Step    int // batch number within the epoch
	l       *Loader
	pooled  atomic.Bool // in the loader's free list
}

// Release hands the batch's buffers back to the loader for reuse. The batch
// (X.Data included) must not be used afterwards. Calling it is optional;
// an unreleased batch is simply garbage collected.
func (b *Batch) Release() {
	if b == nil || b.l == nil || !b.pooled.CompareAndSwap(false, true) {
		return // a second Release must not hand the buffers out twice
	}
	select {
	case b.l.free <- b:
	default:
	}
}

// NewLoader checks the options and returns a loader over ds.
func NewLoader(ds Dataset, opts Options) (*Loader, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, errors.New("data: empty dataset")
	}
	if opts.BatchSize <= 0 {
		return nil, fmt.Errorf("data: batch size %d", opts.BatchSize)
	}
	if opts.Workers < 0 || opts.Prefetch < 0 {
		return nil, fmt.Errorf("data: %d workers, prefetch %d", opts.Workers, opts.Prefetch)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 2 * opts.Workers
	}
	if opts.DropLast && opts.Even {
		return nil, errors.New("data: DropLast and Even exclude each other")
	}
	if opts.DropLast && ds.Len() < opts.BatchSize {
		return nil, fmt.Errorf("data: %d samples make no full batch of %d with DropLast", ds.Len(), opts.BatchSize)
	}
	l := &Loader{ds: ds, opts: opts, free: make(chan *Batch, opts.Prefetch+2)}
	if err := l.SetTransform(opts.Transform); err != nil {
		return nil, err
	}
	return l, nil
}

// SetTransform replaces the transform for epochs started afterwards (for
// example progressive resizing: 160, 192, then 224).
func (l *Loader) SetTransform(t *Transform) error {
	c, err := t.compile()
	if err != nil {
		return err
	}
	l.tr.Store(c)
	return nil
}

// Len returns the number of batches per epoch.
func (l *Loader) Len() int { return l.Batches(l.ds.Len()) }

// Order returns the sample order of epoch e: a permutation drawn from
// (Seed, e) with Shuffle, else 0..Len-1.
func (l *Loader) Order(e int) []int {
	order := make([]int, l.ds.Len())
	for i := range order {
		order[i] = i
	}
	if l.opts.Shuffle {
		NewRNG(mix(domainShuffle, l.opts.Seed, uint64(e)), mix(domainShuffle, uint64(e), l.opts.Seed)).Shuffle(order)
	}
	return order
}

// Epoch returns the batches of epoch e in order:
//
//	for b, err := range l.Epoch(e) { ... }
//
// Workers build the batches in parallel with the consumer, up to Prefetch
// ahead. On an error (a sample that cannot be read, or a shape mismatch) the
// iteration yields (nil, err) and stops. Breaking out of the loop stops the
// workers before the loop statement returns.
func (l *Loader) Epoch(e int) iter.Seq2[*Batch, error] { return l.EpochFrom(e, 0) }

// EpochFrom is Epoch starting at batch step (to resume mid-epoch): the
// batches are the same as Epoch(e)'s from that step on.
func (l *Loader) EpochFrom(e, step int) iter.Seq2[*Batch, error] {
	return l.EpochOrder(e, step, nil)
}

// Batches returns the number of batches an epoch of n samples makes.
func (l *Loader) Batches(n int) int {
	bs := l.opts.BatchSize
	if l.opts.DropLast {
		return n / bs
	}
	return (n + bs - 1) / bs
}

// span returns the positions [lo, hi) in an epoch's order of n samples that
// batch s covers.
func (l *Loader) span(n, s int) (lo, hi int) {
	bs := l.opts.BatchSize
	if !l.opts.Even {
		return s * bs, min((s+1)*bs, n)
	}
	nb := l.Batches(n)
	base, extra := n/nb, n%nb // the first extra batches get one more
	lo = s*base + min(s, extra)
	hi = lo + base
	if s < extra {
		hi++
	}
	return lo, hi
}

// EpochOrder is EpochFrom over the given samples, in the given order (dataset
// indices, for example a subset of Order(e) when a trainer prunes samples it
// has learned): Batches(len(order)) batches, each sample augmented exactly as
// in a full epoch e. A nil order is Order(e). Indices outside the dataset
// end the iteration with an error.
func (l *Loader) EpochOrder(e, step int, order []int) iter.Seq2[*Batch, error] {
	return func(yield func(*Batch, error) bool) {
		order := order
		if order == nil {
			order = l.Order(e)
		} else {
			for _, i := range order {
				if i < 0 || i >= l.ds.Len() {
					yield(nil, fmt.Errorf("data: epoch %d: sample index %d outside the %d samples", e, i, l.ds.Len()))
					return
				}
			}
		}
		nb := l.Batches(len(order))
		if step < 0 || step >= nb {
			return
		}
		tr := l.tr.Load()
		P, W := l.opts.Prefetch, l.opts.Workers
		W = min(W, nb-step)

		type result struct {
			b   *Batch
			err error
		}
		done := make(chan struct{})
		jobs := make(chan int)
		tokens := make(chan struct{}, P) // batches in flight
		// Batch s goes to slots[s%P]; at most P batches are in flight, so a
		// slot is always empty when its next batch is finished.
		slots := make([]chan result, P)
		for i := range slots {
			slots[i] = make(chan result, 1)
		}
		var wg sync.WaitGroup
		for range W {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w := &worker{rng: NewRNG(0, 0)}
				for s := range jobs {
					b, err := l.build(w, tr, order, e, s, done)
					slots[s%P] <- result{b, err}
				}
			}()
		}
		go func() {
			defer close(jobs)
			for s := step; s < nb; s++ {
				select {
				case tokens <- struct{}{}:
				case <-done:
					return
				}
				select {
				case jobs <- s:
				case <-done:
					return
				}
			}
		}()
		defer func() {
			close(done)
			wg.Wait()
		}()
		for s := step; s < nb; s++ {
			r := <-slots[s%P]
			<-tokens
			if r.err != nil {
				yield(nil, r.err)
				return
			}
			if !yield(r.b, nil) {
				return
			}
		}
	}
}

// worker holds one goroutine's reusable state.
type worker struct {
	rng *RNG
}

var errStopped = errors.New("data: loader stopped")

// build assembles batch s of epoch e.
func (l *Loader) build(w *worker, tr *compiled, order []int, e, s int, done <-chan struct{}) (*Batch, error) {
	lo, hi := l.span(len(order), s)
	idx := order[lo:hi]
	var b *Batch
	select {
	case b = <-l.free:
		b.pooled.Store(false)
	default:
		b = &Batch{l: l, X: &tensor.Tensor{}}
	}
	b.Epoch, b.Step = e, s
	b.Indices = append(b.Indices[:0], idx...)
	b.Labels = b.Labels[:0]
	var per int
	var shape [3]int
	for k, i := range idx {
		select {
		case <-done:
			return nil, errStopped
		default:
		}
		m, label, err := l.sample(w, tr, e, i)
		if err != nil {
			return nil, err
		}
		c := tr.outChannels(m)
		sh := [3]int{c, m.Height, m.Width}
		if k == 0 {
			shape, per = sh, c*m.Height*m.Width
			n := len(idx) * per
			if cap(b.X.Data) < n {
				b.X.Data = make([]float32, n)
			}
			b.X.Data = b.X.Data[:n]
			b.X.Shape = append(b.X.Shape[:0], len(idx), c, m.Height, m.Width)
		} else if sh != shape {
			return nil, fmt.Errorf("data: epoch %d batch %d: sample %d is %s after the transform but sample %d is %s; add a Resize/CenterCrop or RandomResizedCrop",
				e, s, i, tensor.ShapeString(sh[:]), idx[0], tensor.ShapeString(shape[:]))
		}
		tr.write(m, b.X.Data[k*per:(k+1)*per])
		b.Labels = append(b.Labels, label)
	}
	return b, nil
}

// sample reads and transforms dataset item i with its own RNG stream.
func (l *Loader) sample(w *worker, tr *compiled, e, i int) (*imageproc.Image8, int, error) {
	m, label, err := l.ds.Get(i)
	if err != nil {
		return nil, 0, fmt.Errorf("data: sample %d: %w", i, err)
	}
	if m == nil || m.Width <= 0 || m.Height <= 0 || (m.Channels != 1 && m.Channels != 3) || len(m.Pix) < m.Width*m.Height*m.Channels {
		return nil, 0, fmt.Errorf("data: sample %d: empty or malformed image", i)
	}
	w.rng.Seed(SampleSeed(l.opts.Seed, e, i))
	return tr.t.Image(m, w.rng), label, nil
}
