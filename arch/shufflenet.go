package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "shufflenet_v2_x1_0", Source: "torchvision 0.14 models/shufflenetv2.py (Ma et al. 2018)",
		Preprocess: imagenet(256, 224, "bilinear"), // ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1
		Build: func(h, w int) (*graph.Graph, error) {
			return shuffleNetV2("shufflenet_v2_x1_0", h, w, [3]int{4, 8, 4}, [5]int{24, 116, 232, 464, 1024})
		}})
}

// shuffleNetV2 is torchvision's ShuffleNetV2: a 3×3 stem and max pooling,
// three stages of units, a 1×1 conv and the classifier "fc". A unit of
// stride 1 splits the channels in halves, passes the first through and
// runs branch2 (1×1, depthwise 3×3, 1×1) on the second; a unit of stride 2
// runs branch1 (depthwise 3×3, 1×1) and branch2 on the whole input. The
// halves are concatenated and shuffled in 2 groups.
func shuffleNetV2(name string, h, w int, repeats [3]int, ch [5]int) (*graph.Graph, error) {
	b := graph.NewBuilder(name, 3, h, w)
	x := seqConvBN(b, b.Input(), "conv1", 0, ch[0], 3, 2, 1, graph.ReLU)
	x = b.Pool(x, "maxpool", graph.MaxPool, 3, 2, 1)
	in := ch[0]
	for s, n := range repeats {
		out := ch[s+1]
		half := out / 2
		for j := 0; j < n; j++ {
			p := fmt.Sprintf("stage%d.%d", s+2, j)
			var left, right graph.Value
			if j == 0 {
				left = seqConvBN(b, x, p+".branch1", 0, in, 3, 2, in, graph.None)
				left = seqConvBN(b, left, p+".branch1", 2, half, 1, 1, 1, graph.ReLU)
				right = x
			} else {
				left = b.Split(x, p+".split0", 0, half)
				right = b.Split(x, p+".split1", half, out)
			}
			stride := 1
			if j == 0 {
				stride = 2
			}
			right = seqConvBN(b, right, p+".branch2", 0, half, 1, 1, 1, graph.ReLU)
			right = seqConvBN(b, right, p+".branch2", 3, half, 3, stride, half, graph.None)
			right = seqConvBN(b, right, p+".branch2", 5, half, 1, 1, 1, graph.ReLU)
			x = b.Shuffle(b.Concat(p+".cat", left, right), p+".shuffle", 2)
			in = out
		}
	}
	x = seqConvBN(b, x, "conv5", 0, ch[4], 1, 1, 1, graph.ReLU)
	return b.Graph(poolLinear(b, x, "fc", 1000))
}
