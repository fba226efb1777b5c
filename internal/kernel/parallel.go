package kernel

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// threads is the number of goroutines the kernels may use; 0 means
// runtime.GOMAXPROCS(0).
var threads atomic.Int64

// SetThreads sets how many goroutines the kernels may use at most. n <= 0
// restores the default, runtime.GOMAXPROCS(0) at call time of each kernel.
func SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	threads.Store(int64(n))
}

// Threads reports how many goroutines the kernels currently use at most.
func Threads() int {
	if n := int(threads.Load()); n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// minParallelWork is the amount of work (multiply-adds) below which a kernel
// runs on the calling goroutine only: spawning costs about a microsecond.
var minParallelWork = 1 << 16

// workersFor returns how many workers to use for nTasks tasks totalling work
// multiply-adds.
func workersFor(nTasks int, work int) int {
	w := Threads()
	if work < minParallelWork {
		w = 1
	}
	if w > nTasks {
		w = nTasks
	}
	if w < 1 {
		w = 1
	}
	return w
}

// workersForLimit is workersFor capped at limit workers (0: no cap), the
// Workers field of the ops and the limit of LinearLimit and friends.
func workersForLimit(nTasks, work, limit int) int {
	w := workersFor(nTasks, work)
	if limit > 0 {
		w = min(w, limit)
	}
	return w
}

// parallelFor runs fn(s, t) for every task t in [0, nTasks) on up to workers
// goroutines (the caller is one of them). Tasks are handed out dynamically.
// Each worker gets its own scratch buffers s for its lifetime.
//
// The helpers come from a persistent pool (see pool); if the pool is busy
// (a concurrent or nested call), fresh goroutines are used instead.
func parallelFor(nTasks, workers int, fn func(s *scratch, t int)) {
	parallelForMode(nTasks, workers, fn, false)
}

// parallelForStatic is parallelFor with a fixed hand-out: of W workers, the
// caller runs tasks [0, n/W) and pool helper h tasks [(h+1)·n/W,
// (h+2)·n/W), so consecutive layers that split their pixels the same way
// find their input in the cache of the core that wrote it.
func parallelForStatic(nTasks, workers int, fn func(s *scratch, t int)) {
	parallelForMode(nTasks, workers, fn, true)
}

func parallelForMode(nTasks, workers int, fn func(s *scratch, t int), static bool) {
	if nTasks <= 0 {
		return
	}
	if workers <= 1 || nTasks == 1 {
		s := getScratch()
		for t := 0; t < nTasks; t++ {
			fn(s, t)
		}
		putScratch(s)
		return
	}
	workers = min(workers, nTasks)
	if thePool.mu.TryLock() {
		thePool.static = static
		thePool.run(nTasks, workers, fn)
		thePool.mu.Unlock()
		return
	}
	var next atomic.Int64
	run := func() {
		s := getScratch()
		for {
			t := int(next.Add(1) - 1)
			if t >= nTasks {
				break
			}
			fn(s, t)
		}
		putScratch(s)
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for i := 1; i < workers; i++ {
		go func() {
			defer wg.Done()
			run()
		}()
	}
	run()
	wg.Wait()
}

// pool is a set of persistent helper goroutines. Between jobs a helper spins
// for up to spinTime (so back-to-back layers start without a wake-up), then
// parks on its channel.
type pool struct {
	mu      sync.Mutex // held by the caller running a job
	helpers []*helper

	// The current job; written by the caller before word is published.
	fn     func(s *scratch, t int)
	nTasks int64
	static bool // contiguous task ranges per worker (parallelForStatic)
	next   atomic.Int64
	// word is gen<<16 | the number of helpers taking part in job gen.
	word atomic.Uint64
	// running counts participating helpers not yet finished.
	running atomic.Int32
}

type helper struct {
	id    int
	state atomic.Int32 // helperActive or helperParked
	wake  chan struct{}
	s     scratch
}

const (
	helperActive = iota
	helperParked
)

// spinTime is how long an idle helper polls for the next job before
// parking; MOBILEONE_SPIN (a Go duration, e.g. 50us) overrides it for
// measurements. Measured, alternating: 200 µs instead of 50 µs made S0's
// training step 5 % faster (its serial stretches between parallel passes
// outlast 50 µs, and a parked helper costs a futex wake-up) and inference
// neither faster nor slower (S2, S3 on two threads; up to 3 ms the same).
var spinTime = spinFromEnv(200 * time.Microsecond)

func spinFromEnv(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MOBILEONE_SPIN")); err == nil && d >= 0 {
		return d
	}
	return def
}

var thePool pool

// run executes one job with workers-1 helpers; p.mu is held.
func (p *pool) run(nTasks, workers int, fn func(s *scratch, t int)) {
	nh := min(workers-1, 1<<16-1)
	for len(p.helpers) < nh {
		h := &helper{id: len(p.helpers), wake: make(chan struct{}, 1)}
		p.helpers = append(p.helpers, h)
		go p.loop(h, p.word.Load()>>16)
	}
	p.fn = fn
	p.nTasks = int64(nTasks)
	p.next.Store(0)
	p.running.Store(int32(nh))
	gen := p.word.Load()>>16 + 1
	p.word.Store(gen<<16 | uint64(nh))
	for _, h := range p.helpers[:nh] {
		if h.state.CompareAndSwap(helperParked, helperActive) {
			h.wake <- struct{}{}
		}
	}
	s := getScratch()
	p.work(s, 0)
	putScratch(s)
	for i := 0; p.running.Load() != 0; i++ {
		if i > 100 {
			runtime.Gosched()
		}
	}
	p.fn = nil
}

// work runs tasks of the current job until none is left (dynamic), or the
// range of worker id (static; the caller is 0, helper h is h+1).
func (p *pool) work(s *scratch, id int) {
	fn, n := p.fn, p.nTasks
	if p.static {
		w := int64(p.word.Load()&0xffff) + 1
		for t := int64(id) * n / w; t < (int64(id)+1)*n/w; t++ {
			fn(s, int(t))
		}
		return
	}
	for {
		t := p.next.Add(1) - 1
		if t >= n {
			return
		}
		fn(s, int(t))
	}
}

// loop is the body of helper h; seen is the last job generation it saw.
func (p *pool) loop(h *helper, seen uint64) {
	spin := h.id < runtime.GOMAXPROCS(0)-1
	for {
		w := p.word.Load()
		if w>>16 == seen {
			w = p.wait(h, seen, spin)
		}
		seen = w >> 16
		if h.id < int(w&0xffff) {
			p.work(&h.s, h.id+1)
			p.running.Add(-1)
		}
	}
}

// wait returns the job word once its generation differs from seen.
func (p *pool) wait(h *helper, seen uint64, spin bool) uint64 {
	if spin {
		deadline := time.Now().Add(spinTime)
		for i := 1; ; i++ {
			if w := p.word.Load(); w>>16 != seen {
				return w
			}
			if i%128 == 0 && time.Now().After(deadline) {
				break
			}
		}
	}
	for {
		h.state.Store(helperParked)
		if w := p.word.Load(); w>>16 != seen {
			if !h.state.CompareAndSwap(helperParked, helperActive) {
				<-h.wake // the caller saw us parked and is sending
			}
			return w
		}
		<-h.wake
		if w := p.word.Load(); w>>16 != seen {
			return w
		}
	}
}

// scratch holds per-worker packing buffers, reused through a sync.Pool so
// that steady-state calls do not allocate.
type scratch struct {
	a, b []float32
	u    []uint32 // packed bfloat16 pairs (GemmBF16)
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch  { return scratchPool.Get().(*scratch) }
func putScratch(s *scratch) { scratchPool.Put(s) }

// grow returns buf resliced to n elements, reallocating if it is too small.
// The contents are unspecified.
func grow(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	return buf[:n]
}
