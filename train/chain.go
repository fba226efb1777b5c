package train

import (
	"fmt"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// The grey stem and the depthwise block after it, trained channel by
// channel as one (a chain).
//
// A stem on a single input channel computes every output channel from the
// same image, and the depthwise block after it reads only its own channel,
// so channel c of the pair's output depends only on the image and on
// channel c's weights, and every BatchNorm statistic on the way is channel
// c's. The chain runs, per channel: the stem's planes (Conv3Plane), their
// BatchNorms and ReLU (the stem's output plane y_c, in a worker's buffer),
// the next block's planes from y_c, and their BatchNorms and ReLU into the
// block's output. The stem's output, the largest tensor of a stride-1 stem
// (48 planes of N·H·W values: 19 MB for a batch of 128 at 28×28), is never
// written: the backward pass recomputes y_c (the stem's planes again,
// normalised with the saved statistics, so the same values), and the next
// block's input gradient goes from a worker's buffer straight into the
// stem's backward. Without the chain that tensor crossed memory about six
// times a step.

// chainOff turns the chain off (tests compare the two).
var chainOff bool

// chainable reports whether the first two blocks can train as a chain: a
// stem run channel by channel (dwPlanes: grey input, 3×3 stride 1)
// without skip or SE, then a strided depthwise block on its channels
// without skip or SE (as every MobileOne's first block of stage 1 is).
func (n *Net) chainable() bool {
	if chainOff || len(n.blocks) < 2 {
		return false
	}
	s, d := n.blocks[0], n.blocks[1]
	return s.first && !s.op.DW && s.dwPlanes() && s.skip == nil && s.se == nil &&
		d.op.DW && d.op.S > 1 && d.op.Cin == s.outC && d.skip == nil && d.se == nil
}

// chainLayout is the per-worker buffer of the chain: the stem's branch
// planes of one channel, its output plane y, the next block's branch
// planes, and the gradient of y.
type chainLayout struct {
	m0, m1, nb0, nb1 int
}

func (l chainLayout) per() int { return (l.nb0+2)*l.m0 + l.nb1*l.m1 }

func (l chainLayout) split(buf []float32, wk int) (zc0, y, zc1, gy []float32) {
	b := buf[wk*l.per() : (wk+1)*l.per()]
	zc0, b = b[:l.nb0*l.m0], b[l.nb0*l.m0:]
	y, b = b[:l.m0], b[l.m0:]
	zc1, b = b[:l.nb1*l.m1], b[l.nb1*l.m1:]
	return zc0, y, zc1, b[:l.m0]
}

// chainSetup sizes the chain's buffers for input x and returns its layout,
// the next block's runs and the size of its phase planes (dwSpans).
func (n *Net) chainSetup(x *act) (chainLayout, *spanTable, int) {
	s, d := n.blocks[0], n.blocks[1]
	h0, w0 := s.op.outSize(x.H, x.W)
	s.out = act{C: s.outC, N: x.N, H: h0, W: w0} // no Data: the chain keeps it per channel
	d.x = &s.out
	oh, ow := d.op.outSize(h0, w0)
	l := chainLayout{m0: x.N * h0 * w0, m1: x.N * oh * ow, nb0: len(s.branches), nb1: len(d.branches)}
	st, pp := d.op.dwSpans(&d.ws, &s.out)
	n.chainBuf = grow(n.chainBuf, kernel.Threads()*l.per())
	s.scratch, d.scratch = bnScratch(s.scratch), bnScratch(d.scratch)
	return l, st, pp
}

// chainForward is the training forward pass of the first two blocks as a
// chain, on the input x; it returns the second block's output.
func (n *Net) chainForward(x *act) *act {
	s, d := n.blocks[0], n.blocks[1]
	s.x, s.training, d.training = x, true, true
	s.folded, d.folded, s.planed, d.planed = false, false, true, false
	s.stackWeights()
	d.stackWeights()
	l, st, pp := n.chainSetup(x)
	if l.m0 < 2 || l.m1 < 2 {
		panic(fmt.Sprintf("train: blocks %s, %s: BatchNorm in training mode needs more than one value per channel (batch %d, %dx%d)",
			s.name, d.name, x.N, s.out.H, s.out.W))
	}
	np0, sf0 := s.planeBranches()
	pop0 := s.planeOp(np0)
	d.sum = grow(d.sum, d.outC*l.m1)
	parForW(s.outC, (12*l.nb0+3)*l.m0*s.outC, func(wk, lo, hi int) {
		zc0, y, zc1, _ := l.split(n.chainBuf, wk)
		var insa0, insa1 [8]bnSrc
		ins0 := s.planeIns(insa0[:0], x, zc0, l.m0, np0, sf0)
		ins1 := d.planeIns(insa1[:0], nil, zc1, l.m1, l.nb1, nil)
		yph := d.ws.phase[2*wk*pp : (2*wk+1)*pp]
		for ch := lo; ch < hi; ch++ {
			pop0.dwForwardPlane(x, s.wst, zc0, ch, true)
			bnSumChannel(ins0, ch, l.m0, y, true, workerScratch(s.scratch, wk))
			phaseSplit(y, yph, s.out.H, s.out.W, x.N, d.op.S)
			d.op.dwChannelForward(d.x, yph, d.wst, zc1, ch, true, st)
			bnSumChannel(ins1, ch, l.m1, d.sum[ch*l.m1:(ch+1)*l.m1], true, workerScratch(d.scratch, wk))
		}
	})
	for _, b := range []*block{s, d} {
		for _, br := range b.branches {
			br.bn.bn.NumBatchesTracked++
		}
	}
	oh, ow := d.op.outSize(s.out.H, s.out.W)
	d.out = act{C: d.outC, N: x.N, H: oh, W: ow, Data: d.sum}
	return &d.out
}

// chainBackward is the backward pass of a chained forward, given the
// gradient dd of the second block's output (overwritten).
func (n *Net) chainBackward(dd []float32) {
	s, d := n.blocks[0], n.blocks[1]
	x := s.x
	l, st, pp := n.chainSetup(x)
	np0, sf0 := s.planeBranches()
	pop0 := s.planeOp(np0)
	s.dwst = grow(s.dwst, len(s.wst))
	d.dwst = grow(d.dwst, len(d.wst))
	parForW(s.outC, (36*l.nb0+9)*l.m0*s.outC, func(wk, lo, hi int) {
		zc0, y, zc1, gy := l.split(n.chainBuf, wk)
		var insa0 [8]bnSrc
		ins0 := s.planeIns(insa0[:0], x, zc0, l.m0, np0, sf0)
		var gsa0, gsa1 [8]bnGrad
		gs0 := s.planeGrads(gsa0[:0], x, zc0, nil, l.m0, np0, sf0)
		gs1 := d.planeGrads(gsa1[:0], nil, zc1, nil, l.m1, l.nb1, nil)
		yph, gyph := d.ws.phase[2*wk*pp:(2*wk+1)*pp], d.ws.phase[(2*wk+1)*pp:(2*wk+2)*pp]
		scratch := workerScratch(s.scratch, wk)
		for ch := lo; ch < hi; ch++ {
			// The stem's output plane again, then the next block's planes.
			pop0.dwForwardPlane(x, s.wst, zc0, ch, true)
			bnRecomputeChannel(ins0, ch, l.m0, y, scratch)
			phaseSplit(y, yph, s.out.H, s.out.W, x.N, d.op.S)
			d.op.dwChannelForward(d.x, yph, d.wst, zc1, ch, true, st)
			// The next block's backward, its input gradient into gy.
			bnBackChannel(gs1, ch, l.m1, dd[ch*l.m1:(ch+1)*l.m1], d.sum[ch*l.m1:(ch+1)*l.m1], scratch)
			d.op.dwChannelBackward(d.x, yph, gyph, d.wst, zc1, d.dwst, ch, true, true, st)
			phaseMerge(gyph, gy, s.out.H, s.out.W, x.N, d.op.S, true)
			// The stem's backward from gy.
			bnBackChannel(gs0, ch, l.m0, gy, y, scratch)
			pop0.dwBackwardPlane(x, s.wst, zc0, s.dwst, nil, ch, true, false)
		}
	})
	s.scatterGrads()
	d.scatterGrads()
}

// bnRecomputeChannel writes to o channel ch's ReLU output of the BatchNorms
// in ins as bnSumChannel did, from their saved batch mean and 1/std (no
// statistics are gathered or updated). ins must not fold a scale branch.
func bnRecomputeChannel(ins []bnSrc, ch, m int, o, scratch []float32) {
	var rowA [8][]float32
	var meanA, isA, gA, bA [8]float32
	rows, means, iss, gs, bs := rowA[:0], meanA[:0], isA[:0], gA[:0], bA[:0]
	for k := range ins {
		in := &ins[k]
		if in.scale != nil {
			panic("train: bnRecomputeChannel with a folded scale branch")
		}
		bn := in.bn.bn
		rows, means, iss = append(rows, in.row(ch, m)), append(means, in.bn.mean[ch]), append(iss, in.bn.invstd[ch])
		gs, bs = append(gs, bn.Weight.Data[ch]), append(bs, bn.Bias.Data[ch])
	}
	bnNormRows(rows, means, iss, gs, bs, o[:m], true, scratch)
}
