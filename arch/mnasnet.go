package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "mnasnet1_0", Source: "torchvision 0.14 models/mnasnet.py (Tan et al. 2019, MnasNet-B1)",
		Preprocess: imagenet(256, 224, "bilinear"), // MNASNet1_0_Weights.IMAGENET1K_V1
		Build:      func(h, w int) (*graph.Graph, error) { return mnasNet("mnasnet1_0", h, w, 1.0) }})
}

// mnasNetDepths is torchvision's _get_depths: the base channel counts
// scaled by alpha and rounded to multiples of 8 (never below 90 %).
func mnasNetDepths(alpha float64) [8]int {
	var d [8]int
	for i, c := range [8]int{32, 16, 24, 40, 80, 96, 192, 320} {
		d[i] = makeDivisible(float64(c)*alpha, 8)
	}
	return d
}

// mnasNet is torchvision's MNASNet (B1): one nn.Sequential "layers" of a
// 3×3 stem, a depthwise-separable block, six stacks of inverted residuals
// (1×1 expansion, depthwise k×k, 1×1 projection; ReLU; residual when the
// shape is kept), a 1×1 conv to 1280 and Dropout + Linear.
func mnasNet(name string, h, w int, alpha float64) (*graph.Graph, error) {
	d := mnasNetDepths(alpha)
	b := graph.NewBuilder(name, 3, h, w)
	x := seqConvBN(b, b.Input(), "layers", 0, d[0], 3, 2, 1, graph.ReLU)
	x = seqConvBN(b, x, "layers", 3, d[0], 3, 1, d[0], graph.ReLU)
	x = seqConvBN(b, x, "layers", 6, d[1], 1, 1, 1, graph.None)
	stacks := [][4]int{ // kernel, stride, expansion, repeats
		{3, 2, 3, 3}, {5, 2, 3, 3}, {5, 2, 6, 3}, {3, 1, 6, 2}, {5, 2, 6, 4}, {3, 1, 6, 1},
	}
	in := d[1]
	for s, st := range stacks {
		k, out := st[0], d[s+2]
		for j := 0; j < st[3]; j++ {
			stride := 1
			if j == 0 {
				stride = st[1]
			}
			p := fmt.Sprintf("layers.%d.%d.layers", 8+s, j)
			mid := in * st[2]
			y := seqConvBN(b, x, p, 0, mid, 1, 1, 1, graph.ReLU)
			y = seqConvBN(b, y, p, 3, mid, k, stride, mid, graph.ReLU)
			y = seqConvBN(b, y, p, 6, out, 1, 1, 1, graph.None)
			if stride == 1 && in == out {
				y = b.Add(x, y, fmt.Sprintf("layers.%d.%d.add", 8+s, j), graph.None)
			}
			x, in = y, out
		}
	}
	x = seqConvBN(b, x, "layers", 14, 1280, 1, 1, 1, graph.ReLU)
	return b.Graph(poolLinear(b, x, "classifier.1", 1000))
}
