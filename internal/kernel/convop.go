package kernel

import "sync"

// ConvOp is a convolution with its weights packed for the selected kernels.
// Create it once with NewConvOp; Run then allocates nothing in steady state.
// Run may be called concurrently on the same ConvOp.
type ConvOp struct {
	c    Conv
	relu bool
	impl *gemmImpl

	// Depthwise: the weights and bias as given (copied).
	depthwise bool
	w, bias   []float32

	// GEMM path, per group g: out_g (coutG × oh·ow) = W_g (coutG × kdim) ·
	// B_g, B_g = x_g (pointwise) or the implicit im2col matrix of x_g.
	pointwise   bool
	cinG, coutG int
	kdim        int
	ap          [][]float32 // packed W_g, see gemmJob.ap

	runs sync.Pool // *convRun
}

// convRun is the mutable state of one Run: a gemmJob and the task closure
// bound to it, allocated once and recycled.
type convRun struct {
	job gemmJob
	fn  func(s *scratch, t int)
}

// NewConvOp packs the weights w (OutC, InC/Groups, K, K) and bias (OutC, or
// nil) of convolution c, fusing ReLU if relu, for the kernel level selected
// at start-up. w and bias are not retained.
func NewConvOp(c Conv, w, bias []float32, relu bool) *ConvOp {
	c.Groups = max(c.Groups, 1)
	op := &ConvOp{c: c, relu: relu, impl: active.Load()}
	if bias != nil {
		op.bias = append([]float32(nil), bias[:c.OutC]...)
	}
	op.runs.New = func() any {
		r := new(convRun)
		r.fn = func(s *scratch, t int) { r.job.task(s, t) }
		return r
	}
	if c.Groups == c.InC && c.Groups == c.OutC && c.Groups > 1 {
		op.depthwise = true
		op.w = append([]float32(nil), w[:c.OutC*c.K*c.K]...)
		return op
	}
	op.cinG, op.coutG = c.InC/c.Groups, c.OutC/c.Groups
	op.kdim = op.cinG * c.K * c.K
	op.pointwise = c.K == 1 && c.Stride == 1 && c.Pad == 0
	op.ap = make([][]float32, c.Groups)
	for g := range op.ap {
		wg := w[g*op.coutG*op.kdim : (g+1)*op.coutG*op.kdim]
		op.ap[g] = packAAll(op.impl, wg, op.kdim, op.coutG, op.kdim)
	}
	return op
}

// OutShape returns the output shape (channels, height, width).
func (op *ConvOp) OutShape() (c, h, w int) { return op.c.OutC, op.c.OutH(), op.c.OutW() }

// Run computes out = conv(x) (+ bias, then ReLU if the op fuses it).
//
//	x:   (InC, InH, InW)
//	out: (OutC, OutH, OutW); only out[:OutC*OutH*OutW] is written.
func (op *ConvOp) Run(x, out []float32) {
	c := op.c
	oh, ow := c.OutH(), c.OutW()
	if c.OutC <= 0 || oh <= 0 || ow <= 0 {
		return
	}
	if op.depthwise {
		depthwise(c, x, op.w, op.bias, out, op.relu)
		return
	}
	plane, oplane := c.InH*c.InW, oh*ow
	r := op.runs.Get().(*convRun)
	for g := 0; g < c.Groups; g++ {
		job := &r.job
		*job = gemmJob{
			m: op.coutG, n: oplane, k: op.kdim,
			ap: op.ap[g],
			c:  out[g*op.coutG*oplane:], ldc: oplane,
			relu: op.relu,
			impl: op.impl,
		}
		if op.bias != nil {
			job.bias = op.bias[g*op.coutG : (g+1)*op.coutG]
		}
		xg := x[g*op.cinG*plane : (g+1)*op.cinG*plane]
		if op.pointwise {
			job.b = bSource{b: xg, ldb: plane}
		} else {
			job.b = bSource{
				im2col: true, x: xg,
				inH: c.InH, inW: c.InW, kk: c.K,
				stride: c.Stride, pad: c.Pad, outW: ow,
			}
		}
		if job.k <= 0 {
			job.epilogueOnly()
			continue
		}
		job.plan()
		parallelFor(job.nTasks, job.workers, r.fn)
	}
	*r = convRun{fn: r.fn} // drop references to x and out
	op.runs.Put(r)
}
