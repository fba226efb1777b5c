package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
)

func init() {
	register(&Spec{Name: "regnet_x_400mf", Source: "torchvision 0.14 models/regnet.py (Radosavovic et al. 2020, RegNetX-400MF)",
		Preprocess: imagenet(232, 224, "bilinear"), // RegNet_X_400MF_Weights.IMAGENET1K_V2
		Build: func(h, w int) (*graph.Graph, error) {
			// BlockParams.from_init_params(depth=22, w_0=24, w_a=24.48, w_m=2.54, group_width=16)
			// expands to these four stages (bottleneck multiplier 1, no SE).
			return regNetX("regnet_x_400mf", h, w, 32, [4]int{32, 64, 160, 400}, [4]int{1, 2, 7, 12}, 16)
		}})
}

// regNetX is torchvision's RegNet with ResBottleneckBlocks of bottleneck
// multiplier 1 and no SE (the X family): a 3×3 stem, stages of blocks
// (1×1, grouped 3×3 with the stage's stride in the first block, 1×1; a 1×1
// projection shortcut where the shape changes; ReLU after the sum), global
// pooling and "fc".
func regNetX(name string, h, w, stem int, widths, depths [4]int, groupWidth int) (*graph.Graph, error) {
	b := graph.NewBuilder(name, 3, h, w)
	x := cna(b, b.Input(), "stem", stem, 3, 2, 1, bnEps, graph.ReLU)
	in := stem
	for s, out := range widths {
		for j := 0; j < depths[s]; j++ {
			stride := 1
			if j == 0 {
				stride = 2
			}
			p := fmt.Sprintf("trunk_output.block%d.block%d-%d", s+1, s+1, j)
			id := x
			if in != out || stride != 1 {
				id = cna(b, x, p+".proj", out, 1, stride, 1, bnEps, graph.None)
			}
			groups := out / min(groupWidth, out)
			y := cna(b, x, p+".f.a", out, 1, 1, 1, bnEps, graph.ReLU)
			y = cna(b, y, p+".f.b", out, 3, stride, groups, bnEps, graph.ReLU)
			y = cna(b, y, p+".f.c", out, 1, 1, 1, bnEps, graph.None)
			x = b.Add(y, id, p+".add", graph.ReLU)
			in = out
		}
	}
	return b.Graph(poolLinear(b, x, "fc", 1000))
}
