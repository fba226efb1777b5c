package kernel

import (
	"runtime"
	"sync"
	"sync/atomic"
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

// parallelFor runs fn(s, t) for every task t in [0, nTasks) on up to workers
// goroutines (the caller is one of them). Tasks are handed out dynamically.
// Each worker gets its own scratch buffers s from a pool for its lifetime.
func parallelFor(nTasks, workers int, fn func(s *scratch, t int)) {
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

// scratch holds per-worker packing buffers, reused through a sync.Pool so
// that steady-state calls do not allocate.
type scratch struct {
	a, b []float32
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
