// Package train trains a train-time (unfused) MobileOne: forward and
// backward passes with BatchNorm in training mode, cross-entropy with label
// smoothing, SGD with momentum and an EMA of the weights, all matching
// PyTorch's definitions.
//
// A Net is a view of a *model.Model: its parameters are the model's own
// weight tensors, so after training m.Fuse() and m.StateDict() just work.
//
// SegNet (seg.go) trains DeepLabV3 for semantic segmentation on a Net
// used as a dense-prediction backbone (backbone.go: stages dilated
// instead of strided for output stride 16 or 8) under torchvision's
// DeepLabHead, with torchvision's DeepLabV3 state_dict keys.
package train

import (
	"fmt"

	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// Param is one learnable tensor of the model with its gradient.
type Param struct {
	Name    string         // authors' key, e.g. stage1.0.rbr_conv.0.conv.weight
	W, G    *tensor.Tensor // the model's own tensor and its accumulated gradient
	NoDecay bool           // BatchNorm weight/bias and all biases
}

// Net is a trainable view of a train-time model.
type Net struct {
	m      *model.Model
	blocks []*block
	params []Param
	linGW  *tensor.Tensor
	linGB  *tensor.Tensor

	// state of the last forward pass
	trained     bool
	n           int
	xin         act
	feat        *act
	pooled      []float32 // (C, N)
	pooledT, lt []float32
	dlt, wT     []float32
	dpool       []float32
	dfeat       []float32
	chained     bool            // the first two blocks ran as a chain (chain.go)
	geometry    []BlockGeometry // set by SetOutputStride
	chainBuf    []float32       // the chain's per-worker planes
}

// bnT is a BatchNorm with its gradients and the mean and 1/std of the last
// batch.
type bnT struct {
	bn           *nn.BatchNorm
	gW, gB       *tensor.Tensor
	mean, invstd []float32
	momentum     float64 // 0: PyTorch's default 0.1
}

func newBN(bn *nn.BatchNorm) *bnT {
	return &bnT{bn: bn, gW: tensor.New(bn.C), gB: tensor.New(bn.C), mean: make([]float32, bn.C), invstd: make([]float32, bn.C)}
}

func (b *bnT) params() bnParams {
	return bnParams{gamma: b.bn.Weight.Data, beta: b.bn.Bias.Data, rmean: b.bn.RunningMean.Data,
		rvar: b.bn.RunningVar.Data, eps: b.bn.Eps, momentum: b.momentum}
}

// branch is one conv+BN branch of a block; the 1×1 scale branch of a K×K
// block is zero-padded to K×K inside the stacked convolution.
type branch struct {
	conv   *nn.Conv2d
	gW     *tensor.Tensor
	bn     *bnT
	padded bool
}

// block is the trainable form of an nn.Block: all conv branches stacked
// into one convOp, the skip BN, SE and ReLU.
type block struct {
	name     string
	op       convOp
	outC     int
	branches []*branch
	skip     *bnT
	se       *seParams
	first    bool // the stem: no input gradient needed

	x        *act
	training bool
	wst      []float32
	dwst     []float32
	z        []float32 // branch outputs, dZ after backward (not used by channel-by-channel blocks)
	xhatSkip []float32 // the skip BatchNorm's x̂ (folded blocks only)
	scratch  []float32 // per-worker chunks for the fused BatchNorm passes (bnScratch)
	planes   []float32 // per-worker branch planes of one channel (channel-by-channel passes)
	planed   bool      // the last training forward ran channel by channel (dwPlanes)
	sum      []float32 // pre-SE sum (the output itself when there is no SE)
	outBuf   []float32
	out      act
	gx       []float32
	ws       convWork
	bnIns    []bnSrc
	bnGrads  []bnGrad
	folded   bool      // the last training forward was folded (folded.go)
	sfold    scaleFold // the folded scale branch of the channel-by-channel passes (planeBranches)
	fold     foldWork
}

// SetBF16 makes the dense convolutions' matrix multiplies (the 1×1 blocks,
// folded or not, a dense stem) round their operands to bfloat16 and sum in
// float32, on the AMX tile unit or with AVX512-BF16 (kernel.GemmBF16:
// several times, or twice, the float32 rate of this path's GEMMs on the
// trainer's shapes); depthwise layers, BatchNorm, the classifier and the
// optimiser stay float32. It fails where
// the CPU has neither (the Go twin would be far slower than float32).
func (n *Net) SetBF16(on bool) error {
	if on && !kernel.HaveBF16() {
		return fmt.Errorf("train: bfloat16 matrix multiplies need AMX-BF16 (Intel Xeon since Sapphire Rapids, Linux 5.16+) or AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake); this CPU has %s", cpu.Detected)
	}
	n.setBF16(on)
	return nil
}

// setBF16 is SetBF16 without the check (tests: without bfloat16 hardware the kernels
// run their Go twin).
func (n *Net) setBF16(on bool) {
	for _, b := range n.blocks {
		if !b.op.DW {
			b.op.BF16 = on
		}
	}
}

// NewNet wraps a train-time model. The model must not be fused.
func NewNet(m *model.Model) (*Net, error) {
	if m == nil || m.IsFused() {
		return nil, fmt.Errorf("train: need a train-time (unfused) model")
	}
	n := &Net{m: m}
	for i, nb := range m.Blocks() {
		b := nb.Block
		if b.IsFused() || len(b.Convs) == 0 {
			return nil, fmt.Errorf("train: block %s is fused or has no conv branches", nb.Name)
		}
		dw := b.Groups > 1
		if dw && (b.Groups != b.InC || b.InC != b.OutC) {
			return nil, fmt.Errorf("train: block %s: only dense and depthwise convolutions are supported (groups %d, %d→%d)",
				nb.Name, b.Groups, b.InC, b.OutC)
		}
		blk := &block{name: nb.Name, outC: b.OutC, first: i == 0}
		for _, cb := range b.Convs {
			blk.branches = append(blk.branches, &branch{conv: cb.Conv, gW: tensor.New(cb.Conv.Weight.Shape...), bn: newBN(cb.BN)})
		}
		if b.Scale != nil {
			blk.branches = append(blk.branches, &branch{conv: b.Scale.Conv, gW: tensor.New(b.Scale.Conv.Weight.Shape...),
				bn: newBN(b.Scale.BN), padded: b.K > 1})
		}
		if b.Skip != nil {
			blk.skip = newBN(b.Skip)
		}
		blk.op = convOp{Cin: b.InC, Cout: len(blk.branches) * b.OutC, K: b.K, S: b.Stride, P: b.Pad, DW: dw}
		if dw || b.InC == 1 {
			for _, br := range blk.branches {
				blk.op.CenterOnly = append(blk.op.CenterOnly, br.padded)
			}
		}
		if b.SE != nil {
			s := b.SE
			blk.se = &seParams{c: s.C, hid: s.Hidden, wr: s.Reduce.Weight.Data, br: s.Reduce.Bias.Data,
				we: s.Expand.Weight.Data, be: s.Expand.Bias.Data}
		}
		blk.aliasWeights()
		n.blocks = append(n.blocks, blk)
		n.addParams(blk, b)
	}
	if m.Linear != nil {
		n.linGW = tensor.New(m.Linear.Weight.Shape...)
		n.linGB = tensor.New(m.Linear.Bias.Shape...)
		n.params = append(n.params, Param{"linear.weight", m.Linear.Weight, n.linGW, false},
			Param{"linear.bias", m.Linear.Bias, n.linGB, true})
	}
	return n, nil
}

// addParams appends a block's parameters in the order of the authors'
// state_dict (and PyTorch's named_parameters).
func (n *Net) addParams(blk *block, b *nn.Block) {
	p := blk.name
	add := func(name string, w, g *tensor.Tensor, noDecay bool) {
		n.params = append(n.params, Param{Name: p + "." + name, W: w, G: g, NoDecay: noDecay})
	}
	addBN := func(name string, bn *bnT) {
		add(name+".weight", bn.bn.Weight, bn.gW, true)
		add(name+".bias", bn.bn.Bias, bn.gB, true)
	}
	if b.SE != nil {
		se := blk.se
		gwr, gbr := tensor.New(b.SE.Reduce.Weight.Shape...), tensor.New(b.SE.Reduce.Bias.Shape...)
		gwe, gbe := tensor.New(b.SE.Expand.Weight.Shape...), tensor.New(b.SE.Expand.Bias.Shape...)
		se.gwr, se.gbr, se.gwe, se.gbe = gwr.Data, gbr.Data, gwe.Data, gbe.Data
		add("se.reduce.weight", b.SE.Reduce.Weight, gwr, false)
		add("se.reduce.bias", b.SE.Reduce.Bias, gbr, true)
		add("se.expand.weight", b.SE.Expand.Weight, gwe, false)
		add("se.expand.bias", b.SE.Expand.Bias, gbe, true)
	}
	if blk.skip != nil {
		addBN("rbr_skip", blk.skip)
	}
	for i, br := range blk.branches {
		q := fmt.Sprintf("rbr_conv.%d", i)
		if br.padded || (b.Scale != nil && br.conv == b.Scale.Conv) {
			q = "rbr_scale"
		}
		add(q+".conv.weight", br.conv.Weight, br.gW, false)
		addBN(q+".bn", br.bn)
	}
}

// Model returns the wrapped model.
func (n *Net) Model() *model.Model { return n.m }

// Params lists the learnable tensors in the authors' state_dict order.
func (n *Net) Params() []Param { return n.params }

// ZeroGrad sets every gradient to zero.
func (n *Net) ZeroGrad() {
	for _, p := range n.params {
		clear(p.G.Data)
	}
}

// checkInput panics unless x is (N, InChannels, H, W) with N·H·W > 0.
func (n *Net) checkInput(x *tensor.Tensor) {
	cfg := n.m.Config
	if x == nil || len(x.Shape) != 4 || x.Shape[1] != cfg.InChannels || x.Numel() != len(x.Data) || x.Numel() == 0 {
		panic(fmt.Sprintf("train: input must be (N, %d, H, W), got %v", cfg.InChannels, x))
	}
}

// features runs the blocks on x (checked by the caller) and returns the
// last block's output, owned by it (valid until the next forward).
func (n *Net) features(x *tensor.Tensor, training bool) *act {
	nb, c, h, w := x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3]
	n.trained, n.n = training, nb
	n.xin = act{C: c, N: nb, H: h, W: w, Data: grow(n.xin.Data, x.Numel())}
	// (N, C·H·W) → (C·H·W, N).
	transpose(x.Data, nb, c*h*w, n.xin.Data)
	a := &n.xin
	blocks := n.blocks
	n.chained = training && n.chainable()
	if n.chained {
		a, blocks = n.chainForward(a), blocks[2:]
	}
	for _, blk := range blocks {
		a = blk.forward(a, training)
	}
	n.feat = a
	return a
}

// backwardFeatures runs the blocks' backward passes given d, the gradient
// of the last block's output (overwritten).
func (n *Net) backwardFeatures(d []float32) { n.backwardFeaturesTap(d, -1, nil) }

// backwardFeaturesTap is backwardFeatures also adding extra, the gradient
// of a feature tapped at the input of block at (at > 1; -1: none), to the
// gradient that reaches it.
func (n *Net) backwardFeaturesTap(d []float32, at int, extra []float32) {
	for i := len(n.blocks) - 1; i >= 0; i-- {
		if n.chained && i == 1 {
			n.chainBackward(d)
			break
		}
		d = n.blocks[i].backward(d)
		if i == at {
			kernel.Add(extra, d)
		}
	}
}

// Forward maps images x (N, C, H, W) to logits (N, classes) (pooled
// features (N, C) for a model without classifier). In training mode the
// BatchNorms use batch statistics and update their running statistics
// (momentum 0.1, unbiased variance, num_batches_tracked + 1) as PyTorch
// does, and the activations are kept for Backward; otherwise they use the
// running statistics. Forward panics on an input of the wrong shape, and
// in training mode on a batch with a single value per BatchNorm channel.
func (n *Net) Forward(x *tensor.Tensor, training bool) *tensor.Tensor {
	n.checkInput(x)
	a := n.features(x, training)
	nb := a.N
	fhw := a.H * a.W
	n.pooled = grow(n.pooled, a.C*nb)
	inv := 1 / float32(fhw)
	for ch := 0; ch < a.C; ch++ {
		p := n.pooled[ch*nb : (ch+1)*nb]
		plane := a.Data[ch*fhw*nb : (ch+1)*fhw*nb]
		copy(p, plane[:nb])
		for i := 1; i < fhw; i++ {
			kernel.Add(plane[i*nb:(i+1)*nb], p)
		}
		kernel.Scale(inv, p, p)
	}
	lin := n.m.Linear
	if lin == nil {
		out := tensor.New(nb, a.C)
		transpose(n.pooled, a.C, nb, out.Data)
		return out
	}
	n.lt = grow(n.lt, lin.Out*nb)
	kernel.Gemm(lin.Out, nb, lin.In, lin.Weight.Data, n.pooled, n.lt, false)
	out := tensor.New(nb, lin.Out)
	for o := 0; o < lin.Out; o++ {
		bv := lin.Bias.Data[o]
		for b := 0; b < nb; b++ {
			out.Data[b*lin.Out+o] = n.lt[o*nb+b] + bv
		}
	}
	return out
}

// Backward accumulates the gradients of every parameter given the gradient
// of the loss with respect to the logits of the last Forward, which must
// have been in training mode.
func (n *Net) Backward(dlogits *tensor.Tensor) {
	if !n.trained || n.feat == nil {
		panic("train: Backward needs a preceding Forward in training mode")
	}
	nb, a := n.n, n.feat
	lin := n.m.Linear
	n.dpool = grow(n.dpool, a.C*nb)
	if lin == nil {
		if dlogits.Numel() != nb*a.C {
			panic(fmt.Sprintf("train: Backward: gradient %v, want (%d, %d)", dlogits, nb, a.C))
		}
		transpose(dlogits.Data, nb, a.C, n.dpool)
	} else {
		if dlogits.Numel() != nb*lin.Out {
			panic(fmt.Sprintf("train: Backward: gradient %v, want (%d, %d)", dlogits, nb, lin.Out))
		}
		n.dlt = grow(n.dlt, lin.Out*nb)
		transpose(dlogits.Data, nb, lin.Out, n.dlt)
		for o := 0; o < lin.Out; o++ {
			var s float32
			for _, v := range n.dlt[o*nb : (o+1)*nb] {
				s += v
			}
			n.linGB.Data[o] += s
		}
		n.pooledT = grow(n.pooledT, nb*a.C)
		transpose(n.pooled, a.C, nb, n.pooledT)
		kernel.Gemm(lin.Out, lin.In, nb, n.dlt, n.pooledT, n.linGW.Data, true)
		n.wT = grow(n.wT, lin.In*lin.Out)
		transpose(lin.Weight.Data, lin.Out, lin.In, n.wT)
		kernel.Gemm(lin.In, nb, lin.Out, n.wT, n.dlt, n.dpool, false)
	}
	fhw := a.H * a.W
	n.dfeat = grow(n.dfeat, len(a.Data))
	inv := 1 / float32(fhw)
	for ch := 0; ch < a.C; ch++ {
		g := n.dpool[ch*nb : (ch+1)*nb]
		plane := n.dfeat[ch*fhw*nb : (ch+1)*fhw*nb]
		kernel.Scale(inv, g, plane[:nb])
		for i := 1; i < fhw; i++ {
			copy(plane[i*nb:(i+1)*nb], plane[:nb])
		}
	}
	n.backwardFeatures(n.dfeat)
}

// forward runs the block on x; the returned activation is owned by the
// block and valid until its next forward.
func (b *block) forward(x *act, training bool) *act {
	b.x, b.training = x, training
	op := b.op
	oh, ow := op.outSize(x.H, x.W)
	mo := x.N * oh * ow
	if training && (mo < 2 || x.M() < 2) {
		panic(fmt.Sprintf("train: block %s: BatchNorm in training mode needs more than one value per channel (batch %d, %dx%d)",
			b.name, x.N, oh, ow))
	}
	b.folded = training && b.foldable() && foldPays(len(b.branches), op.Cin, b.outC, mo)
	if b.folded {
		return b.forwardFolded(x)
	}
	b.stackWeights()
	// Training always takes the fused sweep (a skip BatchNorm exists only
	// where the block keeps the input's size, so its rows are as long as
	// the branches'); the backward pass relies on it: it recomputes x̂ from
	// the unnormalised rows and the mean and 1/std the sweep saved.
	sweep := training
	planes := sweep && b.dwPlanes()
	b.planed = planes
	if !planes {
		b.z = grow(b.z, op.Cout*mo)
		op.forward(x, b.wst, b.z, &b.ws)
	}
	per := b.outC * mo
	if sweep {
		// One fused sweep: all BatchNorms, their sum and (without SE) the ReLU.
		b.sum = grow(b.sum, per)
		b.scratch = bnScratch(b.scratch)
		if planes {
			// Channel by channel: the branches' planes, then their
			// BatchNorms while the planes are still in cache. The planes
			// are not kept: the backward pass recomputes them (9
			// multiply-adds per value) rather than reading them back from
			// memory.
			nb := len(b.branches)
			b.planes = grow(b.planes, kernel.Threads()*nb*mo)
			np, sf := b.planeBranches()
			pop := b.planeOp(np)
			parForW(b.outC, (9*op.Cout+3*(nb+1)*b.outC)*mo, func(wk, lo, hi int) {
				zc := b.planes[wk*nb*mo : (wk+1)*nb*mo]
				var insa [8]bnSrc
				ins := b.planeIns(insa[:0], x, zc, mo, np, sf)
				for ch := lo; ch < hi; ch++ {
					pop.dwForwardPlane(x, b.wst, zc, ch, true)
					bnSumChannel(ins, ch, mo, b.sum[ch*mo:(ch+1)*mo], b.se == nil, workerScratch(b.scratch, wk))
				}
			})
		} else {
			ins := b.bnIns[:0]
			for i, br := range b.branches {
				ins = append(ins, bnSrc{bn: br.bn, src: b.z[i*per : (i+1)*per]})
			}
			if b.skip != nil {
				ins = append(ins, bnSrc{bn: b.skip, src: x.Data})
			}
			b.bnIns = ins
			bnTrainForwardSum(ins, b.outC, mo, b.sum, b.se == nil, b.scratch)
		}
		for _, br := range b.branches {
			br.bn.bn.NumBatchesTracked++
		}
		if b.skip != nil {
			b.skip.bn.NumBatchesTracked++
		}
		out := b.sum
		if b.se != nil {
			b.outBuf = grow(b.outBuf, per)
			b.se.forward(b.sum, x.N, oh*ow, b.outBuf)
			out = b.outBuf
			reluInPlace(out)
		}
		b.out = act{C: b.outC, N: x.N, H: oh, W: ow, Data: out}
		return &b.out
	}
	// Evaluation mode: running statistics.
	b.sum = growZero(b.sum, per)
	for i, br := range b.branches {
		bnEvalForward(br.bn.params(), b.z[i*per:(i+1)*per], mo, b.sum)
	}
	if b.skip != nil {
		bnEvalForward(b.skip.params(), x.Data, x.M(), b.sum)
	}
	out := b.sum
	if b.se != nil {
		b.outBuf = grow(b.outBuf, per)
		b.se.forward(b.sum, x.N, oh*ow, b.outBuf)
		out = b.outBuf
	}
	reluInPlace(out)
	b.out = act{C: b.outC, N: x.N, H: oh, W: ow, Data: out}
	return &b.out
}

// planeIns lists the block's BatchNorms for the channel-by-channel forward
// pass: the branches' rows in zc (one channel's planes of m values, branch
// by branch), the skip's in x.
func (b *block) planeIns(ins []bnSrc, x *act, zc []float32, m, nb int, sf *scaleFold) []bnSrc {
	for i, br := range b.branches[:nb] {
		ins = append(ins, bnSrc{bn: br.bn, src: zc[i*m : (i+1)*m], own: true})
	}
	if b.skip != nil {
		ins = append(ins, bnSrc{bn: b.skip, src: x.Data, scale: sf})
	}
	return ins
}

// scaleFoldOff turns the folding of a depthwise block's 1×1 scale branch
// into its skip BatchNorm off (tests compare the two).
var scaleFoldOff bool

// planeBranches is how many of the block's branches the channel-by-channel
// passes compute planes for, and the fold of the scale branch if they fold
// it (nil if not). A stride-1 depthwise block with a skip folds its 1×1
// scale branch: that branch is w·x per channel, so its batch statistics
// follow from the input's (mean w·μ, variance w²·v) and its normalised
// output is the skip's x̂ times r = w·s1/s2 (s1, s2 the two 1/std): the
// skip's pass handles both, and the scale branch's plane is never formed
// (see scaleFold). The fold is the block's own (b.sfold): call it once
// per pass, before the parallel loop.
func (b *block) planeBranches() (int, *scaleFold) {
	nb := len(b.branches)
	if scaleFoldOff || !b.op.DW || b.skip == nil || b.first || nb < 2 || !b.branches[nb-1].padded {
		return nb, nil
	}
	kk := b.op.K * b.op.K
	o := (nb - 1) * b.outC * kk
	b.sfold = scaleFold{bn: b.branches[nb-1].bn, w: b.wst[o : o+b.outC*kk], kk: kk, ctr: kk / 2,
		dw: b.dwst[min(o, len(b.dwst)):min(o+b.outC*kk, len(b.dwst))]}
	return nb - 1, &b.sfold
}

// planeOp is the stacked convolution the channel-by-channel passes run over
// the first nb branches (without a folded scale branch, the last one).
func (b *block) planeOp(nb int) convOp {
	op := b.op
	if nb < len(b.branches) {
		op.Cout = nb * b.outC
		op.CenterOnly = op.CenterOnly[:nb]
	}
	return op
}

// planeGrads is planeIns for the backward pass: each branch's gradient
// replaces its plane in zc; the skip's goes to gx (no skip gradient for the
// stem, gx nil).
func (b *block) planeGrads(gs []bnGrad, x *act, zc, gx []float32, m, nb int, sf *scaleFold) []bnGrad {
	for i, br := range b.branches[:nb] {
		z := zc[i*m : (i+1)*m]
		gs = append(gs, bnGrad{bn: br.bn, src: z, dz: z, own: true})
	}
	if b.skip != nil && gx != nil {
		gs = append(gs, bnGrad{bn: b.skip, src: x.Data, dz: gx, scale: sf})
	}
	return gs
}

// planesOff turns the channel-by-channel passes of a grey stem off (the
// im2col GEMM instead), for tests that compare the two.
var planesOff bool

// dwPlanes reports whether the block is a 3×3 stride-1 depthwise one, or
// a 3×3 stride-1 stem on a single input channel (grey images), whose
// training passes run channel by channel, each channel's convolution planes
// next to its BatchNorms (dwForwardPlane + bnSumChannel, bnBackChannel +
// dwBackwardPlane), instead of one pass over the whole tensor for each
// (and, for the stem, instead of an im2col GEMM with 9-long dot products).
func (b *block) dwPlanes() bool {
	if !b.op.rows3() {
		return false
	}
	return (b.op.DW && b.op.Cin == b.outC) || (!b.op.DW && b.op.Cin == 1 && b.first && !planesOff)
}

// stackWeights copies the branch kernels into one (branches·OutC, Cin/g·K·K)
// matrix, zero-padding the 1×1 scale kernel to K×K.
func (b *block) stackWeights() {
	op := b.op
	cinG := op.Cin
	if op.DW {
		cinG = 1
	}
	kk := op.K * op.K
	rowLen := cinG * kk
	per := b.outC * rowLen
	b.wst = grow(b.wst, op.Cout*rowLen)
	ctr := (op.K/2)*op.K + op.K/2
	for i, br := range b.branches {
		dst := b.wst[i*per : (i+1)*per]
		if !br.padded {
			if w := br.conv.Weight.Data; len(w) > 0 && &w[0] == &dst[0] {
				continue // the branch's weights live in the stack (aliasWeights)
			}
			copy(dst, br.conv.Weight.Data)
			continue
		}
		clear(dst)
		for o := 0; o < b.outC; o++ {
			for ci := 0; ci < cinG; ci++ {
				dst[o*rowLen+ci*kk+ctr] = br.conv.Weight.Data[o*cinG+ci]
			}
		}
	}
}

// aliasWeights makes the stacked weight matrix the storage of the
// branches' own weight tensors (those not zero-padded), so that stacking
// them before every forward pass copies nothing. Anything that later gives
// a tensor new storage (loading a checkpoint by replacing slices) only
// brings the copy back.
func (b *block) aliasWeights() {
	b.stackWeights()
	per := len(b.wst) / len(b.branches)
	for i, br := range b.branches {
		if !br.padded {
			br.conv.Weight.Data = b.wst[i*per : (i+1)*per : (i+1)*per]
		}
	}
}

// backward takes the gradient of the block's output (overwritten) and
// returns the gradient of its input (owned by the block; nil for the stem).
func (b *block) backward(d []float32) []float32 {
	if !b.training {
		panic("train: Backward after an evaluation-mode Forward")
	}
	if b.folded {
		return b.backwardFolded(d)
	}
	x, op := b.x, b.op
	mo := b.out.M()
	per := b.outC * mo
	y := b.out.Data // the ReLU mask is applied by bnBackwardSum
	if b.se != nil {
		reluBackward(b.out.Data, d)
		b.se.backward(b.sum, d, x.N, b.out.H*b.out.W)
		y = nil
	}
	var gx []float32
	if !b.first {
		b.gx = grow(b.gx, len(x.Data))
		gx = b.gx
	}
	// Without a skip BatchNorm nothing else writes gx: the convolution's
	// backward writes it (a depthwise one clears each channel's plane
	// first, on its worker) rather than adds to it.
	clearGx := b.skip == nil && gx != nil
	b.dwst = grow(b.dwst, len(b.wst))
	b.scratch = bnScratch(b.scratch)
	if b.planed {
		// Channel by channel: the branches' planes again (the forward
		// pass did not keep them), the BatchNorms' backward, then the
		// convolutions' backward while the gradients are still in cache.
		nb := len(b.branches)
		np, sf := b.planeBranches()
		pop := b.planeOp(np)
		parForW(b.outC, (3*(nb+1)*b.outC+27*op.Cout)*mo, func(wk, lo, hi int) {
			zc := b.planes[wk*nb*mo : (wk+1)*nb*mo]
			var gsa [8]bnGrad
			gs := b.planeGrads(gsa[:0], x, zc, gx, mo, np, sf)
			for ch := lo; ch < hi; ch++ {
				pop.dwForwardPlane(x, b.wst, zc, ch, true)
				bnBackChannel(gs, ch, mo, d[ch*mo:(ch+1)*mo], chanRow(y, ch, mo), workerScratch(b.scratch, wk))
				pop.dwBackwardPlane(x, b.wst, zc, b.dwst, gx, ch, true, clearGx)
			}
		})
	} else {
		gs := b.bnGrads[:0]
		for i, br := range b.branches {
			z := b.z[i*per : (i+1)*per]
			gs = append(gs, bnGrad{bn: br.bn, src: z, dz: z})
		}
		if b.skip != nil && gx != nil {
			gs = append(gs, bnGrad{bn: b.skip, src: x.Data, dz: gx})
		}
		b.bnGrads = gs
		bnBackwardSum(gs, b.outC, mo, d, y, b.scratch)
		op.backwardTo(x, b.wst, b.z, b.dwst, gx, &b.ws, clearGx)
	}
	b.scatterGrads()
	return gx
}

// scatterGrads adds the stacked weight gradient (dwst) to the branches'
// gradients.
func (b *block) scatterGrads() {
	op := b.op
	cinG := op.Cin
	if op.DW {
		cinG = 1
	}
	kk := op.K * op.K
	rowLen := cinG * kk
	wper := b.outC * rowLen
	ctr := (op.K/2)*op.K + op.K/2
	for i, br := range b.branches {
		src := b.dwst[i*wper : (i+1)*wper]
		g := br.gW.Data
		if !br.padded {
			for j, v := range src {
				g[j] += v
			}
			continue
		}
		for o := 0; o < b.outC; o++ {
			for ci := 0; ci < cinG; ci++ {
				g[o*cinG+ci] += src[o*rowLen+ci*kk+ctr]
			}
		}
	}
}
