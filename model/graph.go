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
	x, err := AddBlocks(b, b.Input(), cfg, "", 32)
	if err != nil {
		return nil, err
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

// AddBlocks adds the fused blocks of cfg (stage0 to stage4, no pooling or
// classifier) to b after x, their keys under prefix ("backbone." in
// DeepLabV3), at the given output stride (32: the classifier's geometry;
// 16 and 8 dilate the last stages, see DenseStrides), and returns their
// output.
func AddBlocks(b *graph.Builder, x graph.Value, cfg Config, prefix string, outputStride int) (graph.Value, error) {
	outs, err := AddStages(b, x, cfg, prefix, outputStride)
	if err != nil {
		return x, err
	}
	return outs[4], nil
}

// AddStages is AddBlocks returning the output of every stage (stage0 to
// stage4): the features a detection head taps (SSDLite: stage3's at stride
// 16, stage4's at 32).
func AddStages(b *graph.Builder, x graph.Value, cfg Config, prefix string, outputStride int) ([5]graph.Value, error) {
	var outs [5]graph.Value
	strides, dils, err := cfg.DenseStrides(outputStride)
	if err != nil {
		return outs, err
	}
	names, specs := cfg.Specs()
	for i, s := range specs {
		act := graph.ReLU
		if s.SE {
			act = graph.None
		}
		p := prefix + names[i]
		x = b.Conv(x, p+".reparam_conv", graph.ConvSpec{Out: s.OutC, K: s.K, Stride: strides[i], Pad: s.K / 2 * dils[i],
			Dilation: dils[i], Groups: s.Groups, Bias: true, Act: act})
		if s.SE {
			x = b.SE(x, p+".se", graph.SESpec{Hidden: nn.SEHidden(s.OutC), Act: graph.ReLU, Gate: graph.Sigmoid,
				Reduce: p + ".se.reduce", Expand: p + ".se.expand", ConvWeights: true})
			x = b.Act(x, p+".relu", graph.ReLU)
		}
		// names are stage0, stage1.0, …: the last block of stage k writes outs[k]
		outs[names[i][5]-'0'] = x
	}
	return outs, nil
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
