package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

// The paper's 30-layer CNN (MobileOne, Tables 2 and 3b) is not specified in
// detail; ours is MobileNet-V1-shaped: a 3×3 stride-2 stem (3 → 32), 14
// depthwise-separable blocks (depthwise 3×3 + BatchNorm + activation,
// pointwise 1×1 + BatchNorm + activation) with the widths and strides
// below, global pooling and a linear classifier: 1 + 28 + 1 = 30 layers.
var studyBlocks = []struct{ out, stride int }{
	{64, 1}, {128, 2}, {128, 1}, {256, 2}, {256, 1}, {512, 2},
	{512, 1}, {512, 1}, {512, 1}, {512, 1}, {512, 1}, {1024, 2}, {1024, 1}, {1024, 1},
}

// StudyActivations are the activation variants of the paper's Table 2.
var StudyActivations = []string{"relu", "gelu", "se_relu", "hardswish", "dyshiftmax", "dyrelu_a", "dyrelu_b"}

// StudyBlocks are the variants of the paper's Table 3b.
var StudyBlocks = []string{"plain", "skip", "se", "skip_se"}

// StudyNet builds the study CNN for an h×w RGB input. act is one of
// StudyActivations (every block the same); skip adds an identity shortcut
// around each block whose input and output shapes match; se adds
// squeeze-excitation (reduction 4, ReLU, sigmoid gate) after each block's
// pointwise convolution (se_relu is relu with se). Key names: stem.conv,
// stem.bn, blocks.I.{dw,pw}.{conv,bn}, blocks.I.{dw,pw}.act.fc1/fc2 (the
// dynamic activations), blocks.I.se.fc1/fc2, fc.
func StudyNet(name, act string, skip, se bool, h, w int) (*graph.Graph, error) {
	var fixed graph.Activation
	dynamic := graph.Kind(-1)
	perChannel := false
	switch act {
	case "relu":
		fixed = graph.ReLU
	case "gelu":
		fixed = graph.GELU
	case "hardswish":
		fixed = graph.HardSwish
	case "se_relu":
		fixed, se = graph.ReLU, true
	case "dyrelu_a":
		dynamic = graph.DyReLU
	case "dyrelu_b":
		dynamic, perChannel = graph.DyReLU, true
	case "dyshiftmax":
		dynamic = graph.DyShiftMax
	default:
		return nil, fmt.Errorf("unknown study activation %q", act)
	}
	b := graph.NewBuilder(name, 3, h, w)
	convAct := func(x graph.Value, p string, s graph.ConvSpec) graph.Value {
		s.Pad, s.BN, s.BNName = -1, true, p+".bn"
		if dynamic < 0 {
			s.Act = fixed
			return b.Conv(x, p+".conv", s)
		}
		x = b.Conv(x, p+".conv", s)
		c := b.Shape(x)[0]
		return b.Dynamic(x, p+".act", dynamic, max(c/4, 4), perChannel, 2)
	}
	x := convAct(b.Input(), "stem", graph.ConvSpec{Out: 32, K: 3, Stride: 2})
	in := 32
	for i, blk := range studyBlocks {
		p := fmt.Sprintf("blocks.%d", i)
		y := convAct(x, p+".dw", graph.ConvSpec{Out: in, K: 3, Stride: blk.stride, Groups: in})
		y = convAct(y, p+".pw", graph.ConvSpec{Out: blk.out, K: 1})
		if se {
			y = b.SE(y, p+".se", graph.SESpec{Hidden: blk.out / 4, Act: graph.ReLU, Gate: graph.Sigmoid,
				Reduce: p + ".se.fc1", Expand: p + ".se.fc2", ConvWeights: true})
		}
		if skip && blk.stride == 1 && in == blk.out {
			y = b.Add(y, x, p+".add", graph.None)
		}
		x, in = y, blk.out
	}
	x = b.GlobalAvgPool(x, "pool")
	x = b.Linear(x, "fc", 1000, true, graph.None)
	return b.Graph(x)
}

// StudyActivationNet is the Table 2 network with activation act.
func StudyActivationNet(act string, h, w int) (*graph.Graph, error) {
	return StudyNet("study_"+act, act, false, false, h, w)
}

// StudyBlockNet is the Table 3b network: variant plain, skip, se or skip_se.
func StudyBlockNet(variant string, h, w int) (*graph.Graph, error) {
	switch variant {
	case "plain":
		return StudyNet("study_plain", "relu", false, false, h, w)
	case "skip":
		return StudyNet("study_skip", "relu", true, false, h, w)
	case "se":
		return StudyNet("study_se", "relu", false, true, h, w)
	case "skip_se":
		return StudyNet("study_skip_se", "relu", true, true, h, w)
	}
	return nil, fmt.Errorf("unknown block variant %q (want plain, skip, se or skip_se)", variant)
}
