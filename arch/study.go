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

// StudyNet builds the study CNN for an h×w RGB input, as
// tools/reference/study.py defines it (its key names too). act is one of
// relu, gelu, hardswish, dyshiftmax, dyrelu_a, dyrelu_b (every activation,
// the stem's included); se adds squeeze-excitation (reduction 4, ReLU,
// sigmoid gate) after each block's pointwise BatchNorm; skip adds the input
// of each block whose input and output shapes match. A block is dw conv,
// BN, act; pw conv, BN, [SE], [+ input], act. Keys: stem.conv, stem.bn,
// stem.act.fc1/fc2 (dynamic activations), blocks.I.{dw,pw}.{conv,bn,act},
// blocks.I.se.reduce/expand, fc.
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
	activate := func(x graph.Value, p string) graph.Value {
		if dynamic < 0 {
			return b.Act(x, p+".act", fixed)
		}
		return b.Dynamic(x, p+".act", dynamic, b.Shape(x)[0]/4, perChannel, 2)
	}
	// convBN is conv + BN, with a fixed activation fused when nothing comes
	// between them.
	convBN := func(x graph.Value, p string, s graph.ConvSpec, fuse bool) graph.Value {
		s.Pad, s.BN, s.BNName = -1, true, p+".bn"
		if fuse && dynamic < 0 {
			s.Act = fixed
			return b.Conv(x, p+".conv", s)
		}
		y := b.Conv(x, p+".conv", s)
		if fuse {
			y = activate(y, p)
		}
		return y
	}
	x := convBN(b.Input(), "stem", graph.ConvSpec{Out: 32, K: 3, Stride: 2}, true)
	in := 32
	for i, blk := range studyBlocks {
		p := fmt.Sprintf("blocks.%d", i)
		y := convBN(x, p+".dw", graph.ConvSpec{Out: in, K: 3, Stride: blk.stride, Groups: in}, true)
		res := skip && blk.stride == 1 && in == blk.out
		y = convBN(y, p+".pw", graph.ConvSpec{Out: blk.out, K: 1}, !se && !res)
		if se {
			y = b.SE(y, p+".se", graph.SESpec{Hidden: blk.out / 4, Act: graph.ReLU, Gate: graph.Sigmoid,
				Reduce: p + ".se.reduce", Expand: p + ".se.expand", ConvWeights: true})
		}
		if res {
			y = b.Add(y, x, p+".add", graph.None)
		}
		if se || res {
			y = activate(y, p+".pw")
		}
		x, in = y, blk.out
	}
	x = b.GlobalAvgPool(x, "pool")
	x = b.Linear(x, "fc", 1000, true, graph.None)
	return b.Graph(x)
}

// StudyActivationNet is the Table 2 network with activation act (se_relu:
// ReLU with squeeze-excitation).
func StudyActivationNet(act string, h, w int) (*graph.Graph, error) {
	if act == "se_relu" {
		return StudyNet("study_se_relu", "relu", false, true, h, w)
	}
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
