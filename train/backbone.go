package train

import (
	"fmt"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// A MobileOne as a dense-prediction backbone (DeepLabV3): the blocks up to
// stage 4, no pooling or classifier, with the last stages dilated instead
// of strided so that the feature map stays finer, as torchvision's
// replace_stride_with_dilation does for ResNets (_make_layer with
// dilate=True):
//
//   - a dilated stage's first block (its stride-2 3×3 depthwise block)
//     gets stride 1 and keeps the dilation the network had before the
//     stage ("previous_dilation": 1 for the first dilated stage);
//   - the network's dilation is doubled, and every later 3×3 block of the
//     stage (and of the following stages, until doubled again) uses it;
//   - every 3×3 convolution is padded by its dilation (K/2·D), so stride-1
//     blocks keep their size; 1×1 blocks are unchanged.
//
// With the stem's stride 2 (every MobileOne variant), output stride 32 is
// the classifier's geometry; 16 dilates stage 4 (stage4.0: stride 1,
// dilation 1; stage4.2, 4, …: dilation 2); 8 dilates stages 3 and 4
// (stage3.0: stride 1, dilation 1; stage3.2, 4, …: dilation 2; stage4.0:
// stride 1, dilation 2; stage4.2, 4, …: dilation 4). A stem of stride 1
// halves every feature stride (the option still names the stages dilated).
//
// The blocks keep their structure and key names: the first block of a
// dilated stage has no skip BatchNorm (it had stride 2; the authors'
// checkpoints have none), exactly as torchvision keeps a ResNet's
// downsample branch. A dilated 3×3 block re-parameterises as an undilated
// one (the 1×1 scale and identity kernels sit at the centre tap, which
// reads the same input pixel at any dilation), so the fused weights are the
// classifier's and only the inference graph's strides and dilations change
// (see DenseGeometry).

// BlockGeometry is the stride, dilation and padding of one block's
// convolutions (every branch of the block).
type BlockGeometry struct {
	Name                  string // authors' block name: stage0, stage1.0, …
	Stride, Dilation, Pad int
}

// DenseGeometry lists every block's geometry in a backbone of output
// stride outputStride: 32 (none dilated), 16 (stage 4 dilated) or 8
// (stages 3 and 4), for a stem of stride 2 (see the package comment on
// dense backbones above).
func DenseGeometry(cfg model.Config, outputStride int) ([]BlockGeometry, error) {
	stride, dilation, err := cfg.DenseStrides(outputStride) // the rule the inference graph uses too
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	names, specs := cfg.Specs()
	geo := make([]BlockGeometry, len(names))
	for i, sp := range specs {
		geo[i] = BlockGeometry{Name: names[i], Stride: stride[i], Dilation: dilation[i], Pad: sp.K / 2 * dilation[i]}
	}
	return geo, nil
}

// SetOutputStride gives the net's blocks the geometry DenseGeometry lists
// for outputStride (32 restores the classifier's). Use it on a backbone
// (a model without classifier) for ForwardFeatures.
func (n *Net) SetOutputStride(outputStride int) error {
	geo, err := DenseGeometry(n.m.Config, outputStride)
	if err != nil {
		return err
	}
	if len(geo) != len(n.blocks) {
		return fmt.Errorf("train: %d blocks, geometry for %d", len(n.blocks), len(geo))
	}
	for i, g := range geo {
		b := n.blocks[i]
		b.op.S, b.op.D, b.op.P = g.Stride, g.Dilation, g.Pad
		b.ws = convWork{} // the span tables depend on the geometry
	}
	n.geometry = geo
	return nil
}

// Geometry returns the blocks' geometry (nil if SetOutputStride was never
// called: the classifier's).
func (n *Net) Geometry() []BlockGeometry { return n.geometry }

// ForwardFeatures maps images x (N, C, H, W) to the last block's output
// (N, C4, H/s, W/s) (s the output stride), with BatchNorm as in Forward
// (training mode keeps the activations for BackwardFeatures).
func (n *Net) ForwardFeatures(x *tensor.Tensor, training bool) *tensor.Tensor {
	n.checkInput(x)
	a := n.features(x, training)
	out := tensor.New(a.N, a.C, a.H, a.W)
	transpose(a.Data, a.C*a.H*a.W, a.N, out.Data)
	return out
}

// BackwardFeatures accumulates the parameters' gradients given d, the
// gradient of the loss with respect to the features (N, C4, h, w) of the
// last ForwardFeatures, which must have been in training mode.
func (n *Net) BackwardFeatures(d *tensor.Tensor) {
	if !n.trained || n.feat == nil {
		panic("train: BackwardFeatures needs a preceding forward pass in training mode")
	}
	a := n.feat
	if d.Numel() != len(a.Data) || len(d.Shape) != 4 || d.Shape[0] != a.N || d.Shape[1] != a.C {
		panic(fmt.Sprintf("train: BackwardFeatures: gradient %v, want (%d, %d, %d, %d)", d, a.N, a.C, a.H, a.W))
	}
	n.dfeat = grow(n.dfeat, len(a.Data))
	transpose(d.Data, a.N, a.C*a.H*a.W, n.dfeat)
	n.backwardFeatures(n.dfeat)
}
