package arch

import (
	"strconv"

	"github.com/mobileone-go/mobileone/graph"
)

// Helpers shared by the zoo's builders.

// torchvision's BatchNorm epsilons: nn.BatchNorm2d's default, and the 0.001
// MobileNetV3 uses.
const (
	bnEps   = 1e-5
	bnEpsV3 = 1e-3
)

// cna is torchvision's Conv2dNormActivation (or any nn.Sequential of a conv
// without bias, a BatchNorm and an activation): the conv's keys are at
// prefix.0, the BatchNorm's at prefix.1; "same" padding (k-1)/2.
func cna(b *graph.Builder, x graph.Value, prefix string, out, k, stride, groups int, eps float64, act graph.Activation) graph.Value {
	return b.Conv(x, prefix+".0", graph.ConvSpec{Out: out, K: k, Stride: stride, Pad: -1, Groups: groups,
		BN: true, BNName: prefix + ".1", BNEps: eps, Act: act})
}

// seqConvBN is a conv without bias at prefix.i followed by its BatchNorm at
// prefix.(i+1), as in nn.Sequential bodies that number every layer (MNASNet,
// ShuffleNetV2's branches, GhostNet's shortcut).
func seqConvBN(b *graph.Builder, x graph.Value, prefix string, i, out, k, stride, groups int, act graph.Activation) graph.Value {
	return b.Conv(x, prefix+"."+strconv.Itoa(i), graph.ConvSpec{Out: out, K: k, Stride: stride, Pad: -1, Groups: groups,
		BN: true, BNName: prefix + "." + strconv.Itoa(i+1), BNEps: bnEps, Act: act})
}

// namedConvBN is a conv without bias at prefix+conv and its BatchNorm at
// prefix+bn (timm's ConvNormAct "conv"/"bn", RepVGG's "conv"/"bn").
func namedConvBN(b *graph.Builder, x graph.Value, conv, bn string, out, k, stride, groups int, act graph.Activation) graph.Value {
	return b.Conv(x, conv, graph.ConvSpec{Out: out, K: k, Stride: stride, Pad: -1, Groups: groups,
		BN: true, BNName: bn, BNEps: bnEps, Act: act})
}

// poolLinear is the usual head: global average pooling and a linear
// classifier with bias (dropout is the identity in evaluation).
func poolLinear(b *graph.Builder, x graph.Value, name string, classes int) graph.Value {
	x = b.GlobalAvgPool(x, "avgpool")
	return b.Linear(x, name, classes, true, graph.None)
}
