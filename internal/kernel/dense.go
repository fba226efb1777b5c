package kernel

import (
	"os"
	"strconv"
	"sync"
)

// Dense K×K convolutions (groups 1, any stride, padding and dilation) on
// blocked activations (NCHW16c), on the pointwise micro-kernels.
//
// A K×K convolution is a sum of K² pointwise ones over shifted inputs:
// out(p) = Σ_taps W_tap · x(p·s + tap·d − pad). Run first copies the input
// into a zero-padded buffer split into s² phase planes (pixel (y, x) of the
// padded input goes to plane (y mod s, x mod s) at (y/s, x/s)), so that the
// pixels one tap reads for a run of output pixels of one row are
// consecutive in one plane, at a stride of one pixel: exactly what a
// pointwise kernel reads. Each tile of output pixels × output blocks then
// accumulates over taps and chunks of input blocks in registers and in L1
// (pwAcc), the bias and ReLU applied by the last call. The weights are
// packed per group of output blocks as [tap][input channel][nb·16].

// Taps that read only padding for a run of output pixels are skipped (a
// dilated convolution on a map not much larger than its dilation, as
// DeepLabV3's atrous pyramid, has many).

// maxDenseTaps bounds K² (an array of live taps on the stack).
const maxDenseTaps = 64

// DenseBlockedOK reports whether NewDenseOp supports c with dilation dil:
// K ≥ 1 (at most 8), stride ≥ 1, pad ≥ 0, dilation ≥ 1, a non-empty output, and
// groups 1 or groups whose input and output channels are whole 16-channel
// blocks (RegNet's grouped layers).
func DenseBlockedOK(c Conv, dil int) bool {
	g := max(c.Groups, 1)
	grouped := g == 1 || (c.InC%g == 0 && c.OutC%g == 0 && (c.InC/g)%BlockC == 0 && (c.OutC/g)%BlockC == 0)
	return grouped && c.K >= 1 && c.K*c.K <= maxDenseTaps && c.Stride >= 1 && c.Pad >= 0 && dil >= 1 &&
		c.InC >= 1 && c.OutC >= 1 && denseOut(c.InH, c, dil) >= 1 && denseOut(c.InW, c, dil) >= 1
}

func denseOut(n int, c Conv, dil int) int {
	return (n+2*c.Pad-dil*(c.K-1)-1)/c.Stride + 1
}

// DenseOp is a dense convolution on blocked activations with bias and
// optional ReLU fused. Create it with NewDenseOp; Run allocates nothing in
// steady state and may be called concurrently.
type DenseOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int

	c              Conv
	dil            int
	oh, ow         int
	hq, wq         int // phase plane size
	r0, c0         int // padded coordinates of a stride-1 plane's first stored row and column
	cib, cob, taps int
	gib, gob       int // input and output blocks per group (cib, cob without groups)
	nb             int // output blocks per tile (a group's at most)
	tl             []denseTile
	kcb            int // input blocks per call
	relu           bool
	im             *pwImpl
	w              []float32 // per output group: [taps][cib*16][nb*16]
	bias           []float32
	planes         sync.Pool // *[]float32: the padded phase planes
	runs           sync.Pool // *denseRun
}

type denseRun struct {
	op        *DenseOp
	xp, out   []float32
	rowsPer   int // output rows per task
	nRT, nGT  int // row tasks, group tasks
	gPer      int // groups per task
	fn        func(s *scratch, t int)
	nGroupAll int
}

// denseChunkWeights bounds the weights of one chunk of input blocks (all
// taps), which the tiles of a band of rows go through before the next
// chunk: 4 input blocks with AVX-512's 4-block tiles at 3×3 (measured on
// ResNet-18's layers, one thread, noisy machine: 1 and 16 blocks were up to
// 2× and 1.2× slower on some layers, never faster on all).
const denseChunkWeights = 160 << 10

// denseKCB, if set (MOBILEONE_DENSEKCB=blocks), replaces the chunk size
// (for tuning on other machines).
var denseKCB, _ = strconv.Atoi(os.Getenv("MOBILEONE_DENSEKCB"))

// NewDenseOp packs the weights w (OutC, InC/Groups, K, K) and bias (OutC) or nil
// of convolution c with dilation dil, fusing ReLU if relu. w and bias are
// not retained. It panics if !DenseBlockedOK(c, dil).
func NewDenseOp(c Conv, dil int, w, bias []float32, relu bool) *DenseOp {
	if !DenseBlockedOK(c, dil) {
		panic("kernel: NewDenseOp: unsupported convolution")
	}
	c.Groups = max(c.Groups, 1)
	im := pwKernels.active
	s := c.Stride
	op := &DenseOp{c: c, dil: dil, relu: relu, im: im,
		oh: denseOut(c.InH, c, dil), ow: denseOut(c.InW, c, dil),
		cib: Blocks(c.InC), cob: Blocks(c.OutC), taps: c.K * c.K}
	op.gib, op.gob = op.cib, op.cob
	if c.Groups > 1 {
		op.gib, op.gob = c.InC/c.Groups/BlockC, c.OutC/c.Groups/BlockC
	}
	op.nb = min(im.nb, op.gob)
	op.hq = ceilDiv(c.InH+2*c.Pad, s)
	op.wq = ceilDiv(c.InW+2*c.Pad, s)
	if s == 1 {
		// Rows of padding are never read (the taps reading them are
		// skipped), columns at most a run of pixels (im.r) beyond the map:
		// the plane holds the map's rows, cp columns of padding each side,
		// and one zero row for the runs that read no input at all.
		cp := min(c.Pad, im.r-1)
		op.r0, op.c0 = c.Pad, c.Pad-cp
		op.hq, op.wq = c.InH+1, c.InW+2*cp
	}
	op.kcb = max(1, min(op.gib, denseChunkWeights/(4*op.taps*BlockC*op.nb*BlockC)))
	if denseKCB > 0 {
		op.kcb = min(op.gib, denseKCB)
	}
	// Tiles of output blocks [ob0, ob0+nb) never straddle two groups;
	// their panel is [taps][the group's input channels][nb·16].
	kdim := op.gib * BlockC
	per := op.taps * kdim // rows of a tile group's panel
	op.w = pwAligned(op.cob * BlockC * per)
	kk := c.K * c.K
	cinG := c.InC / c.Groups
	op.tl = op.tiles()
	for _, t := range op.tl {
		panel := op.w[t.ob0*BlockC*per : (t.ob0+t.nb)*BlockC*per]
		for o := t.ob0 * BlockC; o < min(c.OutC, (t.ob0+t.nb)*BlockC); o++ {
			col := o - t.ob0*BlockC
			for i := 0; i < cinG; i++ {
				for tap := 0; tap < kk; tap++ {
					panel[(tap*kdim+i)*t.nb*BlockC+col] = w[(o*cinG+i)*kk+tap]
				}
			}
		}
	}
	if bias != nil {
		op.bias = pwAligned(op.cob * BlockC)
		copy(op.bias, bias[:c.OutC])
	}
	n := op.cib * s * s * op.hq * op.wq * BlockC
	op.planes.New = func() any { b := make([]float32, n); return &b }
	op.runs.New = func() any {
		r := new(denseRun)
		r.fn = func(_ *scratch, t int) { r.task(t) }
		return r
	}
	return op
}

// denseTile is a group of output blocks [ob0, ob0+nb) computed together
// from input blocks [ib0, ib0+gib).
type denseTile struct{ ob0, nb, ib0 int }

// tiles lists the output block groups in order.
func (op *DenseOp) tiles() []denseTile {
	var ts []denseTile
	for g0 := 0; g0 < op.cob; g0 += op.gob {
		ib0 := g0 / op.gob * op.gib
		for ob0 := g0; ob0 < g0+op.gob; ob0 += op.nb {
			ts = append(ts, denseTile{ob0, min(op.nb, g0+op.gob-ob0), ib0})
		}
	}
	return ts
}

// OutShape is the output's channels, height and width.
func (op *DenseOp) OutShape() (c, h, w int) { return op.c.OutC, op.oh, op.ow }

// Run computes out = conv(x) + bias (then ReLU if the op fuses it).
//
//	x:   BlockedLen(InC, InH·InW) floats
//	out: BlockedLen(OutC, OutH·OutW) floats; padding channels are written as 0.
func (op *DenseOp) Run(x, out []float32) {
	c := op.c
	x = x[:BlockedLen(c.InC, c.InH*c.InW)]
	out = out[:BlockedLen(c.OutC, op.oh*op.ow)]
	pp := op.planes.Get().(*[]float32)
	xp := *pp
	op.pad(x, xp)
	nGroups := len(op.tl)
	work := op.oh * op.ow * op.taps * op.gib * op.cob * BlockC * BlockC
	workers := workersForLimit(op.oh*nGroups, work, op.Workers)
	r := op.runs.Get().(*denseRun)
	r.op, r.xp, r.out, r.nGroupAll = op, xp, out, nGroups
	// Tasks: bands of output rows × chunks of output groups, about four
	// per worker; a single worker takes everything in one task.
	r.rowsPer, r.gPer = op.oh, nGroups
	if workers > 1 {
		target := 4 * workers
		r.rowsPer = max(1, ceilDiv(op.oh, target))
		if nRT := ceilDiv(op.oh, r.rowsPer); nRT < target {
			r.gPer = max(1, ceilDiv(nGroups, ceilDiv(target, nRT)))
		}
	}
	r.nRT, r.nGT = ceilDiv(op.oh, r.rowsPer), ceilDiv(nGroups, r.gPer)
	nTasks := r.nRT * r.nGT
	if workers <= 1 {
		for t := 0; t < nTasks; t++ {
			r.task(t)
		}
	} else {
		parallelFor(nTasks, min(workers, nTasks), r.fn)
	}
	*r = denseRun{fn: r.fn}
	op.runs.Put(r)
	op.planes.Put(pp)
}

// pad writes x into the zero-padded phase planes xp.
func (op *DenseOp) pad(x, xp []float32) {
	c, s := op.c, op.c.Stride
	hw := c.InH * c.InW
	plane := op.hq * op.wq * BlockC
	blk := s * s * plane
	clear(xp)
	for cb := 0; cb < op.cib; cb++ {
		src := x[cb*hw*BlockC : (cb+1)*hw*BlockC]
		dst := xp[cb*blk : (cb+1)*blk]
		for iy := 0; iy < c.InH; iy++ {
			y := iy + c.Pad
			row := src[iy*c.InW*BlockC : (iy+1)*c.InW*BlockC]
			if s == 1 {
				copy(dst[((y-op.r0)*op.wq+c.Pad-op.c0)*BlockC:], row)
				continue
			}
			for ix := 0; ix < c.InW; ix++ {
				xx := ix + c.Pad
				ph := (y%s)*s + xx%s
				o := ph*plane + ((y/s)*op.wq+xx/s)*BlockC
				copy(dst[o:o+BlockC], row[ix*BlockC:(ix+1)*BlockC])
			}
		}
	}
}

// task computes output rows band t/nGT × groups chunk t%nGT.
func (r *denseRun) task(t int) {
	op := r.op
	rt, gt := t/r.nGT, t%r.nGT
	y0, y1 := rt*r.rowsPer, min(op.oh, (rt+1)*r.rowsPer)
	g0, g1 := gt*r.gPer, min(r.nGroupAll, (gt+1)*r.gPer)
	op.rows(r.xp, r.out, y0, y1, g0, g1)
}

// rows computes output rows [y0, y1) of output groups [g0, g1).
func (op *DenseOp) rows(xp, out []float32, y0, y1, g0, g1 int) {
	c, im := op.c, op.im
	s, d, K := c.Stride, op.dil, c.K
	plane := op.hq * op.wq * BlockC
	xstride := s * s * plane
	ostride := op.oh * op.ow * BlockC
	kdim := op.gib * BlockC
	per := op.taps * kdim
	var last uint
	if op.bias != nil {
		last |= pwBias
	}
	if op.relu {
		last |= pwReLU
	}
	for _, tl := range op.tl[g0:g1] {
		ob0, nb := tl.ob0, tl.nb
		panel := op.w[ob0*BlockC*per : (ob0+nb)*BlockC*per]
		var bias []float32
		if op.bias != nil {
			bias = op.bias[ob0*BlockC : (ob0+nb)*BlockC]
		}
		ob := out[ob0*ostride : (ob0+nb-1)*ostride+op.oh*op.ow*BlockC]
		for k0 := 0; k0 < op.gib; k0 += op.kcb {
			kb := min(op.kcb, op.gib-k0)
			for oy := y0; oy < y1; oy++ {
				for ox := 0; ox < op.ow; ox += im.r {
					rows := min(im.r, op.ow-ox)
					p := oy*op.ow + ox
					ot := ob[p*BlockC : (nb-1)*ostride+(p+rows)*BlockC]
					// The taps that read some input pixel for this run of
					// output pixels (the others multiply padding: with a
					// dilation near the map's size, most of them).
					var live [maxDenseTaps]int
					n := 0
					for ky := 0; ky < K; ky++ {
						y := oy*s + ky*d
						if y < c.Pad || y >= c.Pad+c.InH {
							continue
						}
						for kx := 0; kx < K; kx++ {
							if xx := ox*s + kx*d; xx+(rows-1)*s >= c.Pad && xx < c.Pad+c.InW {
								live[n] = ky*K + kx
								n++
							}
						}
					}
					zero := n == 0
					if zero { // all padding: one tap (on zeros) writes the bias
						n = 1
					}
					for i, tap := range live[:n] {
						ky, kx := tap/K, tap%K
						y, xx := oy*s+ky*d-op.r0, ox*s+kx*d-op.c0
						o := (tl.ib0+k0)*xstride + ((y%s)*s+xx%s)*plane + ((y/s)*op.wq+xx/s)*BlockC
						if zero && s == 1 {
							o = (tl.ib0+k0)*xstride + (op.hq-1)*op.wq*BlockC // the zero row
						}
						xt := xp[o : o+(kb-1)*xstride+rows*BlockC]
						wt := panel[(tap*kdim+k0*BlockC)*nb*BlockC : (tap*kdim+(k0+kb)*BlockC)*nb*BlockC]
						var flags uint
						if k0 > 0 || i > 0 {
							flags = pwAcc
						}
						if k0+kb == op.gib && i == n-1 {
							flags |= last
						}
						im.kern[rows][nb](xt, wt, ot, bias, kb, xstride, ostride, flags)
					}
				}
			}
		}
	}
}
