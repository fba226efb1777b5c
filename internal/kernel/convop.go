package kernel

import "sync"

// ConvOp is a convolution with its weights packed for the selected kernels.
// Create it once with NewConvOp; Run then allocates nothing in steady state.
// Run may be called concurrently on the same ConvOp.
type ConvOp struct {
	c    Conv
	relu bool
	post Activation // applied after the stores, tile by tile (not ReLU: relu)
	act  *actImpl
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

	// Direct 3×3 stride-2 path (impl.stem): weights packed in blocks of
	// stemOCB output channels, bias padded (zeros if none).
	stem         stemKernel
	stemW, stemB []float32

	runs sync.Pool // *convRun
}

// convRun is the mutable state of one Run: a gemmJob (or, on the direct
// path, the input and output) and the task closure bound to it, allocated
// once and recycled.
type convRun struct {
	job    gemmJob
	op     *ConvOp
	x, out []float32
	fn     func(s *scratch, t int)
}

// stemBand is the number of output rows per task of the direct 3×3
// stride-2 path.
const stemBand = 4

// stemMaxInC bounds the input channels of the direct path; wider
// convolutions are GEMM-shaped enough for the packed GEMM.
const stemMaxInC = 16

// useStem reports whether convolution c (groups 1) runs on the direct 3×3
// stride-2 kernel of im.
func useStem(im *gemmImpl, c Conv) bool {
	return im.stem != nil && c.Groups == 1 && c.K == 3 && c.Stride == 2 && c.Pad == 1 &&
		c.InC <= stemMaxInC && c.OutC%stemOCB == 0
}

// stemTask computes output rows [t·stemBand, (t+1)·stemBand) of the direct
// path: it copies the input rows they need into a zero-padded buffer (one
// zero column on the left, zeros on the right up to ldx, zero rows above
// and below the image) and runs the kernel on every output row.
func (op *ConvOp) stemTask(s *scratch, x, out []float32, t int) {
	c := op.c
	oh, ow := c.OutH(), c.OutW()
	oy0 := t * stemBand
	oy1 := min(oh, oy0+stemBand)
	ldx := 2*roundUp(ow, 16) + 16
	rows := 2*(oy1-oy0) + 1
	chStride := rows * ldx
	s.a = grow(s.a, c.InC*chStride)
	buf := s.a
	plane := c.InH * c.InW
	for ci := 0; ci < c.InC; ci++ {
		for r := 0; r < rows; r++ {
			dst := buf[ci*chStride+r*ldx : ci*chStride+(r+1)*ldx]
			iy := 2*oy0 - 1 + r
			if uint(iy) >= uint(c.InH) {
				clear(dst)
				continue
			}
			dst[0] = 0
			copy(dst[1:1+c.InW], x[ci*plane+iy*c.InW:ci*plane+(iy+1)*c.InW])
			clear(dst[1+c.InW:])
		}
	}
	oplane := oh * ow
	last := (c.OutC - 1) * oplane
	for oy := oy0; oy < oy1; oy++ {
		o := oy * ow
		op.stem(buf[2*(oy-oy0)*ldx:], chStride, ldx, op.stemW, op.stemB, out[o:last+o+ow],
			oplane, c.InC, c.OutC/stemOCB, ow, op.relu)
		op.act.region(op.post, out[o:last+o+ow], c.OutC, ow, oplane)
	}
}

// NewConvOp packs the weights w (OutC, InC/Groups, K, K) and bias (OutC, or
// nil) of convolution c, fusing ReLU if relu, for the kernel level selected
// at start-up. w and bias are not retained.
func NewConvOp(c Conv, w, bias []float32, relu bool) *ConvOp {
	return NewConvOpAct(c, w, bias, reluAct(relu))
}

// NewConvOpAct is NewConvOp fusing activation a: ReLU in the kernels'
// stores, any other one applied by each task to the output it has just
// stored (a GEMM tile's panel, a row of the direct stem, a few channels of
// a depthwise convolution), while it is in cache.
func NewConvOpAct(c Conv, w, bias []float32, a Activation) *ConvOp {
	checkAct(a)
	c.Groups = max(c.Groups, 1)
	relu, post := splitAct(a)
	op := &ConvOp{c: c, relu: relu, post: post, act: actKernels.active, impl: active.Load()}
	if bias != nil {
		op.bias = append([]float32(nil), bias[:c.OutC]...)
	}
	op.runs.New = func() any {
		r := new(convRun)
		r.fn = func(s *scratch, t int) {
			if r.op != nil {
				r.op.stemTask(s, r.x, r.out, t)
				return
			}
			r.job.task(s, t)
		}
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
	if useStem(op.impl, c) {
		op.stem = op.impl.stem
		cin, nb := c.InC, c.OutC/stemOCB
		op.stemW = make([]float32, c.OutC*cin*9)
		op.stemB = make([]float32, c.OutC)
		copy(op.stemB, op.bias)
		for blk := 0; blk < nb; blk++ {
			for o := 0; o < stemOCB; o++ {
				oc := blk*stemOCB + o
				for ci := 0; ci < cin; ci++ {
					for tap := 0; tap < 9; tap++ {
						op.stemW[((blk*cin+ci)*9+tap)*stemOCB+o] = w[(oc*cin+ci)*9+tap]
					}
				}
			}
		}
		return op
	}
	op.ap = make([][]float32, c.Groups)
	for g := range op.ap {
		wg := w[g*op.coutG*op.kdim : (g+1)*op.coutG*op.kdim]
		op.ap[g] = packAAll(op.impl, wg, op.kdim, op.coutG, op.kdim)
	}
	return op
}

// OutShape returns the output shape (channels, height, width).
func (op *ConvOp) OutShape() (c, h, w int) { return op.c.OutC, op.c.OutH(), op.c.OutW() }

// Run computes out = act(conv(x) + bias), act the fused activation.
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
		depthwise(c, x, op.w, op.bias, out, op.relu, op.post)
		return
	}
	plane, oplane := c.InH*c.InW, oh*ow
	r := op.runs.Get().(*convRun)
	if op.stem != nil {
		r.op, r.x, r.out = op, x[:c.InC*plane], out[:c.OutC*oplane]
		nTasks := ceilDiv(oh, stemBand)
		parallelFor(nTasks, workersFor(nTasks, c.OutC*c.InC*9*oplane), r.fn)
		*r = convRun{fn: r.fn}
		op.runs.Put(r)
		return
	}
	for g := 0; g < c.Groups; g++ {
		job := &r.job
		*job = gemmJob{
			m: op.coutG, n: oplane, k: op.kdim,
			ap: op.ap[g],
			c:  out[g*op.coutG*oplane:], ldc: oplane,
			relu: op.relu,
			post: op.post, act: op.act,
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
