package graph

import (
	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Lanes: with more than one image and more than one thread, a blocked
// plan runs whole images in parallel, one lane per thread, each lane
// running its images one after another through the whole network on one
// thread (no synchronisation between layers, every layer's work in one
// core's caches). A lane is a copy of the plan with its own buffers and
// steps over the same packed ops (ops may run concurrently; their Workers
// cap is set to 1 for the duration), so the weights are packed and held
// once. The small helpers that take no Workers cap (pooling, SE's linear
// layers, element-wise passes) may still start helpers of their own.

// shared holds what the lanes of a plan share.
type shared struct {
	ops     map[*Node]any
	workers []*int // the Workers field of every op that has one
}

// shareOp returns node nd's op, made by mk the first time (by the plan or
// any of its lanes).
func shareOp[T any](p *Plan, nd *Node, mk func() T) T {
	if o, ok := p.sh.ops[nd]; ok {
		return o.(T)
	}
	o := mk()
	p.sh.ops[nd] = o
	switch v := any(o).(type) {
	case *kernel.PointwiseOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	case *kernel.DepthwiseOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	case *kernel.StemOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	case *kernel.StemDWOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	case *kernel.DenseOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	}
	return o
}

// setWorkers caps every op's goroutines (0: kernel.Threads()).
func (s *shared) setWorkers(n int) {
	for _, w := range s.workers {
		*w = n
	}
}

// ensureLanes makes lanes 1..n-1 (once; Run allocates nothing after).
func (p *Plan) ensureLanes(n int) {
	if len(p.lanes) >= n {
		return
	}
	if len(p.lanes) == 0 {
		p.lanes = []*Plan{p}
	}
	for len(p.lanes) < n {
		l := &Plan{g: p.g, N: p.N, Blocked: p.Blocked, blk: p.blk, fuse: p.fuse, sh: p.sh, bufOf: p.bufOf,
			head: p.head, pooled: p.pooled} // each image writes its own row of pooled
		l.alt = make([][]float32, len(p.alt))
		for v, a := range p.alt {
			if a != nil {
				l.alt[v] = make([]float32, len(a))
			}
		}
		l.bufs = make([][]float32, len(p.bufs))
		for i, b := range p.bufs {
			l.bufs[i] = make([]float32, len(b))
		}
		l.lowerSteps()
		p.lanes = append(p.lanes, l)
	}
}

// runLane runs images lane, lane+active, ... of the current batch on lane
// lane's buffers, writing their outputs to the plan's output.
func (p *Plan) runLane(lane int) {
	l := p.lanes[lane]
	for i := lane; i < p.N; i += p.active {
		l.runImage(p.runX, i, p.out)
	}
	l.x = nil
}
