package kernel

import (
	"os"
	"sync"

	"github.com/mobileone-go/mobileone/internal/cpu"
)

// The network stem with blocked output: a dense 3×3 convolution, pad 1,
// stride 1 or 2, from an NCHW image (few channels) straight to the
// channel-blocked layout (blocked.go), bias and ReLU fused.
//
// Output channels are in the vector lanes: one vector is one block of 16
// output channels at one pixel, which is exactly one 64-byte row of the
// blocked output. A kernel call computes one output row for a group of nb
// blocks; it runs along the row in tiles of R pixels × nb blocks (about 24
// ZMM accumulators), and for each tap (ci, ky, kx) broadcasts R input values
// and loads nb weight vectors. The weights of a group are packed once, as
// [ci][ky·3+kx][nb][16] with zero padding channels, so padding channels of
// the output come out as zero (for finite inputs).
//
// Interior output rows read the image in place, with no copy: the kernels
// have a left-edge variant of their first tile that skips the taps kx = 0 of
// pixel 0 and a final one-pixel right-edge tile that skips the taps kx = 2
// (neither is read). Only the top and bottom output rows (and rows too
// narrow for a tile) run on a zero-padded copy of their three input rows.
// (Copying every row band, as ConvOp's NCHW stem does, cost about 8% here.)
// Tasks are bands of output rows.

// stembKernel computes n output pixels of one output row for nb blocks of
// 16 output channels (nb is fixed per kernel); see stembGo.
type stembKernel func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, n, edges int, relu bool)

// Edge flags of a stem kernel call.
const (
	stembLeft  = 1 // pixel 0 is at the left image edge: skip its taps kx = 0
	stembRight = 2 // pixel n-1 is at the right image edge: skip its taps kx = 2
)

// stembImpl is the set of blocked-stem kernels of one level: k[stride-1][nb]
// for nb ≤ maxNB.
type stembImpl struct {
	level cpu.Level
	k     [2][5]stembKernel
	tile  [5]int // pixels per full tile, by nb
	maxNB int
}

// stembGo is the pure-Go twin of every stem kernel: for a zero-padded input
// xp (channel ci, kernel row ky at xp[ci*chStride+ky*ldx:], padded column
// stride·p+kx holding the input column of tap kx of output pixel p), weights
// w[((ci*9+ky*3+kx)*nb+blk)*16+j] and bias b[blk*16+j]:
//
//	for p < n, blk < nb, j < 16:
//		s := b[blk*16+j]
//		for ci < cin, ky < 3, kx < 3:
//			if p == 0 && kx == 0 && edges&stembLeft != 0 { continue }
//			if p == n-1 && kx == 2 && edges&stembRight != 0 { continue }
//			s += xp[ci*chStride+ky*ldx+stride*p+kx] * w[((ci*9+ky*3+kx)*nb+blk)*16+j]
//		if relu { s = max(s, 0) }
//		out[blk*ldo+p*16+j] = s
//
// Skipped taps are not read (the twin adds 0·w for them, which changes
// nothing for finite weights); the sums run in the order above, as in the
// full tiles of the assembly (its narrow tiles sum even and odd taps in two
// sets of accumulators, added at the end). With stembLeft the assembly kernels require n ≥ tile+1 (tile:
// their pixels per full tile).
func stembGo(stride, nb int, xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, n, edges int, relu bool) {
	ld := nb * BlockC // weights per tap
	for p := 0; p < n; p++ {
		// A skipped tap is not read; its input counts as zero.
		left := p == 0 && edges&stembLeft != 0
		right := p == n-1 && edges&stembRight != 0
		// Each half block of 8 channels in scalar accumulators (an array
		// would live in memory; 16 would not fit the registers).
		for h := 0; h < ld; h += 8 {
			bv := (*[8]float32)(b[h:])
			a0, a1, a2, a3, a4, a5, a6, a7 := bv[0], bv[1], bv[2], bv[3], bv[4], bv[5], bv[6], bv[7]
			for ci := 0; ci < cin; ci++ {
				for ky := 0; ky < 3; ky++ {
					o := ci*chStride + ky*ldx + stride*p
					var x0, x2 float32
					if !left {
						x0 = xp[o]
					}
					x1 := xp[o+1]
					if !right {
						x2 = xp[o+2]
					}
					wt := w[(ci*9+ky*3)*ld+h:]
					w0, w1, w2 := (*[8]float32)(wt), (*[8]float32)(wt[ld:]), (*[8]float32)(wt[2*ld:])
					a0 = a0 + x0*w0[0] + x1*w1[0] + x2*w2[0]
					a1 = a1 + x0*w0[1] + x1*w1[1] + x2*w2[1]
					a2 = a2 + x0*w0[2] + x1*w1[2] + x2*w2[2]
					a3 = a3 + x0*w0[3] + x1*w1[3] + x2*w2[3]
					a4 = a4 + x0*w0[4] + x1*w1[4] + x2*w2[4]
					a5 = a5 + x0*w0[5] + x1*w1[5] + x2*w2[5]
					a6 = a6 + x0*w0[6] + x1*w1[6] + x2*w2[6]
					a7 = a7 + x0*w0[7] + x1*w1[7] + x2*w2[7]
				}
			}
			acc := [8]float32{a0, a1, a2, a3, a4, a5, a6, a7}
			dst := (*[8]float32)(out[h/BlockC*ldo+p*BlockC+h%BlockC:])
			if relu {
				for j, v := range acc {
					dst[j] = max(v, 0)
				}
			} else {
				*dst = acc
			}
		}
	}
}

// stembGoKernel returns the twin for stride and nb as a stembKernel.
func stembGoKernel(stride, nb int) stembKernel {
	return func(xp []float32, chStride, ldx int, w, b, out []float32, ldo, cin, n, edges int, relu bool) {
		stembGo(stride, nb, xp, chStride, ldx, w, b, out, ldo, cin, n, edges, relu)
	}
}

// stembPureGo runs the twin, one block per group.
var stembPureGo = &stembImpl{level: cpu.PureGo, maxNB: 1, tile: [5]int{1: 8},
	k: [2][5]stembKernel{{nil, stembGoKernel(1, 1)}, {nil, stembGoKernel(2, 1)}}}

// stembKernels are this family's kernels by level (see levelSet).
var stembKernels = newLevelSet(stembPureGo, stembAsm[:])

// stembSplit splits cb blocks into groups of at most maxNB blocks (one
// kernel call per group and output row). With maxNB 4 it prefers groups of
// 4 and 3 (24 accumulators), then 2.
func stembSplit(cb, maxNB int) []int {
	var gs []int
	if maxNB < 4 {
		for cb > 0 {
			n := min(cb, maxNB)
			gs = append(gs, n)
			cb -= n
		}
		return gs
	}
	for cb > 0 {
		switch {
		case cb <= 4:
			gs = append(gs, cb)
			cb = 0
		case cb == 5:
			gs = append(gs, 3, 2)
			cb = 0
		case cb%4 == 0 || cb%4 == 3:
			gs = append(gs, 4)
			cb -= 4
		default: // cb%4 is 1 or 2: take a 3 so that the rest ends in 4s and 3s
			gs = append(gs, 3)
			cb -= 3
		}
	}
	return gs
}

// StemBlockedOK reports whether NewStemOp supports c: Groups == 1, K == 3,
// Pad == 1, Stride 1 or 2 (any InC ≥ 1, any OutC ≥ 1).
func StemBlockedOK(c Conv) bool {
	return max(c.Groups, 1) == 1 && c.K == 3 && c.Pad == 1 && (c.Stride == 1 || c.Stride == 2) &&
		c.InC >= 1 && c.OutC >= 1 && c.InH >= 1 && c.InW >= 1
}

// stembGroup is a group of nb consecutive output blocks from block cb0, run
// by one kernel call per output row.
type stembGroup struct {
	cb0, nb int
	k       stembKernel
	w, b    []float32 // packed [ci][9][nb][16], bias [nb][16]
}

// StemOp is a dense 3×3 convolution from an NCHW image to blocked
// activations, bias and an activation fused (ReLU in the kernels' stores,
// any other one, see NewStemOpAct, applied to each output row right after
// it is computed). Create it with NewStemOp; Run
// allocates nothing in steady state and may be called concurrently.
type StemOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int

	c     Conv
	relu  bool
	post  Activation // applied after the stores (not ReLU: relu)
	act   *actImpl
	level cpu.Level
	band  int // output rows per task
	// maxTile is the largest full tile of the groups' kernels: rows of at
	// most maxTile pixels run on padded copies (the left-edge tile needs
	// one pixel more).
	maxTile int
	groups  []stembGroup
	runs    sync.Pool // *stembRun
}

// stembRun is the mutable state of one Run and the task closure bound to it.
type stembRun struct {
	op     *StemOp
	x, out []float32
	fn     func(s *scratch, t int)
}

// NewStemOp packs the weights w (OutC, InC, 3, 3) and bias (OutC) or nil of
// convolution c, fusing ReLU if relu, for the kernel level selected at
// start-up. w and bias are not retained. It panics if !StemBlockedOK(c).
func NewStemOp(c Conv, w, bias []float32, relu bool) *StemOp {
	return NewStemOpAct(c, w, bias, reluAct(relu))
}

// NewStemOpAct is NewStemOp fusing activation a.
func NewStemOpAct(c Conv, w, bias []float32, a Activation) *StemOp {
	if !StemBlockedOK(c) {
		panic("kernel: NewStemOp: unsupported convolution")
	}
	checkAct(a)
	c.Groups = 1
	im := stembKernels.active
	relu, post := splitAct(a)
	op := &StemOp{c: c, relu: relu, post: post, act: actKernels.active, level: im.level}
	oh := c.OutH()
	op.band = max(1, min(4, oh/16))
	cin := c.InC
	w = w[:c.OutC*cin*9]
	if bias != nil {
		bias = bias[:c.OutC]
	}
	cb0 := 0
	for _, nb := range stembSplit(Blocks(c.OutC), im.maxNB) {
		g := stembGroup{cb0: cb0, nb: nb, k: im.k[c.Stride-1][nb],
			w: make([]float32, cin*9*nb*BlockC), b: make([]float32, nb*BlockC)}
		for blk := 0; blk < nb; blk++ {
			for j := 0; j < BlockC; j++ {
				oc := (cb0+blk)*BlockC + j
				if oc >= c.OutC {
					continue
				}
				if bias != nil {
					g.b[blk*BlockC+j] = bias[oc]
				}
				for ci := 0; ci < cin; ci++ {
					for tap := 0; tap < 9; tap++ {
						g.w[((ci*9+tap)*nb+blk)*BlockC+j] = w[(oc*cin+ci)*9+tap]
					}
				}
			}
		}
		op.groups = append(op.groups, g)
		cb0 += nb
	}
	for _, g := range op.groups {
		op.maxTile = max(op.maxTile, im.tile[g.nb])
	}
	op.runs.New = func() any {
		r := new(stembRun)
		r.fn = func(s *scratch, t int) { r.op.task(s, r.x, r.out, t) }
		return r
	}
	return op
}

// OutShape returns the output shape (channels, height, width); the output
// buffer holds BlockedLen(channels, height·width) floats.
func (op *StemOp) OutShape() (c, h, w int) { return op.c.OutC, op.c.OutH(), op.c.OutW() }

// Run computes out = act(conv(x) + bias), act the fused activation.
//
//	x:   (InC, InH, InW) NCHW
//	out: BlockedLen(OutC, OutH·OutW), blocked; padding channels are set to 0.
//
// x and out must not overlap. Tasks are bands of output rows, run on up to
// Threads() (or Workers) goroutines.
func (op *StemOp) Run(x, out []float32) {
	c := op.c
	oh, ow := c.OutH(), c.OutW()
	r := op.runs.Get().(*stembRun)
	r.op, r.x, r.out = op, x[:c.InC*c.InH*c.InW], out[:BlockedLen(c.OutC, oh*ow)]
	nTasks := ceilDiv(oh, op.band)
	workers := workersForLimit(nTasks, Blocks(c.OutC)*BlockC*c.InC*9*oh*ow, op.Workers)
	if staticSchedule {
		parallelForStatic(nTasks, workers, r.fn)
	} else {
		parallelFor(nTasks, workers, r.fn)
	}
	r.op, r.x, r.out = nil, nil, nil
	op.runs.Put(r)
}

// task computes output rows [t·band, (t+1)·band).
func (op *StemOp) task(s *scratch, x, out []float32, t int) {
	c := op.c
	oh, ow := c.OutH(), c.OutW()
	oy0 := t * op.band
	oy1 := min(oh, oy0+op.band)
	ldo := oh * ow * BlockC
	for oy := oy0; oy < oy1; oy++ {
		op.row(s, x, out[oy*ow*BlockC:], ldo, oy)
		actBlocked(op.act, op.post, out, c.OutC, oh*ow, 0, Blocks(c.OutC), oy*ow, (oy+1)*ow)
	}
}

// row computes output row oy into out: block b of the row at out[b·ldo:].
// Rows whose three input rows lie inside the image (and not from row 0, so
// that column -1 has an address in x) are read in place from x: the
// kernels skip the out-of-image taps of the first and last pixels. The
// others (the top and bottom rows, with stride 1 the second, and rows too
// narrow for the left-edge tile) run on a zero-padded copy of the three
// input rows they read, in s.a.
func (op *StemOp) row(s *scratch, x, out []float32, ldo, oy int) {
	c := op.c
	st := c.Stride
	ow := c.OutW()
	if stembPrefetch {
		op.prefetch(x, oy+stembAhead)
	}
	iy := st*oy - 1
	if iy < 1 || iy+2 >= c.InH || ow <= op.maxTile {
		s.a = grow(s.a, c.InC*3*(st*(ow-1)+3))
		op.window(s.a, x, out, ldo, oy)
		return
	}
	edges := stembLeft
	if st*(ow-1)+1 >= c.InW {
		edges |= stembRight
	}
	// xp is column -1 of row iy, never read (iy ≥ 1 keeps it in x).
	op.run(x[iy*c.InW-1:], c.InH*c.InW, c.InW, out, ldo, edges)
}

// stembPrefetch turns on software prefetching of the image rows a few
// output rows ahead (MOBILEONE_STEMPREFETCH=0 turns it off). Inside a
// network the image is usually not in the caches (the layers of the run
// before have been through them), and the stem reads it as 3·InC short
// streams per output row, too short for the hardware prefetchers.
var stembPrefetch = os.Getenv("MOBILEONE_STEMPREFETCH") != "0"

// stembAhead is how many output rows ahead the stem prefetches.
const stembAhead = 2

// prefetch hints the processor to load the image rows output row oy reads
// that output row oy-1 does not (nothing if oy is past the last row).
func (op *StemOp) prefetch(x []float32, oy int) {
	c := op.c
	st := c.Stride
	if oy >= c.OutH() {
		return
	}
	plane := c.InH * c.InW
	lines := ceilDiv(c.InW, 16) + 1 // the row may straddle one more line
	for iy := max(0, st*oy+2-st); iy <= min(c.InH-1, st*oy+1); iy++ {
		for ci := 0; ci < c.InC; ci++ {
			o := ci*plane + iy*c.InW
			prefetchLines(x[o:], min(lines, (len(x)-o)/16))
		}
	}
}

// window computes output row oy into out (block stride ldo) from a
// zero-padded copy, in buf, of the three input rows from st·oy-1 it reads
// (one zero column on the left, zeros on the right).
func (op *StemOp) window(buf, x, out []float32, ldo, oy int) {
	c := op.c
	st := c.Stride
	ldx := st*(c.OutW()-1) + 3
	chStride := 3 * ldx
	buf = buf[:c.InC*chStride]
	plane := c.InH * c.InW
	n := min(c.InW, ldx-1) // input columns copied
	for ci := 0; ci < c.InC; ci++ {
		for r := 0; r < 3; r++ {
			dst := buf[ci*chStride+r*ldx : ci*chStride+(r+1)*ldx]
			iy := st*oy - 1 + r
			if uint(iy) >= uint(c.InH) {
				clear(dst)
				continue
			}
			dst[0] = 0
			copy(dst[1:1+n], x[ci*plane+iy*c.InW:ci*plane+iy*c.InW+n])
			clear(dst[1+n:])
		}
	}
	op.run(buf, chStride, ldx, out, ldo, 0)
}

// run calls every group's kernel on one output row, the input at xp
// (channel stride chStride, row stride ldx, column 0 for input column -1),
// the output row's block b at out[b·ldo:].
func (op *StemOp) run(xp []float32, chStride, ldx int, out []float32, ldo, edges int) {
	c := op.c
	for i := range op.groups {
		g := &op.groups[i]
		g.k(xp, chStride, ldx, g.w, g.b, out[g.cb0*ldo:], ldo, c.InC, c.OutW(), edges, op.relu)
	}
}
