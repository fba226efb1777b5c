package arch

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/nn"
)

func init() {
	for _, v := range []string{"s0", "s1", "s2", "s3", "s4"} {
		cfg, err := model.Variant(v)
		if err != nil {
			panic(err)
		}
		resize := cfg.ResizeShort
		if resize == 0 {
			resize = 256
		}
		register(&Spec{Name: "mobileone_" + v, Source: "Vasu et al., CVPR 2023 (apple/ml-mobileone; fused form, authors' key names)",
			Preprocess: imagenet(resize, 224, "bilinear"),
			Build:      func(h, w int) (*graph.Graph, error) { return MobileOne(cfg, h, w) }})
	}
}

// MobileOne builds the fused (re-parameterised) network of cfg: one
// convolution with bias per block (the authors' "reparam_conv" keys), SE
// between a block's convolution and its ReLU, global pooling and the
// linear classifier (if cfg has classes).
func MobileOne(cfg model.Config, h, w int) (*graph.Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := cfg.Name
	if name == "" {
		name = "mobileone-custom"
	}
	b := graph.NewBuilder(name, cfg.InChannels, h, w)
	names, specs := cfg.Specs()
	x := b.Input()
	for i, s := range specs {
		act := graph.ReLU
		if s.SE {
			act = graph.None
		}
		x = b.Conv(x, names[i]+".reparam_conv", graph.ConvSpec{Out: s.OutC, K: s.K, Stride: s.Stride, Pad: s.K / 2,
			Groups: s.Groups, Bias: true, Act: act})
		if s.SE {
			p := names[i] + ".se"
			x = b.SE(x, p, graph.SESpec{Hidden: nn.SEHidden(s.OutC), Act: graph.ReLU, Gate: graph.Sigmoid,
				Reduce: p + ".reduce", Expand: p + ".expand", ConvWeights: true})
			x = b.Act(x, names[i]+".relu", graph.ReLU)
		}
	}
	x = b.GlobalAvgPool(x, "gap")
	if cfg.NumClasses > 0 {
		x = b.Linear(x, "linear", cfg.NumClasses, true, graph.None)
	}
	g, err := b.Graph(x)
	if err != nil {
		return nil, fmt.Errorf("mobileone: %w", err)
	}
	return g, nil
}
