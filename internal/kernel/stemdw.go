package kernel

import (
	"fmt"
	"math"
	"sync"
)

// The stem and the first depthwise layer of MobileOne (3×3, stride 2) run
// as one op, band by band, so that the stem's output, the largest
// activation of the network (112×112×64 floats, 3.2 MB, for S1–S4 at
// 224×224), never goes to memory: each band of depthwise output rows is
// computed from the stem rows it reads, which the stem has just written to
// a per-worker buffer that stays in L2. (Measured: the pair runs 5–8 %
// faster than the two ops apart and the plan needs one large buffer less;
// the stem's slowness inside a network came from its cold input image,
// which StemOp.prefetch addresses, not from its output.)
//
// The results are bit-identical to StemOp then DepthwiseOp: the same
// kernels compute every stem row and every depthwise row.

// stemDWPoison makes every task fill its window with NaN first (tests: no
// window row the task did not write may be read).
var stemDWPoison = false

// stemDWBandBytes bounds a worker's buffer of stem rows.
const stemDWBandBytes = 256 << 10

// StemDWOK reports whether NewStemDWOp supports the stem convolution stem
// followed by the depthwise convolution dw: StemBlockedOK(stem),
// DepthwiseBlockedOK(dw) with K 3, Pad 1 and stride 2, and dw reads what
// stem writes.
func StemDWOK(stem, dw Conv) bool {
	return StemBlockedOK(stem) && DepthwiseBlockedOK(dw) && dwb3x3(dw) && dw.Stride == 2 &&
		dw.InC == stem.OutC && dw.InH == stem.OutH() && dw.InW == stem.OutW()
}

// StemDWOp is a blocked stem (StemOp) followed by a 3×3 stride-2 depthwise
// convolution (DepthwiseOp), each with its bias and optional ReLU, computed
// band by band. Create it with NewStemDWOp; Run allocates nothing in
// steady state and may be called concurrently.
type StemDWOp struct {
	// Workers, if > 0, caps the goroutines Run uses (never more than
	// Threads()); 0 means Threads(). Set it only while no Run is in flight.
	Workers int

	stem *StemOp
	dw   *DepthwiseOp
	band int // depthwise output rows per band
	runs sync.Pool
}

// stemDWRun is the state of one Run and the task closure bound to it.
type stemDWRun struct {
	op     *StemDWOp
	x, out []float32
	nTasks int
	fn     func(s *scratch, t int)
}

// NewStemDWOp packs the weights of the stem convolution stem (sw (OutC,
// InC, 3, 3), bias sb or nil, ReLU if srelu) and of the depthwise
// convolution dw (dww (C, 1, 3, 3), bias dwb or nil, ReLU if dwrelu). The
// slices are not retained. It panics if !StemDWOK(stem, dw).
func NewStemDWOp(stem Conv, sw, sb []float32, srelu bool, dw Conv, dww, dwb []float32, dwrelu bool) *StemDWOp {
	if !StemDWOK(stem, dw) {
		panic(fmt.Sprintf("kernel: NewStemDWOp: unsupported convolutions %+v, %+v", stem, dw))
	}
	op := &StemDWOp{
		stem: NewStemOp(stem, sw, sb, srelu),
		dw:   NewDepthwiseOp(dw, dww, dwb, dwrelu),
	}
	rowBytes := 4 * Blocks(dw.InC) * dw.InW * BlockC
	op.band = max(1, (stemDWBandBytes/rowBytes-2)/2)
	op.runs.New = func() any {
		r := new(stemDWRun)
		r.fn = func(s *scratch, t int) { r.op.task(s, r.x, r.out, r.nTasks, t) }
		return r
	}
	return op
}

// OutShape returns the output shape (channels, height, width) of the
// depthwise layer; the output buffer holds BlockedLen(channels,
// height·width) floats.
func (op *StemDWOp) OutShape() (c, h, w int) { return op.dw.OutShape() }

// Run computes out = dw(stem(x)), each with its bias and ReLU.
//
//	x:   (InC, InH, InW) NCHW, the stem's input
//	out: BlockedLen(C, OutH·OutW), blocked; padding channels are set to 0.
//
// x and out must not overlap. Each worker computes one contiguous range
// of output rows.
func (op *StemDWOp) Run(x, out []float32) {
	sc, dc := op.stem.c, op.dw.c
	oh := op.dw.oh
	work := Blocks(sc.OutC)*BlockC*sc.InC*9*sc.OutH()*sc.OutW() + op.dw.nb*oh*op.dw.ow*9*BlockC
	workers := workersForLimit(oh, work, op.Workers)
	r := op.runs.Get().(*stemDWRun)
	r.op = op
	r.x = x[:sc.InC*sc.InH*sc.InW]
	r.out = out[:BlockedLen(dc.OutC, oh*op.dw.ow)]
	r.nTasks = max(1, min(workers, oh))
	parallelForStatic(r.nTasks, r.nTasks, r.fn)
	r.op, r.x, r.out = nil, nil, nil
	op.runs.Put(r)
}

// task computes depthwise output rows [t·oh/nTasks, (t+1)·oh/nTasks), a
// band of at most op.band rows at a time. A band of rows [b0, b1) reads
// stem rows 2·b0-1 … 2·b1-1, which go to a window in s.b: per channel
// block, window row i holds stem row base+i, base = 2·b0-2 (0 for the top
// band, whose window starts at stem row 0), so that window-relative output
// row i reads window rows 2i-1 … 2i+1 as the depthwise kernel expects.
// Window row 0 of the other bands is never read. The last stem row of a
// band is the first one the next band reads: it is copied, not recomputed.
func (op *StemDWOp) task(s *scratch, x, out []float32, nTasks, t int) {
	stem, dw := op.stem, op.dw
	h, wd := dw.c.InH, dw.c.InW // stem output = depthwise input
	oh, ow := dw.oh, dw.ow
	nb := dw.nb
	row := wd * BlockC          // one stem row of one block
	bs := (2*op.band + 2) * row // window block stride: a dummy row, then 2·band+1
	s.b = grow(s.b, nb*bs)
	win := s.b
	if stemDWPoison {
		for i := range win {
			win[i] = float32(math.NaN())
		}
	}
	oy0, oy1 := t*oh/nTasks, (t+1)*oh/nTasks
	have := -1 // stem row held in the window's last row (-1: none)
	last := 0  // that row's index in the window
	for b0 := oy0; b0 < oy1; b0 += op.band {
		b1 := min(oy1, b0+op.band)
		base, r0 := 0, 0
		if b0 > 0 {
			base, r0 = 2*b0-2, 1
		}
		first := 2*b0 - 1 // first stem row read
		if b0 == 0 {
			first = 0
		}
		end := min(h, 2*b1) // stem rows [first, end)
		sy := first
		if have == first {
			for cb := 0; cb < nb; cb++ {
				blk := win[cb*bs:]
				copy(blk[(first-base)*row:(first-base+1)*row], blk[last*row:(last+1)*row])
			}
			sy++
		}
		for ; sy < end; sy++ {
			stem.row(s, x, win[(sy-base)*row:], bs, sy)
		}
		have, last = end-1, end-1-base
		hw := end - base // window rows
		ohw := (hw-1)/2 + 1
		for cb := 0; cb < nb; cb++ {
			o := (cb*oh*ow + (b0-r0)*ow) * BlockC
			dw.k(win[cb*bs:cb*bs+hw*row], dw.wb[cb*10*BlockC:(cb+1)*10*BlockC], out[o:o+ohw*ow*BlockC],
				1, hw, wd, r0, r0+b1-b0, dw.relu)
		}
	}
}
