package kernel

import "sync"

// parRun adapts a func(t int) to parallelFor's task signature without
// allocating per call: the adapter closure is built once per pooled parRun.
type parRun struct {
	fn   func(t int)
	call func(s *scratch, t int)
}

var parRuns = sync.Pool{New: func() any {
	r := new(parRun)
	r.call = func(_ *scratch, t int) { r.fn(t) }
	return r
}}

// Parallel runs fn(t) for every t in [0, nTasks) on up to workers
// goroutines of the kernels' pool (the caller is one of them), handing
// tasks out dynamically. It allocates nothing if fn is a stored func value.
func Parallel(nTasks, workers int, fn func(t int)) {
	r := parRuns.Get().(*parRun)
	r.fn = fn
	parallelFor(nTasks, workers, r.call)
	r.fn = nil
	parRuns.Put(r)
}
