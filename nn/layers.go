// Package nn holds the layers of MobileOne as small structs with weights and
// a Forward method, and re-parameterisation as pure functions on weights.
//
// All activations are (N, C, H, W) tensors. Layers compute BatchNorm in
// evaluation mode (running statistics); training lives elsewhere.
package nn

import (
	"math"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/tensor"
)

// Conv2d is a 2-D convolution with a square kernel.
//
//	Weight: (OutC, InC/Groups, K, K)
//	Bias:   (OutC) or nil
type Conv2d struct {
	InC, OutC, K, Stride, Pad, Groups int
	Weight                            *tensor.Tensor
	Bias                              *tensor.Tensor
}

// NewConv2d returns a zero-initialised convolution.
func NewConv2d(inC, outC, k, stride, pad, groups int, bias bool) *Conv2d {
	c := &Conv2d{InC: inC, OutC: outC, K: k, Stride: stride, Pad: pad, Groups: groups,
		Weight: tensor.New(outC, inC/groups, k, k)}
	if bias {
		c.Bias = tensor.New(outC)
	}
	return c
}

// OutSize returns the output spatial size for an input of h×w.
func (c *Conv2d) OutSize(h, w int) (int, int) {
	return (h+2*c.Pad-c.K)/c.Stride + 1, (w+2*c.Pad-c.K)/c.Stride + 1
}

// Forward computes the convolution (and ReLU if relu) of x: (N, InC, H, W).
func (c *Conv2d) Forward(x *tensor.Tensor, relu bool) *tensor.Tensor {
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	oh, ow := c.OutSize(h, w)
	out := tensor.New(n, c.OutC, oh, ow)
	p := kernel.Conv{InC: c.InC, InH: h, InW: w, OutC: c.OutC, K: c.K, Stride: c.Stride, Pad: c.Pad, Groups: c.Groups}
	var bias []float32
	if c.Bias != nil {
		bias = c.Bias.Data
	}
	in, o := c.InC*h*w, c.OutC*oh*ow
	for i := 0; i < n; i++ {
		kernel.Conv2D(p, x.Data[i*in:(i+1)*in], c.Weight.Data, bias, out.Data[i*o:(i+1)*o], relu)
	}
	return out
}

// MACs returns the multiply-accumulates of one image at input size h×w.
func (c *Conv2d) MACs(h, w int) int {
	oh, ow := c.OutSize(h, w)
	return c.OutC * oh * ow * (c.InC / c.Groups) * c.K * c.K
}

// BNEps is BatchNorm's epsilon (PyTorch's default).
const BNEps = 1e-5

// BatchNorm is a 2-D batch normalisation over C channels.
type BatchNorm struct {
	C                       int
	Weight, Bias            *tensor.Tensor // gamma, beta: (C)
	RunningMean, RunningVar *tensor.Tensor // (C)
	NumBatchesTracked       float32
	Eps                     float64
}

// NewBatchNorm returns a BatchNorm with PyTorch's initial state
// (gamma 1, beta 0, mean 0, var 1).
func NewBatchNorm(c int) *BatchNorm {
	bn := &BatchNorm{C: c, Weight: tensor.New(c), Bias: tensor.New(c),
		RunningMean: tensor.New(c), RunningVar: tensor.New(c), Eps: BNEps}
	for i := 0; i < c; i++ {
		bn.Weight.Data[i] = 1
		bn.RunningVar.Data[i] = 1
	}
	return bn
}

// ScaleShift returns the per-channel affine map t, b of the evaluation-mode
// BatchNorm, y = x*t + b, in float64: t = gamma/sqrt(var+eps), b = beta - mean*t.
func (bn *BatchNorm) ScaleShift() (t, b []float64) {
	t = make([]float64, bn.C)
	b = make([]float64, bn.C)
	for i := 0; i < bn.C; i++ {
		t[i] = float64(bn.Weight.Data[i]) / math.Sqrt(float64(bn.RunningVar.Data[i])+bn.Eps)
		b[i] = float64(bn.Bias.Data[i]) - float64(bn.RunningMean.Data[i])*t[i]
	}
	return t, b
}

// AddForward adds BN(x) (evaluation mode) to acc; both (N, C, H, W).
func (bn *BatchNorm) AddForward(x, acc *tensor.Tensor) {
	t, b := bn.ScaleShift()
	n, c := x.Shape[0], x.Shape[1]
	hw := x.Shape[2] * x.Shape[3]
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			off := (i*c + ch) * hw
			xs, as := x.Data[off:off+hw], acc.Data[off:off+hw]
			tt, bb := float32(t[ch]), float32(b[ch])
			for j := range xs {
				as[j] += xs[j]*tt + bb
			}
		}
	}
}

// ConvBN is a convolution without bias followed by BatchNorm.
type ConvBN struct {
	Conv *Conv2d
	BN   *BatchNorm
}

// Fold returns the convolution weight and bias that equal Conv→BN in
// evaluation mode: W' = W·t per output channel, b' = beta − mean·t.
func (cb *ConvBN) Fold() (w []float64, b []float64) {
	t, sh := cb.BN.ScaleShift()
	per := cb.Conv.Weight.Numel() / cb.Conv.OutC
	w = make([]float64, cb.Conv.Weight.Numel())
	for o := 0; o < cb.Conv.OutC; o++ {
		for j := 0; j < per; j++ {
			w[o*per+j] = float64(cb.Conv.Weight.Data[o*per+j]) * t[o]
		}
	}
	return w, sh
}

// SE is the Squeeze-Excite unit: x * sigmoid(W2·relu(W1·mean_hw(x) + b1) + b2).
//
//	Reduce: 1×1 conv C → Hidden with bias
//	Expand: 1×1 conv Hidden → C with bias
type SE struct {
	C, Hidden      int
	Reduce, Expand *Conv2d
}

// SEHidden returns the SE hidden width for C channels: int(C * 0.0625).
func SEHidden(c int) int { return int(float64(c) * 0.0625) }

// NewSE returns a zero-initialised SE unit for C channels.
func NewSE(c int) *SE {
	h := SEHidden(c)
	return &SE{C: c, Hidden: h, Reduce: NewConv2d(c, h, 1, 1, 0, 1, true), Expand: NewConv2d(h, c, 1, 1, 0, 1, true)}
}

// ForwardInPlace rescales x: (N, C, H, W) channel-wise in place.
func (s *SE) ForwardInPlace(x *tensor.Tensor) {
	n, c := x.Shape[0], x.Shape[1]
	hw := x.Shape[2] * x.Shape[3]
	mean := make([]float32, c)
	hid := make([]float32, s.Hidden)
	gate := make([]float32, c)
	for i := 0; i < n; i++ {
		kernel.GlobalAvgPool(c, hw, x.Data[i*c*hw:(i+1)*c*hw], mean)
		kernel.Linear(c, s.Hidden, mean, s.Reduce.Weight.Data, s.Reduce.Bias.Data, hid)
		for j, v := range hid {
			if v < 0 {
				hid[j] = 0
			}
		}
		kernel.Linear(s.Hidden, c, hid, s.Expand.Weight.Data, s.Expand.Bias.Data, gate)
		for ch := 0; ch < c; ch++ {
			g := float32(1 / (1 + math.Exp(-float64(gate[ch]))))
			xs := x.Data[(i*c+ch)*hw : (i*c+ch+1)*hw]
			for j := range xs {
				xs[j] *= g
			}
		}
	}
}

// MACs returns the SE's multiply-accumulates (two 1×1 convs on a 1×1 map).
func (s *SE) MACs() int { return 2 * s.C * s.Hidden }

// Linear is a fully connected layer. Weight: (Out, In), Bias: (Out).
type Linear struct {
	In, Out      int
	Weight, Bias *tensor.Tensor
}

// NewLinear returns a zero-initialised linear layer.
func NewLinear(in, out int) *Linear {
	return &Linear{In: in, Out: out, Weight: tensor.New(out, in), Bias: tensor.New(out)}
}

// Forward maps x: (N, In) to (N, Out).
func (l *Linear) Forward(x *tensor.Tensor) *tensor.Tensor {
	n := x.Shape[0]
	out := tensor.New(n, l.Out)
	for i := 0; i < n; i++ {
		kernel.Linear(l.In, l.Out, x.Data[i*l.In:(i+1)*l.In], l.Weight.Data, l.Bias.Data, out.Data[i*l.Out:(i+1)*l.Out])
	}
	return out
}

// GlobalAvgPool maps x: (N, C, H, W) to (N, C).
func GlobalAvgPool(x *tensor.Tensor) *tensor.Tensor {
	n, c := x.Shape[0], x.Shape[1]
	hw := x.Shape[2] * x.Shape[3]
	out := tensor.New(n, c)
	kernel.GlobalAvgPool(n*c, hw, x.Data, out.Data)
	return out
}

// ReLUInPlace clamps negative values of x to zero.
func ReLUInPlace(x *tensor.Tensor) {
	for i, v := range x.Data {
		if v < 0 {
			x.Data[i] = 0
		}
	}
}
