package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	for _, r := range []struct {
		name       string
		layers     [4]int
		bottleneck bool
	}{
		{"resnet18", [4]int{2, 2, 2, 2}, false},
		{"resnet50", [4]int{3, 4, 6, 3}, true},
	} {
		r := r
		register(&Spec{Name: r.name, Source: "torchvision 0.14 models/resnet.py (He et al. 2016)",
			Preprocess: imagenet(256, 224, "bilinear"),
			Build:      func(h, w int) (*graph.Graph, error) { return resnet(r.name, h, w, r.layers, r.bottleneck) }})
	}
	// torchvision's resnet50 DEFAULT weights (IMAGENET1K_V2) evaluate at resize 232.
	registry["resnet50"].Preprocess = imagenet(232, 224, "bilinear")
}

// convBN is a torchvision conv (no bias) + BatchNorm pair.
func convBN(b *graph.Builder, x graph.Value, conv, bn string, out, k, stride, groups int, act graph.Activation) graph.Value {
	return b.Conv(x, conv, graph.ConvSpec{Out: out, K: k, Stride: stride, Pad: -1, Groups: groups, BN: true, BNName: bn, Act: act})
}

func resnet(name string, h, w int, layers [4]int, bottleneck bool) (*graph.Graph, error) {
	b := graph.NewBuilder(name, 3, h, w)
	x := convBN(b, b.Input(), "conv1", "bn1", 64, 7, 2, 1, graph.ReLU)
	x = b.Pool(x, "maxpool", graph.MaxPool, 3, 2, 1)
	inC := 64
	expansion := 1
	if bottleneck {
		expansion = 4
	}
	for li, n := range layers {
		width := 64 << li
		for j := 0; j < n; j++ {
			p := fmt.Sprintf("layer%d.%d", li+1, j)
			stride := 1
			if j == 0 && li > 0 {
				stride = 2
			}
			id := x
			if j == 0 && (stride != 1 || inC != width*expansion) {
				id = convBN(b, x, p+".downsample.0", p+".downsample.1", width*expansion, 1, stride, 1, graph.None)
			}
			var y graph.Value
			if bottleneck {
				y = convBN(b, x, p+".conv1", p+".bn1", width, 1, 1, 1, graph.ReLU)
				y = convBN(b, y, p+".conv2", p+".bn2", width, 3, stride, 1, graph.ReLU)
				y = convBN(b, y, p+".conv3", p+".bn3", width*expansion, 1, 1, 1, graph.None)
			} else {
				y = convBN(b, x, p+".conv1", p+".bn1", width, 3, stride, 1, graph.ReLU)
				y = convBN(b, y, p+".conv2", p+".bn2", width, 3, 1, 1, graph.None)
			}
			x = b.Add(y, id, p+".add", graph.ReLU)
			inC = width * expansion
		}
	}
	x = b.GlobalAvgPool(x, "avgpool")
	x = b.Linear(x, "fc", 1000, true, graph.None)
	return b.Graph(x)
}
