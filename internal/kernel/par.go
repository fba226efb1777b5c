package kernel

import (
	"os"
	"sync"
)

// staticSchedule makes the blocked ops (StemOp, DepthwiseOp, PointwiseOp)
// split maps of at least 14 rows (1×1: 16 tiles of pixels) into one
// contiguous band of rows per thread, handed out statically
// (parallelForStatic): every layer then reads what the same core wrote in
// the layer before. Measured on two threads it beats dynamic hand-out by
// 4–8 % on S3/S4; MOBILEONE_SCHEDULE=dynamic turns it off.
var staticSchedule = os.Getenv("MOBILEONE_SCHEDULE") != "dynamic"

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
