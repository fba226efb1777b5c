package kernel

import "sync"

// Dilated 3×3 depthwise convolutions (stride 1, padding = dilation d) on
// blocked activations, on the 3×3 pad-1 DepthwiseOp: output pixel (y, x)
// reads (y + (k−1)·d, x + (l−1)·d), pixels of its own phase (y mod d,
// x mod d), the neighbours one step away in that phase's sub-map, and zero
// beyond it. So the map is split into its d² phase sub-maps (each
// ⌈(H−py)/d⌉ × ⌈(W−px)/d⌉), each is convolved by an undilated 3×3 pad-1
// depthwise convolution with the same weights, and the results are put
// back in place. (DeepLabV3's dilated backbone stages: the reshuffle is two
// passes over the map, the convolution runs on the SIMD kernels.)

// DepthwiseDilatedOK reports whether NewDepthwiseDilatedOp supports c with
// dilation dil: a depthwise 3×3 convolution, stride 1, Pad == dil ≥ 1, and
// a non-empty map.
func DepthwiseDilatedOK(c Conv, dil int) bool {
	return c.Groups == c.InC && c.InC == c.OutC && c.InC > 0 && c.K == 3 && c.Stride == 1 &&
		dil >= 1 && c.Pad == dil && c.InH > 0 && c.InW > 0
}

// DepthwiseDilatedOp is a dilated 3×3 depthwise convolution on blocked
// activations with bias and optional ReLU fused. Run allocates nothing in
// steady state and may be called concurrently.
type DepthwiseDilatedOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int

	c      Conv
	dil    int
	nb     int
	k      dwbKernel
	wb     []float32 // (nb, 10, 16): 9 taps then the bias (DepthwiseOp's packing)
	relu   bool
	phases []dwPhase
	bufs   sync.Pool // *[]float32: phase sub-maps in, then out
	runs   sync.Pool // *dwdRun
}

// dwPhase is one phase sub-map: its origin, size and offset in the phase
// buffer (per channel block, in pixels).
type dwPhase struct{ py, px, h, w, at int }

// dwdRun is one Run's state: buffers, task grid and the task closure bound
// to it, allocated once and recycled.
type dwdRun struct {
	op              *DepthwiseDilatedOp
	x, out, in, res []float32
	bpt, chunks     int // channel blocks per task, tasks per phase
	fn              func(s *scratch, t int)
}

// NewDepthwiseDilatedOp packs the weights w (C, 1, 3, 3) and bias (C, or
// nil), fusing ReLU if relu. It panics if !DepthwiseDilatedOK(c, dil).
func NewDepthwiseDilatedOp(c Conv, dil int, w, bias []float32, relu bool) *DepthwiseDilatedOp {
	if !DepthwiseDilatedOK(c, dil) {
		panic("kernel: NewDepthwiseDilatedOp: unsupported convolution")
	}
	// The packed weights and kernel of an undilated op of the same channels.
	sub := NewDepthwiseOp(Conv{InC: c.InC, InH: 1, InW: 1, OutC: c.InC, K: 3, Stride: 1, Pad: 1, Groups: c.InC}, w, bias, relu)
	op := &DepthwiseDilatedOp{c: c, dil: dil, nb: Blocks(c.InC), k: sub.k, wb: sub.wb, relu: relu}
	at := 0
	for py := 0; py < min(dil, c.InH); py++ {
		for px := 0; px < min(dil, c.InW); px++ {
			h, wd := ceilDiv(c.InH-py, dil), ceilDiv(c.InW-px, dil)
			op.phases = append(op.phases, dwPhase{py, px, h, wd, at})
			at += h * wd
		}
	}
	n := op.nb * c.InH * c.InW * BlockC
	op.bufs.New = func() any { b := make([]float32, 2*n); return &b }
	op.runs.New = func() any {
		r := new(dwdRun)
		r.fn = func(_ *scratch, t int) { r.task(t) }
		return r
	}
	return op
}

// OutShape is the output's channels, height and width (the input's).
func (op *DepthwiseDilatedOp) OutShape() (c, h, w int) { return op.c.OutC, op.c.InH, op.c.InW }

// Run computes out = relu?(depthwise_dilated(x) + bias).
//
//	x, out: BlockedLen(C, InH·InW) floats, not overlapping; padding
//	channels of out are written as 0.
//
// Tasks are phases × groups of channel blocks; each gathers its sub-map,
// convolves it and puts the result back.
func (op *DepthwiseDilatedOp) Run(x, out []float32) {
	c := op.c
	hw := c.InH * c.InW
	n := op.nb * hw * BlockC
	bp := op.bufs.Get().(*[]float32)
	r := op.runs.Get().(*dwdRun)
	r.op, r.x, r.out, r.in, r.res = op, x[:n], out[:n], (*bp)[:n], (*bp)[n:2*n]
	work := op.nb * hw * 9 * BlockC
	workers := workersForLimit(len(op.phases)*op.nb, work, op.Workers)
	r.bpt, r.chunks = op.nb, 1
	if workers > 1 {
		// about four tasks per worker
		r.chunks = min(op.nb, max(1, ceilDiv(4*workers, len(op.phases))))
		r.bpt = ceilDiv(op.nb, r.chunks)
		r.chunks = ceilDiv(op.nb, r.bpt)
	}
	nTasks := len(op.phases) * r.chunks
	if workers <= 1 {
		for t := 0; t < nTasks; t++ {
			r.task(t)
		}
	} else {
		parallelFor(nTasks, min(workers, nTasks), r.fn)
	}
	*r = dwdRun{fn: r.fn}
	op.runs.Put(r)
	op.bufs.Put(bp)
}

// task runs phase t/chunks for channel blocks chunk t%chunks.
func (r *dwdRun) task(t int) {
	op, c, d := r.op, r.op.c, r.op.dil
	ph := op.phases[t/r.chunks]
	b0 := (t % r.chunks) * r.bpt
	b1 := min(op.nb, b0+r.bpt)
	hw, sub := c.InH*c.InW, ph.h*ph.w*BlockC
	// The phase buffer holds, per phase, its sub-map of every channel
	// block: the layout the undilated kernel reads.
	base := op.nb * ph.at * BlockC
	for cb := b0; cb < b1; cb++ {
		src := r.x[cb*hw*BlockC : (cb+1)*hw*BlockC]
		dst := r.in[base+cb*sub : base+(cb+1)*sub]
		i := 0
		for y := ph.py; y < c.InH; y += d {
			for xx := ph.px; xx < c.InW; xx += d {
				copy(dst[i:i+BlockC], src[(y*c.InW+xx)*BlockC:])
				i += BlockC
			}
		}
	}
	op.k(r.in[base+b0*sub:base+b1*sub], op.wb[b0*10*BlockC:b1*10*BlockC], r.res[base+b0*sub:base+b1*sub],
		b1-b0, ph.h, ph.w, 0, ph.h, op.relu)
	for cb := b0; cb < b1; cb++ {
		src := r.res[base+cb*sub : base+(cb+1)*sub]
		dst := r.out[cb*hw*BlockC : (cb+1)*hw*BlockC]
		i := 0
		for y := ph.py; y < c.InH; y += d {
			for xx := ph.px; xx < c.InW; xx += d {
				copy(dst[(y*c.InW+xx)*BlockC:(y*c.InW+xx+1)*BlockC], src[i:i+BlockC])
				i += BlockC
			}
		}
	}
}
