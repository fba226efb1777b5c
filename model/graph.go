package model

import (
	"fmt"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/nn"
)

// FusedGraph builds the fused (re-parameterised) network of cfg for h×w
// inputs as a graph: one convolution with bias per block (the authors'
// "reparam_conv" keys), SE between a block's convolution and its ReLU,
// global pooling and the linear classifier (if cfg has classes). Its
// weights are bound by the fused state dict's keys (Model.StateDict of a
// fused model).
func FusedGraph(cfg Config, h, w int) (*graph.Graph, error) {
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

// Graph returns m's fused network for h×w inputs as a graph with m's
// weights (copied; m is fused first if it is not).
func (m *Model) Graph(h, w int) (*graph.Graph, error) {
	if !m.IsFused() {
		m = m.Fuse()
	}
	g, err := FusedGraph(m.Config, h, w)
	if err != nil {
		return nil, err
	}
	_, sd := m.StateDict()
	if err := g.Load(sd); err != nil {
		return nil, err
	}
	return g, nil
}
