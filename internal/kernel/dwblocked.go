package kernel

import (
	"fmt"
	"os"
	"sync"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// 3×3 depthwise convolution (pad 1, stride 1 or 2) on blocked activations
// (see blocked.go). One vector holds the 16 channels of one pixel, so the
// kernels run at full vector width whatever the map size. DepthwiseOp also
// runs K×K (K 3, 5, 7, any pad <= K/2) on the window kernels of
// dwblockedk.go.

// dwbKernel computes output rows [oy0, oy1) of nb consecutive channel blocks
// of a 3×3 pad-1 depthwise convolution with a fixed stride s:
//
//	x   (nb, h·wd, 16)       the input blocks
//	w   (nb, 10, 16)         per block the 9 taps (ky·3+kx) then the bias
//	out (nb, oh·ow, 16)      oh = (h-1)/s + 1, ow = (wd-1)/s + 1
//
// with bias and ReLU (if relu) fused. See dwbGo for the exact loop.
type dwbKernel func(x, w, out []float32, nb, h, wd, oy0, oy1 int, relu bool)

// dwbImpl is the pair of blocked depthwise kernels of one level.
type dwbImpl struct {
	level  cpu.Level
	s1, s2 dwbKernel
}

var dwbPureGo = &dwbImpl{level: cpu.PureGo, s1: dwb3x3s1Go, s2: dwb3x3s2Go}

// dwbKernels are this family's kernels by level (see levelSet).
var dwbKernels = newLevelSet(dwbPureGo, dwbAsm[:])

// DepthwiseBlockedOK reports whether NewDepthwiseOp supports c: Groups ==
// InC == OutC, K 3, 5 or 7, 0 <= Pad <= K/2, Stride 1 or 2, InC, InH,
// InW > 0 and the padded input at least K×K.
func DepthwiseBlockedOK(c Conv) bool {
	return c.Groups == c.InC && c.InC == c.OutC && c.InC > 0 &&
		(c.K == 3 || c.K == 5 || c.K == 7) && 0 <= c.Pad && c.Pad <= c.K/2 &&
		(c.Stride == 1 || c.Stride == 2) &&
		c.InH > 0 && c.InW > 0 && c.InH+2*c.Pad >= c.K && c.InW+2*c.Pad >= c.K
}

// dwb3x3 reports whether the 3×3 pad-1 kernels of this file run c; the
// other shapes run the window kernels of dwblockedk.go.
func dwb3x3(c Conv) bool { return c.K == 3 && c.Pad == 1 }

// DepthwiseOp is a K×K depthwise convolution on blocked activations with
// bias and an activation fused: ReLU in the kernels' stores, any other one
// (NewDepthwiseOpAct) applied by each task to the rows it has just
// computed, actPieceValues at a time while they are in cache. Create it
// with NewDepthwiseOp; Run allocates nothing in steady state and may be
// called concurrently.
type DepthwiseOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int

	c      Conv
	relu   bool
	post   Activation // applied after the stores (not ReLU: relu)
	act    *actImpl
	k      dwbKernel  // 3×3 pad 1, or nil
	kk     dwbkKernel // the other shapes (see runK), or nil
	level  cpu.Level
	nb     int       // channel blocks
	oh, ow int       // output size
	taps   int       // K·K
	wb     []float32 // (nb, taps+1, 16): the taps then the bias, zero padded
	scale  int       // divides the work before workersFor, see dwbWorkScale

	runs sync.Pool // *dwbRun
}

// dwbRun is the state of one parallel Run: the buffers, the task grid and
// the task closure bound to it, allocated once and recycled.
type dwbRun struct {
	op     *DepthwiseOp
	x, out []float32
	bpt    int // channel blocks per task
	rpt    int // output rows per task
	nbands int // row bands per block group
	fn     func(s *scratch, t int)
}

// NewDepthwiseOp packs the weights w (C, 1, K, K) and bias (C, or nil) of
// the depthwise convolution c, fusing ReLU if relu. w and bias are not
// retained. It panics if !DepthwiseBlockedOK(c).
func NewDepthwiseOp(c Conv, w, bias []float32, relu bool) *DepthwiseOp {
	return NewDepthwiseOpAct(c, w, bias, reluAct(relu))
}

// NewDepthwiseOpAct is NewDepthwiseOp fusing activation a.
func NewDepthwiseOpAct(c Conv, w, bias []float32, a Activation) *DepthwiseOp {
	if !DepthwiseBlockedOK(c) {
		panic(fmt.Sprintf("kernel: NewDepthwiseOp: unsupported convolution %+v", c))
	}
	checkAct(a)
	relu, post := splitAct(a)
	op := &DepthwiseOp{
		c: c, relu: relu, post: post, act: actKernels.active,
		nb: Blocks(c.InC), oh: c.OutH(), ow: c.OutW(), taps: c.K * c.K,
		scale: 1,
	}
	if dwb3x3(c) {
		impl := dwbKernels.active
		op.level = impl.level
		op.k = impl.s1
		if c.Stride == 2 {
			op.k = impl.s2
		}
	} else {
		impl := dwbkKernels.active
		op.level = impl.level
		op.kk = impl.k[c.K/2-1][c.Stride-1]
	}
	if op.level != cpu.PureGo && c.Stride == 1 {
		op.scale = dwbWorkScale
	}
	taps := op.taps
	w = w[:c.InC*taps]
	if bias != nil {
		bias = bias[:c.InC]
	}
	op.wb = make([]float32, op.nb*(taps+1)*BlockC)
	for ch := 0; ch < c.InC; ch++ {
		cb, j := ch/BlockC, ch%BlockC
		blk := op.wb[cb*(taps+1)*BlockC : (cb+1)*(taps+1)*BlockC]
		for tap := 0; tap < taps; tap++ {
			blk[tap*BlockC+j] = w[ch*taps+tap]
		}
		if bias != nil {
			blk[taps*BlockC+j] = bias[ch]
		}
	}
	op.runs.New = func() any {
		r := new(dwbRun)
		r.fn = func(s *scratch, t int) { r.task(s, t) }
		return r
	}
	return op
}

// OutShape returns the output shape (channels, height, width).
func (op *DepthwiseOp) OutShape() (c, h, w int) { return op.c.OutC, op.oh, op.ow }

// dwbMinTaskWork is the least work (multiply-adds) worth a parallel task
// (a variable for the tests).
var dwbMinTaskWork = 1 << 15

// dwbTasksPerWorker is how many tasks each worker gets, for dynamic load
// balancing.
const dwbTasksPerWorker = 2

// dwbWorkScale converts the multiply-adds of the stride-1 assembly kernels
// into the units of minParallelWork, which was calibrated on kernels about
// this much slower: waking a helper costs about a microsecond, more than
// 1<<16 multiply-adds take them. (Stride 2 runs at about half the speed,
// bound by its input traffic, and the pure-Go kernels far slower: their
// work is not scaled.) Measured on Zen 5, two threads win from about 1.5 µs
// of serial work.
const dwbWorkScale = 2

// Run computes out = act(depthwise(x) + bias), act the fused activation.
//
//	x:   BlockedLen(C, InH*InW), padding channels zero
//	out: BlockedLen(C, OutH*OutW); padding channels are written as 0.
//
// x and out must not overlap. Only out[:BlockedLen(C, OutH*OutW)] is written.
//
// Work is split into tasks of channel blocks × bands of output rows, run on
// up to Threads() (or Workers) goroutines.
func (op *DepthwiseOp) Run(x, out []float32) {
	c := op.c
	hw, ohw := c.InH*c.InW, op.oh*op.ow
	x = x[:BlockedLen(c.InC, hw)]
	out = out[:BlockedLen(c.InC, ohw)]
	rowWork := op.ow * op.taps * BlockC
	work := op.nb * op.oh * rowWork
	workers := workersForLimit(op.nb*op.oh, work/op.scale, op.Workers)
	if workers <= 1 {
		op.serial(x, out)
		return
	}
	nt := min(dwbTasksPerWorker*workers, max(1, work/dwbMinTaskWork))
	bpt, rpt, nbands := op.nb, op.oh, 1
	if nt <= op.nb {
		bpt = ceilDiv(op.nb, nt)
	} else {
		bpt = 1
		nbands = min(op.oh, ceilDiv(nt, op.nb))
		rpt = ceilDiv(op.oh, nbands)
		nbands = ceilDiv(op.oh, rpt)
	}
	// Static schedule (see staticSchedule): one contiguous band of
	// output rows per worker, all channel blocks.
	static := staticSchedule && op.oh >= 14 && workers > 1
	if static {
		bpt, nbands = op.nb, workers
		rpt = ceilDiv(op.oh, nbands)
		nbands = ceilDiv(op.oh, rpt)
		if dwChannelSplit && c.InC > 2*hw && op.nb >= 2*workers {
			// The 1×1 layer before split its output channels between
			// the workers (see PointwiseOp.Run: more than twice as many
			// channels as pixels); split the same way, each worker reads
			// only what its own core wrote.
			bpt, rpt, nbands = ceilDiv(op.nb, workers), op.oh, 1
		}
	}
	nTasks := ceilDiv(op.nb, bpt) * nbands
	if nTasks <= 1 {
		op.serial(x, out)
		return
	}
	r := op.runs.Get().(*dwbRun)
	r.op, r.x, r.out = op, x, out
	r.bpt, r.rpt, r.nbands = bpt, rpt, nbands
	if static {
		parallelForStatic(nTasks, min(workers, nTasks), r.fn)
	} else {
		parallelFor(nTasks, min(workers, nTasks), r.fn)
	}
	r.op, r.x, r.out = nil, nil, nil // drop references to the buffers
	op.runs.Put(r)
}

// dwChannelSplit enables the channel split of the static schedule
// (MOBILEONE_DWCHSPLIT=0 turns it off, for comparisons).
var dwChannelSplit = os.Getenv("MOBILEONE_DWCHSPLIT") != "0"

// serial computes the whole output on the calling goroutine.
func (op *DepthwiseOp) serial(x, out []float32) {
	var s *scratch
	if op.kk != nil {
		s = getScratch()
		defer putScratch(s)
	}
	op.compute(s, x, out, 0, op.nb, 0, op.oh)
}

// task runs task t: a group of bpt channel blocks × a band of rpt output
// rows.
func (r *dwbRun) task(s *scratch, t int) {
	op := r.op
	g, band := t/r.nbands, t%r.nbands
	b0, b1 := g*r.bpt, min(op.nb, (g+1)*r.bpt)
	oy0, oy1 := band*r.rpt, min(op.oh, (band+1)*r.rpt)
	op.compute(s, r.x, r.out, b0, b1, oy0, oy1)
}

// compute runs the kernel on channel blocks [b0, b1) × output rows [oy0,
// oy1) of the maps x and out, then the activation after the stores, if
// any: the kernel then runs on pieces of about actPieceValues outputs (whole
// blocks of small maps, bands of rows of one block of large ones), each
// activated right after it is computed. s is the K×K kernels' scratch.
func (op *DepthwiseOp) compute(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
	if op.post == ActNone {
		op.kern(s, x, out, b0, b1, oy0, oy1)
		return
	}
	ohw := op.oh * op.ow
	if oy0 == 0 && oy1 == op.oh && ohw*BlockC <= actPieceValues {
		per := actPieceValues / (ohw * BlockC)
		for b := b0; b < b1; b += per {
			e := min(b1, b+per)
			op.kern(s, x, out, b, e, 0, op.oh)
			actBlocked(op.act, op.post, out, op.c.InC, ohw, b, e, 0, ohw)
		}
		return
	}
	rows := max(1, actPieceValues/(op.ow*BlockC))
	for b := b0; b < b1; b++ {
		for y := oy0; y < oy1; y += rows {
			ye := min(oy1, y+rows)
			op.kern(s, x, out, b, b+1, y, ye)
			actBlocked(op.act, op.post, out, op.c.InC, ohw, b, b+1, y*op.ow, ye*op.ow)
		}
	}
}

// kern runs the kernel on channel blocks [b0, b1) × output rows [oy0, oy1).
// The slicing bounds-checks the 3×3 kernels' buffers.
func (op *DepthwiseOp) kern(s *scratch, x, out []float32, b0, b1, oy0, oy1 int) {
	if op.kk != nil {
		op.runK(s, x, out, b0, b1, oy0, oy1)
		return
	}
	c := op.c
	ib, ob := c.InH*c.InW*BlockC, op.oh*op.ow*BlockC
	op.k(x[b0*ib:b1*ib], op.wb[b0*10*BlockC:b1*10*BlockC], out[b0*ob:b1*ob],
		b1-b0, c.InH, c.InW, oy0, oy1, op.relu)
}

// dwb3x3s1Go is the portable twin of the stride-1 assembly kernels
// (dwb3x3s1AVX512, dwb3x3s1AVX2); see dwbGo.
func dwb3x3s1Go(x, w, out []float32, nb, h, wd, oy0, oy1 int, relu bool) {
	dwbGo(x, w, out, nb, h, wd, oy0, oy1, relu, 1)
}

// dwb3x3s2Go is the portable twin of the stride-2 assembly kernels
// (dwb3x3s2AVX512, dwb3x3s2AVX2); see dwbGo.
func dwb3x3s2Go(x, w, out []float32, nb, h, wd, oy0, oy1 int, relu bool) {
	dwbGo(x, w, out, nb, h, wd, oy0, oy1, relu, 2)
}

// dwbGo computes, with oh = (h-1)/s + 1, ow = (wd-1)/s + 1, for every block
// b < nb, output row oy0 <= oy < oy1, column ox < ow and lane j < 16:
//
//	acc := w[(b*10+9)*16+j] // bias
//	for ky := 0; ky < 3; ky++ {
//		for kx := 0; kx < 3; kx++ {
//			iy, ix := oy*s-1+ky, ox*s-1+kx
//			if 0 <= iy && iy < h && 0 <= ix && ix < wd {
//				acc += x[(b*h*wd+iy*wd+ix)*16+j] * w[(b*10+ky*3+kx)*16+j]
//			}
//		}
//	}
//	if relu {
//		acc = max(acc, 0)
//	}
//	out[(b*oh*ow+oy*ow+ox)*16+j] = acc
//
// The assembly kernels sum the taps in this order (ky, then kx) with fused
// multiply-adds; this version, which runs one lane at a time with its nine
// weights in registers (scalar Go cannot use the 16 lanes at once), sums
// the three kernel rows of interior pixels separately.
func dwbGo(x, w, out []float32, nb, h, wd, oy0, oy1 int, relu bool, s int) {
	if nb <= 0 || h <= 0 || wd <= 0 || oy0 >= oy1 {
		return
	}
	oh, ow := (h-1)/s+1, (wd-1)/s+1
	ib, ob := h*wd*BlockC, oh*ow*BlockC
	rs := wd * BlockC // input row stride
	for b := 0; b < nb; b++ {
		xb := x[b*ib : (b+1)*ib]
		wb := (*[10 * BlockC]float32)(w[b*10*BlockC : (b+1)*10*BlockC])
		outb := out[b*ob : (b+1)*ob]
		for j := 0; j < BlockC; j++ {
			w0, w1, w2 := wb[0*BlockC+j], wb[1*BlockC+j], wb[2*BlockC+j]
			w3, w4, w5 := wb[3*BlockC+j], wb[4*BlockC+j], wb[5*BlockC+j]
			w6, w7, w8 := wb[6*BlockC+j], wb[7*BlockC+j], wb[8*BlockC+j]
			bias := wb[9*BlockC+j]
			for oy := oy0; oy < oy1; oy++ {
				iy := oy*s - 1
				orow := outb[oy*ow*BlockC : (oy+1)*ow*BlockC]
				// Interior columns [1, xhi) of interior rows: all nine taps.
				xhi := 1
				if iy >= 0 && iy+2 < h && wd >= 2 {
					xhi = min(ow, (wd-2)/s+1) // (xhi-1)·s+1 <= wd-1
				}
				for ox := 0; ox < ow; ox++ {
					if ox == 1 && xhi > 1 {
						dwbRowGo(xb[iy*rs:(iy+3)*rs], orow[BlockC:xhi*BlockC], rs, s, j, relu,
							[10]float32{w0, w1, w2, w3, w4, w5, w6, w7, w8, bias})
						ox = xhi - 1
						continue
					}
					acc := dwbBorderGo(xb, wb, h, wd, iy, ox*s-1, j)
					if relu {
						acc = max(acc, 0)
					}
					orow[ox*BlockC+j] = acc
				}
			}
		}
	}
}

// dwbRowGo computes lane j of the interior output pixels out (a run of
// whole pixels starting at output column 1) from the three input rows x
// (row stride rs), weights and bias wv.
func dwbRowGo(x, out []float32, rs, s, j int, relu bool, wv [10]float32) {
	w0, w1, w2, w3, w4, w5, w6, w7, w8, bias := wv[0], wv[1], wv[2], wv[3], wv[4], wv[5], wv[6], wv[7], wv[8], wv[9]
	step := s * BlockC
	p := j // input column 0 of the first pixel (ox = 1: ix = s-1)
	p += (s - 1) * BlockC
	for o := j; o < len(out); o += BlockC {
		r0 := x[p : p+2*BlockC+1]
		r1 := x[p+rs : p+rs+2*BlockC+1]
		r2 := x[p+2*rs : p+2*rs+2*BlockC+1]
		a := bias + r0[0]*w0 + r0[BlockC]*w1 + r0[2*BlockC]*w2
		b := r1[0]*w3 + r1[BlockC]*w4 + r1[2*BlockC]*w5
		c := r2[0]*w6 + r2[BlockC]*w7 + r2[2*BlockC]*w8
		acc := a + b + c
		if relu {
			acc = max(acc, 0)
		}
		out[o] = acc
		p += step
	}
}

// dwbBorderGo computes lane j of one output pixel whose 3×3 window, with
// top-left input pixel (iy, ix), crosses the border; bias included.
func dwbBorderGo(xb []float32, wb *[10 * BlockC]float32, h, wd, iy, ix, j int) float32 {
	acc := wb[9*BlockC+j]
	for ky := 0; ky < 3; ky++ {
		y := iy + ky
		if uint(y) >= uint(h) {
			continue
		}
		for kx := 0; kx < 3; kx++ {
			x := ix + kx
			if uint(x) >= uint(wd) {
				continue
			}
			acc += xb[(y*wd+x)*BlockC+j] * wb[(ky*3+kx)*BlockC+j]
		}
	}
	return acc
}
