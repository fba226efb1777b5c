package arch

import (
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/model"
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

// MobileOne builds the fused (re-parameterised) network of cfg
// (model.FusedGraph: the graph MobileOne's own commands run).
func MobileOne(cfg model.Config, h, w int) (*graph.Graph, error) { return model.FusedGraph(cfg, h, w) }
