package nn

import (
	"github.com/mobileone-go/mobileone/tensor"
)

// Block is a MobileOne block. At train time it holds k conv+BN branches, a
// 1×1 scale branch (only when K > 1) and a BatchNorm-only skip branch (only
// when InC == OutC and Stride == 1); after re-parameterisation it holds one
// convolution with bias (Reparam) and no branches. Either way its output is
// ReLU(SE(sum of branches)), SE only when the block has one.
type Block struct {
	InC, OutC, K, Stride, Pad, Groups int

	Convs []*ConvBN  // k branches (train-time)
	Scale *ConvBN    // 1×1 branch, K > 1 only (train-time)
	Skip  *BatchNorm // identity branch (train-time)
	Fused *Conv2d    // the single re-parameterised conv (inference)
	SE    *SE        // optional
}

// BlockSpec describes a block's shape.
type BlockSpec struct {
	InC, OutC, K, Stride, Groups int
	Branches                     int  // k conv branches
	SE                           bool // Squeeze-Excite before the ReLU
}

// HasScale reports whether a block of this spec has a 1×1 scale branch.
func (s BlockSpec) HasScale() bool { return s.K > 1 }

// HasSkip reports whether a block of this spec has a BatchNorm skip branch.
func (s BlockSpec) HasSkip() bool { return s.InC == s.OutC && s.Stride == 1 }

// NewBlock returns a block with PyTorch-default BatchNorms and zero weights;
// fused selects the inference form (one conv with bias).
func NewBlock(s BlockSpec, fused bool) *Block {
	b := &Block{InC: s.InC, OutC: s.OutC, K: s.K, Stride: s.Stride, Pad: s.K / 2, Groups: s.Groups}
	if fused {
		b.Fused = NewConv2d(s.InC, s.OutC, s.K, s.Stride, s.K/2, s.Groups, true)
	} else {
		for i := 0; i < s.Branches; i++ {
			b.Convs = append(b.Convs, &ConvBN{NewConv2d(s.InC, s.OutC, s.K, s.Stride, s.K/2, s.Groups, false), NewBatchNorm(s.OutC)})
		}
		if s.HasScale() {
			b.Scale = &ConvBN{NewConv2d(s.InC, s.OutC, 1, s.Stride, 0, s.Groups, false), NewBatchNorm(s.OutC)}
		}
		if s.HasSkip() {
			b.Skip = NewBatchNorm(s.InC)
		}
	}
	if s.SE {
		b.SE = NewSE(s.OutC)
	}
	return b
}

// IsFused reports whether the block is in its inference form.
func (b *Block) IsFused() bool { return b.Fused != nil }

// OutSize returns the output spatial size for an input of h×w.
func (b *Block) OutSize(h, w int) (int, int) {
	return (h+2*b.Pad-b.K)/b.Stride + 1, (w+2*b.Pad-b.K)/b.Stride + 1
}

// Forward computes the block on x: (N, InC, H, W) in evaluation mode.
func (b *Block) Forward(x *tensor.Tensor) *tensor.Tensor {
	if b.Fused != nil {
		if b.SE == nil {
			return b.Fused.Forward(x, true)
		}
		out := b.Fused.Forward(x, false)
		b.SE.ForwardInPlace(out)
		ReLUInPlace(out)
		return out
	}
	n := x.Shape[0]
	oh, ow := b.OutSize(x.Shape[2], x.Shape[3])
	out := tensor.New(n, b.OutC, oh, ow)
	if b.Skip != nil {
		b.Skip.AddForward(x, out)
	}
	if b.Scale != nil {
		b.Scale.BN.AddForward(b.Scale.Conv.Forward(x, false), out)
	}
	for _, cb := range b.Convs {
		cb.BN.AddForward(cb.Conv.Forward(x, false), out)
	}
	if b.SE != nil {
		b.SE.ForwardInPlace(out)
	}
	ReLUInPlace(out)
	return out
}

// Reparameterize returns the single convolution (with bias) that computes
// the sum of the block's branches exactly, in evaluation mode:
//
//   - each conv+BN branch folds to W·t, beta − mean·t with t = gamma/sqrt(var+eps);
//   - the 1×1 scale branch folds the same way and is zero-padded to K×K;
//   - the skip BN folds the identity kernel I[i, i mod (InC/Groups), K/2, K/2] = 1;
//   - the fused kernel and bias are the sums.
//
// The arithmetic is done in float64. A fused block returns a copy of its conv.
func Reparameterize(b *Block) *Conv2d {
	out := NewConv2d(b.InC, b.OutC, b.K, b.Stride, b.Pad, b.Groups, true)
	if b.Fused != nil {
		copy(out.Weight.Data, b.Fused.Weight.Data)
		copy(out.Bias.Data, b.Fused.Bias.Data)
		return out
	}
	cinG := b.InC / b.Groups
	kk := b.K * b.K
	w := make([]float64, out.Weight.Numel())
	bias := make([]float64, b.OutC)
	for _, cb := range b.Convs {
		fw, fb := cb.Fold()
		for i := range w {
			w[i] += fw[i]
		}
		for i := range bias {
			bias[i] += fb[i]
		}
	}
	c := b.K / 2
	if b.Scale != nil {
		fw, fb := b.Scale.Fold() // (OutC, cinG, 1, 1)
		for o := 0; o < b.OutC; o++ {
			for ci := 0; ci < cinG; ci++ {
				w[(o*cinG+ci)*kk+c*b.K+c] += fw[o*cinG+ci]
			}
			bias[o] += fb[o]
		}
	}
	if b.Skip != nil {
		t, sh := b.Skip.ScaleShift()
		for o := 0; o < b.OutC; o++ {
			w[(o*cinG+o%cinG)*kk+c*b.K+c] += t[o]
			bias[o] += sh[o]
		}
	}
	for i, v := range w {
		out.Weight.Data[i] = float32(v)
	}
	for i, v := range bias {
		out.Bias.Data[i] = float32(v)
	}
	return out
}

// Fuse returns the block's inference form: the re-parameterised conv and a
// copy of its SE unit. The receiver is not modified.
func (b *Block) Fuse() *Block {
	f := &Block{InC: b.InC, OutC: b.OutC, K: b.K, Stride: b.Stride, Pad: b.Pad, Groups: b.Groups, Fused: Reparameterize(b)}
	if b.SE != nil {
		f.SE = &SE{C: b.SE.C, Hidden: b.SE.Hidden, Reduce: cloneConv(b.SE.Reduce), Expand: cloneConv(b.SE.Expand)}
	}
	return f
}

func cloneConv(c *Conv2d) *Conv2d {
	d := *c
	d.Weight = c.Weight.Clone()
	if c.Bias != nil {
		d.Bias = c.Bias.Clone()
	}
	return &d
}

// Params returns the number of learnable values (conv and linear weights and
// biases, BatchNorm weight and bias; not running statistics).
func (b *Block) Params() int {
	n := 0
	if b.Fused != nil {
		n += b.Fused.Weight.Numel() + b.Fused.Bias.Numel()
	}
	for _, cb := range b.Convs {
		n += cb.Conv.Weight.Numel() + 2*cb.BN.C
	}
	if b.Scale != nil {
		n += b.Scale.Conv.Weight.Numel() + 2*b.Scale.BN.C
	}
	if b.Skip != nil {
		n += 2 * b.Skip.C
	}
	if b.SE != nil {
		n += b.SE.Reduce.Weight.Numel() + b.SE.Reduce.Bias.Numel() + b.SE.Expand.Weight.Numel() + b.SE.Expand.Bias.Numel()
	}
	return n
}
