package graph

import (
	"os"

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

// batchFromOff turns the group run off (MOBILEONE_BATCHFROM=off), for
// comparisons.
var batchFromOff = os.Getenv("MOBILEONE_BATCHFROM") == "off"

// shared holds what the lanes of a plan share.
type shared struct {
	ops     map[*Node]any
	workers []*int // the Workers field of every op that has one
	// limit caps the threads of the kernels without an op (pooling and
	// SE in blocks) the same way (0: kernel.Threads()).
	limit int
	tail  int // the first step of a lane's group run (-1: none; -2: not chosen yet)
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
	case *kernel.DepthwiseDilatedOp:
		p.sh.workers = append(p.sh.workers, &v.Workers)
	}
	return o
}

// setWorkers caps every op's goroutines (0: kernel.Threads()).
func (s *shared) setWorkers(n int) {
	s.limit = n
	for _, w := range s.workers {
		*w = n
	}
}

// ensureLanes makes lanes 1..n-1, and with a group run each lane's image
// copies (once; Run allocates nothing after).
func (p *Plan) ensureLanes(n int) {
	if len(p.lanes) == 0 {
		p.lanes = []*Plan{p}
	}
	for len(p.lanes) < n {
		p.lanes = append(p.lanes, p.copyForImage(nil))
	}
	// Group run: a lane of k images runs them one by one up to the tail,
	// then node by node for all of them, on k copies of the plan (the
	// lane's own and k-1 more).
	tail := p.tailStep()
	k := ceilDiv(p.N, n)
	if tail < 0 || k < 2 {
		return
	}
	for _, l := range p.lanes[:n] {
		if len(l.images) >= k {
			continue
		}
		if len(l.images) == 0 {
			l.images = []*Plan{l}
		}
		for len(l.images) < k {
			l.images = append(l.images, l.copyForImage(l))
		}
		l.groupSteps(tail)
	}
}

// copyForImage returns a copy of the plan with its own steps and buffers
// over the shared ops. With base set, the copy is one more image of base's
// group run: it shares base's buffers that hold no value live from the
// tail on (only the head part runs on them, one image at a time).
func (p *Plan) copyForImage(base *Plan) *Plan {
	l := &Plan{g: p.g, N: p.N, Blocked: p.Blocked, blk: p.blk, fuse: p.fuse, sh: p.sh, bufOf: p.bufOf, cropped: p.cropped,
		head: p.head, pooled: p.pooled} // each image writes its own row of pooled
	l.alt = make([][]float32, len(p.alt))
	for v, a := range p.alt {
		if a != nil {
			l.alt[v] = make([]float32, len(a))
		}
	}
	var own []bool
	if base != nil {
		own = p.tailBuffers()
	}
	l.bufs = make([][]float32, len(p.bufs))
	for i, b := range p.bufs {
		if base != nil && !own[i] {
			l.bufs[i] = base.bufs[i]
			continue
		}
		l.bufs[i] = make([]float32, len(b))
	}
	l.lowerSteps()
	return l
}

// tailBuffers reports, by buffer, whether it holds a value that is live
// at or after the tail step.
func (p *Plan) tailBuffers() []bool {
	g := p.g
	tail := p.tailStep()
	first := p.stepOf[tail] + 1 // node index of the tail's first node
	own := make([]bool, len(p.bufs))
	for i, n := range g.Nodes {
		if i == 0 {
			continue
		}
		// A value made at or after the tail, or read there.
		live := i >= first
		if !live {
			for _, m := range g.Nodes[first:] {
				for _, v := range m.In {
					live = live || v == n.Out
				}
			}
			live = live || n.Out == g.Output
		}
		if live && p.bufOf[n.Out] >= 0 {
			own[p.bufOf[n.Out]] = true
		}
	}
	return own
}

// tailStep is the first step of the group run: the step of the first 1×1
// convolution (after the first two nodes) whose weights outweigh its
// input, when every node from there on runs on blocked values; -1 if
// there is none. (MobileOne S3 at batch 8 on one thread, alternating runs
// on a 2 MiB-L2 Xeon, with MobileOne's former engine: from stage3.1, where
// this puts it, min 163–170 ms against 175–176 with only the last layer
// grouped.) MOBILEONE_BATCHFROM=off turns the group run off.
func (p *Plan) tailStep() int {
	if p.sh.tail != -2 {
		return p.sh.tail
	}
	p.sh.tail = -1
	if !p.Blocked || batchFromOff {
		return -1
	}
	g := p.g
	for s, i := range p.stepOf {
		n := g.Nodes[i+1]
		if p.stepCvt[s] || i < 2 || n.Kind != Conv || p.convKindOf(n) != convPW {
			continue
		}
		xs := g.Shapes[n.In[0]]
		if g.Shapes[n.Out][0] <= xs[1]*xs[2] {
			continue // weights (Cin·Cout) no more than the input (Cin·H·W)
		}
		for _, m := range g.Nodes[i+1:] {
			if !p.blk[m.Out] && m != p.head && m.Kind != GlobalAvgPool {
				return -1
			}
		}
		p.sh.tail = s
		break
	}
	return p.sh.tail
}

// groupSteps makes the steps of lane l's group run from step tail on: a
// 1×1 convolution runs for the images of a chunk at once
// (kernel.PointwiseOp.RunImages: its weights read once per chunk), every
// other step image by image. The tail is cut into segments of steps whose
// next 1×1 convolution takes the same number of images together
// (ImagesPerChunk: their inputs fit in L2); a segment runs chunk of images
// by chunk, so that a chunk's activations stay in L2 from node to node.
func (l *Plan) groupSteps(tail int) {
	g := l.g
	l.group = l.group[:0]
	per := make([]int, len(l.steps)-tail) // images per chunk, by tail step
	next := len(l.images)
	for s := len(l.steps) - 1; s >= tail; s-- {
		n := g.Nodes[l.stepOf[s]+1]
		if op, ok := l.sh.ops[n].(*kernel.PointwiseOp); ok && !l.stepCvt[s] {
			next = max(1, op.ImagesPerChunk(g.Shapes[n.In[0]][1]*g.Shapes[n.In[0]][2]))
		}
		per[s-tail] = next
	}
	l.segs = l.segs[:0]
	for i, k := range per {
		if m := len(l.segs); m > 0 && l.segs[m-1].chunk == k {
			l.segs[m-1].to = i + 1
			continue
		}
		l.segs = append(l.segs, groupSeg{from: i, to: i + 1, chunk: k})
	}
	for s := tail; s < len(l.steps); s++ {
		n := g.Nodes[l.stepOf[s]+1]
		op, ok := l.sh.ops[n].(*kernel.PointwiseOp)
		if l.stepCvt[s] || !ok || l.fuse.done[n] {
			s := s
			l.group = append(l.group, func() {
				for _, c := range l.images[l.g0:l.g1] {
					c.steps[s]()
				}
			})
			continue
		}
		xs := make([][]float32, len(l.images))
		outs := make([][]float32, len(l.images))
		hw := g.Shapes[n.In[0]][1] * g.Shapes[n.In[0]][2]
		l.group = append(l.group, func() {
			k := l.g1 - l.g0
			for j, c := range l.images[l.g0:l.g1] {
				xs[j], outs[j] = c.in(n.In[0], true), c.buf(n.Out)
			}
			op.RunImages(xs[:k], hw, outs[:k])
		})
	}
}

// groupSeg is a run of tail steps [from, to) (indices into group) that
// goes through chunk images at a time.
type groupSeg struct{ from, to, chunk int }

// runLane runs images lane, lane+active, ... of the current batch on lane
// lane's buffers, writing their outputs to the plan's output: one by one,
// or with a group run, one by one up to the tail and then together.
func (p *Plan) runLane(lane int) {
	l := p.lanes[lane]
	if len(l.images) == 0 || ceilDiv(p.N, p.active) < 2 {
		for i := lane; i < p.N; i += p.active {
			l.runImage(p.runX, i, p.out)
		}
		l.x = nil
		return
	}
	tail := p.tailStep()
	k := 0
	for i := lane; i < p.N; i += p.active {
		c := l.images[k]
		c.x = p.runX[i*c.perIn() : (i+1)*c.perIn()]
		for _, st := range c.steps[:tail] {
			st()
		}
		k++
	}
	for _, sg := range l.segs {
		for l.g0 = 0; l.g0 < k; l.g0 += sg.chunk {
			l.g1 = min(k, l.g0+sg.chunk)
			for _, st := range l.group[sg.from:sg.to] {
				st()
			}
		}
	}
	k = 0
	for i := lane; i < p.N; i += p.active {
		c := l.images[k]
		c.finishImage(i, p.out)
		c.x = nil
		k++
	}
}
