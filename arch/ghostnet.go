package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "ghostnet",
		Source: "tools/reference/zoo_ref.py GhostNet (Han et al. 2020, arXiv 1911.11907, Table 1 and the official cfgs, width 1.0; official / timm ghostnet_100 key names)",
		// The official release's validation transform (timm ghostnet_100: crop_pct 0.875, bilinear, the same).
		Preprocess: imagenet(256, 224, "bilinear"),
		Build:      func(h, w int) (*graph.Graph, error) { return ghostNet(h, w) }})
}

// ghostNetCfgs: per stage, rows of dw kernel, hidden channels, output
// channels, SE (ratio 0.25), stride.
var ghostNetCfgs = [][]struct {
	k, exp, out int
	se          bool
	stride      int
}{
	{{3, 16, 16, false, 1}},
	{{3, 48, 24, false, 2}},
	{{3, 72, 24, false, 1}},
	{{5, 72, 40, true, 2}},
	{{5, 120, 40, true, 1}},
	{{3, 240, 80, false, 2}},
	{{3, 200, 80, false, 1}, {3, 184, 80, false, 1}, {3, 184, 80, false, 1}, {3, 480, 112, true, 1}, {3, 672, 112, true, 1}},
	{{5, 672, 160, true, 2}},
	{{5, 960, 160, false, 1}, {5, 960, 160, true, 1}, {5, 960, 160, false, 1}, {5, 960, 160, true, 1}},
}

// ghostModule: a 1×1 primary conv to ⌈out/2⌉ channels and a depthwise 3×3
// "cheap operation" on them, each with BatchNorm (and ReLU if relu),
// concatenated and cut to out channels.
func ghostModule(b *graph.Builder, x graph.Value, p string, out int, relu bool) graph.Value {
	act := graph.None
	if relu {
		act = graph.ReLU
	}
	prim := (out + 1) / 2
	a := seqConvBN(b, x, p+".primary_conv", 0, prim, 1, 1, 1, act)
	c := seqConvBN(b, a, p+".cheap_operation", 0, prim, 3, 1, prim, act)
	y := b.Concat(p+".cat", a, c)
	if 2*prim != out {
		y = b.Split(y, p+".cut", 0, out)
	}
	return y
}

// ghostNet is GhostNet 1.0: a 3×3 stem, ghost bottlenecks (ghost module
// with ReLU, a depthwise k×k with BatchNorm where the stride is 2, SE with
// ReLU and a hard-sigmoid gate on make_divisible(C/4, 4) channels, ghost
// module without ReLU; plus the identity, or a depthwise k×k + 1×1
// shortcut where the shape changes), a 1×1 conv to 960, global pooling, a
// 1×1 conv "conv_head" with bias and ReLU to 1280 (on the pooled vector: a
// linear layer on the same weights) and the classifier.
func ghostNet(h, w int) (*graph.Graph, error) {
	b := graph.NewBuilder("ghostnet", 3, h, w)
	in := makeDivisible(16, 4)
	x := namedConvBN(b, b.Input(), "conv_stem", "bn1", in, 3, 2, 1, graph.ReLU)
	exp := 0
	for s, stage := range ghostNetCfgs {
		for j, c := range stage {
			p := fmt.Sprintf("blocks.%d.%d", s, j)
			out, mid := makeDivisible(float64(c.out), 4), makeDivisible(float64(c.exp), 4)
			y := ghostModule(b, x, p+".ghost1", mid, true)
			if c.stride > 1 {
				y = namedConvBN(b, y, p+".conv_dw", p+".bn_dw", mid, c.k, c.stride, mid, graph.None)
			}
			if c.se {
				y = b.SE(y, p+".se", graph.SESpec{Hidden: makeDivisible(float64(mid)*0.25, 4), Act: graph.ReLU, Gate: graph.HardSigmoid,
					Reduce: p + ".se.conv_reduce", Expand: p + ".se.conv_expand", ConvWeights: true})
			}
			y = ghostModule(b, y, p+".ghost2", out, false)
			id := x
			if in != out || c.stride != 1 {
				id = seqConvBN(b, x, p+".shortcut", 0, in, c.k, c.stride, in, graph.None)
				id = seqConvBN(b, id, p+".shortcut", 2, out, 1, 1, 1, graph.None)
			}
			x = b.Add(y, id, p+".add", graph.None)
			in, exp = out, c.exp
		}
	}
	p := fmt.Sprintf("blocks.%d.0", len(ghostNetCfgs))
	x = namedConvBN(b, x, p+".conv", p+".bn1", makeDivisible(float64(exp), 4), 1, 1, 1, graph.ReLU)
	x = b.GlobalAvgPool(x, "avgpool")
	x = b.Linear(x, "conv_head", 1280, true, graph.ReLU)
	x = b.Linear(x, "classifier", 1000, true, graph.None)
	return b.Graph(x)
}
