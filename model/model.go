package model

import (
	"fmt"

	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// Model is a MobileOne network: a stem block, four stages of
// depthwise/pointwise block pairs, global average pooling and a linear head.
// It is either entirely train-time (branches) or entirely fused.
type Model struct {
	Config Config
	Stem   *nn.Block
	Stages [4][]*nn.Block // stage i+1: blocks 0, 1, … (even: depthwise 3×3, odd: pointwise 1×1)
	Linear *nn.Linear     // nil when Config.NumClasses == 0
}

// NamedBlock is a block with its authors' name ("stage0", "stage2.5").
type NamedBlock struct {
	Name  string
	Block *nn.Block
}

// Specs returns the block specs of a configuration, in order, with names.
func (c Config) Specs() ([]string, []nn.BlockSpec) {
	names := []string{"stage0"}
	specs := []nn.BlockSpec{{InC: c.InChannels, OutC: c.Channels[0], K: 3, Stride: c.StemStride, Groups: 1, Branches: 1}}
	in := c.Channels[0]
	for s := 0; s < 4; s++ {
		out := c.Channels[s+1]
		for p := 0; p < c.Blocks[s]; p++ {
			stride := 1
			if p == 0 {
				stride = 2
			}
			se := p >= c.Blocks[s]-c.SEPairs[s]
			names = append(names, fmt.Sprintf("stage%d.%d", s+1, 2*p), fmt.Sprintf("stage%d.%d", s+1, 2*p+1))
			specs = append(specs,
				nn.BlockSpec{InC: in, OutC: in, K: 3, Stride: stride, Groups: in, Branches: c.K, SE: se},
				nn.BlockSpec{InC: in, OutC: out, K: 1, Stride: 1, Groups: 1, Branches: c.K, SE: se})
			in = out
		}
	}
	return names, specs
}

// New builds a model of the configuration with PyTorch's initial BatchNorm
// state and zero weights; fused selects the inference form.
func New(cfg Config, fused bool) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Model{Config: cfg}
	_, specs := cfg.Specs()
	m.Stem = nn.NewBlock(specs[0], fused)
	i := 1
	for s := 0; s < 4; s++ {
		for j := 0; j < 2*cfg.Blocks[s]; j++ {
			m.Stages[s] = append(m.Stages[s], nn.NewBlock(specs[i], fused))
			i++
		}
	}
	if cfg.NumClasses > 0 {
		m.Linear = nn.NewLinear(cfg.Channels[4], cfg.NumClasses)
	}
	return m, nil
}

// Blocks lists every block with its authors' name, in execution order.
func (m *Model) Blocks() []NamedBlock {
	out := []NamedBlock{{"stage0", m.Stem}}
	for s, blocks := range m.Stages {
		for j, b := range blocks {
			out = append(out, NamedBlock{fmt.Sprintf("stage%d.%d", s+1, j), b})
		}
	}
	return out
}

// IsFused reports whether the model is in its inference (re-parameterised) form.
func (m *Model) IsFused() bool { return m.Stem.IsFused() }

// Fuse returns the re-parameterised (inference) form of the model; the
// receiver is unchanged. Fusing a fused model returns a copy.
func (m *Model) Fuse() *Model {
	f := &Model{Config: m.Config, Stem: m.Stem.Fuse()}
	for s, blocks := range m.Stages {
		for _, b := range blocks {
			f.Stages[s] = append(f.Stages[s], b.Fuse())
		}
	}
	if m.Linear != nil {
		f.Linear = &nn.Linear{In: m.Linear.In, Out: m.Linear.Out, Weight: m.Linear.Weight.Clone(), Bias: m.Linear.Bias.Clone()}
	}
	return f
}

func (m *Model) checkInput(x *tensor.Tensor) error {
	if x == nil || len(x.Shape) != 4 {
		shape := "nil"
		if x != nil {
			shape = tensor.ShapeString(x.Shape)
		}
		return fmt.Errorf("input must be (N, C, H, W), got %s", shape)
	}
	if x.Shape[1] != m.Config.InChannels {
		return fmt.Errorf("input has %d channels, the model takes %d", x.Shape[1], m.Config.InChannels)
	}
	if x.Shape[0] < 1 || x.Shape[2] < 1 || x.Shape[3] < 1 {
		return fmt.Errorf("input shape %s has an empty dimension", tensor.ShapeString(x.Shape))
	}
	if len(x.Data) != x.Numel() {
		return fmt.Errorf("input shape %s needs %d values, has %d", tensor.ShapeString(x.Shape), x.Numel(), len(x.Data))
	}
	return nil
}

// Features runs the network up to stage4 and returns the outputs of the
// stem and of each stage: five tensors (N, C_i, H_i, W_i) with strides
// 2, 4, 8, 16, 32 relative to the input (for the default stem stride).
func (m *Model) Features(x *tensor.Tensor) ([]*tensor.Tensor, error) {
	if err := m.checkInput(x); err != nil {
		return nil, err
	}
	feats := make([]*tensor.Tensor, 0, 5)
	h := m.Stem.Forward(x)
	feats = append(feats, h)
	for _, blocks := range m.Stages {
		for _, b := range blocks {
			h = b.Forward(h)
		}
		feats = append(feats, h)
	}
	return feats, nil
}

// Forward maps images x: (N, InChannels, H, W) to logits (N, NumClasses),
// or to pooled features (N, Channels[4]) when the model has no classifier.
func (m *Model) Forward(x *tensor.Tensor) (*tensor.Tensor, error) {
	feats, err := m.Features(x)
	if err != nil {
		return nil, err
	}
	pooled := nn.GlobalAvgPool(feats[4])
	if m.Linear == nil {
		return pooled, nil
	}
	return m.Linear.Forward(pooled), nil
}

// Params returns the number of learnable values of the model in its current
// form (conv and linear weights and biases, BatchNorm weight and bias).
func (m *Model) Params() int {
	n := 0
	for _, nb := range m.Blocks() {
		n += nb.Block.Params()
	}
	if m.Linear != nil {
		n += m.Linear.Weight.Numel() + m.Linear.Bias.Numel()
	}
	return n
}
