package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "mobilenet_v1",
		Source: "tools/reference/zoo_ref.py MobileNetV1 (Howard et al. 2017, arXiv 1704.04861, Table 1; timm mobilenetv1_100 key names)",
		// The paper's TF-slim evaluation: central 87.5 % crop, bilinear, values scaled to [-1, 1].
		Preprocess: Preprocess{Resize: 256, Crop: 224, Interpolation: "bilinear", Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.5, 0.5, 0.5}},
		Build:      func(h, w int) (*graph.Graph, error) { return mobileNetV1(h, w) }})
	register(&Spec{Name: "mobilenet_v2", Source: "torchvision 0.14 models/mobilenetv2.py (Sandler et al. 2018)",
		Preprocess: imagenet(232, 224, "bilinear"), // MobileNet_V2_Weights.IMAGENET1K_V2
		Build:      func(h, w int) (*graph.Graph, error) { return mobileNetV2(h, w) }})
	register(&Spec{Name: "mobilenet_v3_small", Source: "torchvision 0.14 models/mobilenetv3.py (Howard et al. 2019)",
		Preprocess: imagenet(256, 224, "bilinear"), // MobileNet_V3_Small_Weights.IMAGENET1K_V1
		Build:      func(h, w int) (*graph.Graph, error) { return mobileNetV3("mobilenet_v3_small", h, w) }})
	register(&Spec{Name: "mobilenet_v3_large", Source: "torchvision 0.14 models/mobilenetv3.py (Howard et al. 2019)",
		Preprocess: imagenet(232, 224, "bilinear"), // MobileNet_V3_Large_Weights.IMAGENET1K_V2
		Build:      func(h, w int) (*graph.Graph, error) { return mobileNetV3("mobilenet_v3_large", h, w) }})
}

// mobileNetV1Stages: (output channels, depthwise stride) of the 13
// depthwise-separable blocks, in timm's stage grouping.
var mobileNetV1Stages = [][][2]int{
	{{64, 1}},
	{{128, 2}, {128, 1}},
	{{256, 2}, {256, 1}},
	{{512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1}, {512, 1}},
	{{1024, 2}, {1024, 1}},
}

// mobileNetV1 is MobileNet 1.0: a 3×3 stem and depthwise 3×3 + pointwise
// 1×1 blocks, each conv with BatchNorm and ReLU.
func mobileNetV1(h, w int) (*graph.Graph, error) {
	b := graph.NewBuilder("mobilenet_v1", 3, h, w)
	x := namedConvBN(b, b.Input(), "conv_stem", "bn1", 32, 3, 2, 1, graph.ReLU)
	c := 32
	for s, stage := range mobileNetV1Stages {
		for j, blk := range stage {
			p := fmt.Sprintf("blocks.%d.%d.", s, j)
			x = namedConvBN(b, x, p+"conv_dw", p+"bn1", c, 3, blk[1], c, graph.ReLU)
			x = namedConvBN(b, x, p+"conv_pw", p+"bn2", blk[0], 1, 1, 1, graph.ReLU)
			c = blk[0]
		}
	}
	return b.Graph(poolLinear(b, x, "classifier", 1000))
}

// mobileNetV2 is torchvision's mobilenet_v2 (width 1.0): inverted residual
// blocks with ReLU6, a 1280-wide last conv and Dropout + Linear.
func mobileNetV2(h, w int) (*graph.Graph, error) {
	settings := [][4]int{ // t (expansion), c (channels), n (repeats), s (stride)
		{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1},
	}
	b := graph.NewBuilder("mobilenet_v2", 3, h, w)
	in := makeDivisible(32, 8)
	x := cna(b, b.Input(), "features.0", in, 3, 2, 1, bnEps, graph.ReLU6)
	idx := 1
	for _, st := range settings {
		t, out := st[0], makeDivisible(float64(st[1]), 8)
		for i := 0; i < st[2]; i++ {
			stride := 1
			if i == 0 {
				stride = st[3]
			}
			p := fmt.Sprintf("features.%d.conv", idx)
			hidden := in * t // int(round(inp * expand_ratio)) with an integer ratio
			y := x
			layer := 0
			if t != 1 {
				y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), hidden, 1, 1, 1, bnEps, graph.ReLU6)
				layer++
			}
			y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), hidden, 3, stride, hidden, bnEps, graph.ReLU6)
			y = seqConvBN(b, y, p, layer+1, out, 1, 1, 1, graph.None)
			if stride == 1 && in == out {
				y = b.Add(x, y, fmt.Sprintf("features.%d.add", idx), graph.None)
			}
			x, in = y, out
			idx++
		}
	}
	x = cna(b, x, fmt.Sprintf("features.%d", idx), makeDivisible(1280, 8), 1, 1, 1, bnEps, graph.ReLU6)
	return b.Graph(poolLinear(b, x, "classifier.1", 1000))
}

// v3Block is one row of torchvision's MobileNetV3 configuration
// (InvertedResidualConfig at width 1.0).
type v3Block struct {
	in, k, exp, out int
	se              bool
	hs              bool // hardswish ("HS"), else ReLU ("RE")
	stride          int
}

var (
	mobileNetV3Large = []v3Block{
		{16, 3, 16, 16, false, false, 1},
		{16, 3, 64, 24, false, false, 2},
		{24, 3, 72, 24, false, false, 1},
		{24, 5, 72, 40, true, false, 2},
		{40, 5, 120, 40, true, false, 1},
		{40, 5, 120, 40, true, false, 1},
		{40, 3, 240, 80, false, true, 2},
		{80, 3, 200, 80, false, true, 1},
		{80, 3, 184, 80, false, true, 1},
		{80, 3, 184, 80, false, true, 1},
		{80, 3, 480, 112, true, true, 1},
		{112, 3, 672, 112, true, true, 1},
		{112, 5, 672, 160, true, true, 2},
		{160, 5, 960, 160, true, true, 1},
		{160, 5, 960, 160, true, true, 1},
	}
	mobileNetV3Small = []v3Block{
		{16, 3, 16, 16, true, false, 2},
		{16, 3, 72, 24, false, false, 2},
		{24, 3, 88, 24, false, false, 1},
		{24, 5, 96, 40, true, true, 2},
		{40, 5, 240, 40, true, true, 1},
		{40, 5, 240, 40, true, true, 1},
		{40, 5, 120, 48, true, true, 1},
		{48, 5, 144, 48, true, true, 1},
		{48, 5, 288, 96, true, true, 2},
		{96, 5, 576, 96, true, true, 1},
		{96, 5, 576, 96, true, true, 1},
	}
)

// mobileNetV3 is torchvision's mobilenet_v3_small or _large: BatchNorm eps
// 0.001, SE (ReLU, hardsigmoid gate, fc1/fc2 as 1×1 convs) after the
// depthwise conv, a 6× last conv with hardswish and a classifier of
// Linear + Hardswish + Dropout + Linear.
func mobileNetV3(name string, h, w int) (*graph.Graph, error) {
	cfg, last := mobileNetV3Large, 1280
	if name == "mobilenet_v3_small" {
		cfg, last = mobileNetV3Small, 1024
	}
	act := func(hs bool) graph.Activation {
		if hs {
			return graph.HardSwish
		}
		return graph.ReLU
	}
	b := graph.NewBuilder(name, 3, h, w)
	x := cna(b, b.Input(), "features.0", makeDivisible(float64(cfg[0].in), 8), 3, 2, 1, bnEpsV3, graph.HardSwish)
	for i, c := range cfg {
		in, exp, out := makeDivisible(float64(c.in), 8), makeDivisible(float64(c.exp), 8), makeDivisible(float64(c.out), 8)
		p := fmt.Sprintf("features.%d.block", i+1)
		y, layer := x, 0
		if exp != in {
			y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), exp, 1, 1, 1, bnEpsV3, act(c.hs))
			layer++
		}
		y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), exp, c.k, c.stride, exp, bnEpsV3, act(c.hs))
		layer++
		if c.se {
			sp := fmt.Sprintf("%s.%d", p, layer)
			y = b.SE(y, sp, graph.SESpec{Hidden: makeDivisible(float64(exp/4), 8), Act: graph.ReLU, Gate: graph.HardSigmoid,
				Reduce: sp + ".fc1", Expand: sp + ".fc2", ConvWeights: true})
			layer++
		}
		y = cna(b, y, fmt.Sprintf("%s.%d", p, layer), out, 1, 1, 1, bnEpsV3, graph.None)
		if c.stride == 1 && in == out {
			y = b.Add(x, y, fmt.Sprintf("features.%d.add", i+1), graph.None)
		}
		x = y
	}
	lastIn := makeDivisible(float64(cfg[len(cfg)-1].out), 8)
	x = cna(b, x, fmt.Sprintf("features.%d", len(cfg)+1), 6*lastIn, 1, 1, 1, bnEpsV3, graph.HardSwish)
	x = b.GlobalAvgPool(x, "avgpool")
	x = b.Linear(x, "classifier.0", makeDivisible(float64(last), 8), true, graph.HardSwish)
	x = b.Linear(x, "classifier.3", 1000, true, graph.None)
	return b.Graph(x)
}
