package arch

import (
	"fmt"
	"math"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "efficientnet_b0", Source: "torchvision 0.14 models/efficientnet.py (Tan & Le 2019)",
		Preprocess: imagenet(256, 224, "bicubic"), // EfficientNet_B0_Weights.IMAGENET1K_V1
		Build:      func(h, w int) (*graph.Graph, error) { return efficientNet("efficientnet_b0", h, w, 1, 1) }})
}

// efficientNetStages is torchvision's EfficientNet-B0 MBConv table:
// expansion, kernel, stride, input and output channels, layers.
var efficientNetStages = [][6]int{
	{1, 3, 1, 32, 16, 1},
	{6, 3, 2, 16, 24, 2},
	{6, 5, 2, 24, 40, 2},
	{6, 3, 2, 40, 80, 3},
	{6, 5, 1, 80, 112, 3},
	{6, 5, 2, 112, 192, 4},
	{6, 3, 1, 192, 320, 1},
}

// efficientNet is torchvision's EfficientNet (v1) at the given width and
// depth multipliers: MBConv blocks (1×1 expansion, depthwise k×k, SE with a
// SiLU inside and a sigmoid gate on max(1, in/4) hidden channels, 1×1
// projection), SiLU throughout, BatchNorm eps 1e-5; stochastic depth and
// dropout are the identity in evaluation.
func efficientNet(name string, h, w int, width, depth float64) (*graph.Graph, error) {
	ch := func(c int) int { return makeDivisible(float64(c)*width, 8) }
	b := graph.NewBuilder(name, 3, h, w)
	x := cna(b, b.Input(), "features.0", ch(efficientNetStages[0][3]), 3, 2, 1, bnEps, graph.SiLU)
	for s, st := range efficientNetStages {
		exp, k, stride0, out := st[0], st[1], st[2], ch(st[4])
		in := ch(st[3])
		for j := 0; j < int(math.Ceil(float64(st[5])*depth)); j++ {
			stride := stride0
			if j > 0 {
				in, stride = out, 1
			}
			p := fmt.Sprintf("features.%d.%d.block", s+1, j)
			hidden := makeDivisible(float64(in*exp), 8)
			y, layer := x, 0
			if hidden != in {
				y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), hidden, 1, 1, 1, bnEps, graph.SiLU)
				layer++
			}
			y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), hidden, k, stride, hidden, bnEps, graph.SiLU)
			layer++
			sp := fmt.Sprintf("%s.%d", p, layer)
			y = b.SE(y, sp, graph.SESpec{Hidden: max(1, in/4), Act: graph.SiLU, Gate: graph.Sigmoid,
				Reduce: sp + ".fc1", Expand: sp + ".fc2", ConvWeights: true})
			layer++
			y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), out, 1, 1, 1, bnEps, graph.None)
			if stride == 1 && in == out {
				y = b.Add(x, y, fmt.Sprintf("features.%d.%d.add", s+1, j), graph.None)
			}
			x = y
		}
	}
	last := ch(efficientNetStages[len(efficientNetStages)-1][4])
	x = cna(b, x, fmt.Sprintf("features.%d", len(efficientNetStages)+1), 4*last, 1, 1, 1, bnEps, graph.SiLU)
	return b.Graph(poolLinear(b, x, "classifier.1", 1000))
}
