package model

import (
	"math"
	"math/rand/v2"

	"github.com/mobileone-go/mobileone/nn"
	"github.com/mobileone-go/mobileone/tensor"
)

// InitRandom fills the model with reproducible random weights: He-normal
// convolutions (scaled down by the number of summed branches so
// activations keep their scale through the depth) and non-trivial
// BatchNorm parameters and running statistics. It is meant for tests,
// benchmarks and as a starting point for training.
func (m *Model) InitRandom(seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	normal := func(t *tensor.Tensor, std float64) {
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64() * std)
		}
	}
	uniform := func(t *tensor.Tensor, lo, hi float64) {
		for i := range t.Data {
			t.Data[i] = float32(lo + (hi-lo)*r.Float64())
		}
	}
	initBN := func(bn *nn.BatchNorm) {
		uniform(bn.Weight, 0.5, 1.5)
		normal(bn.Bias, 0.1)
		normal(bn.RunningMean, 0.2)
		uniform(bn.RunningVar, 0.5, 2.0)
		bn.NumBatchesTracked = float32(r.IntN(1000))
	}
	he := func(c *nn.Conv2d, branches int) {
		fanIn := c.InC / c.Groups * c.K * c.K
		normal(c.Weight, math.Sqrt(2/float64(fanIn))/float64(branches))
		if c.Bias != nil {
			normal(c.Bias, 0.1)
		}
	}
	for _, nb := range m.Blocks() {
		b := nb.Block
		n := len(b.Convs) + 1
		if b.Skip != nil {
			n++
		}
		if b.Fused != nil {
			he(b.Fused, 1)
		}
		for _, cb := range b.Convs {
			he(cb.Conv, n)
			initBN(cb.BN)
		}
		if b.Scale != nil {
			he(b.Scale.Conv, n)
			initBN(b.Scale.BN)
		}
		if b.Skip != nil {
			initBN(b.Skip)
			for i := range b.Skip.Weight.Data {
				b.Skip.Weight.Data[i] /= float32(n)
			}
		}
		if b.SE != nil {
			he(b.SE.Reduce, 1)
			he(b.SE.Expand, 1)
		}
	}
	if m.Linear != nil {
		normal(m.Linear.Weight, 1/math.Sqrt(float64(m.Linear.In)))
		normal(m.Linear.Bias, 0.1)
	}
}

// ReplaceHead gives the model a new, randomly initialised classifier for
// classes outputs (fine-tuning on new classes).
func (m *Model) ReplaceHead(classes int, seed uint64) {
	m.Config.NumClasses = classes
	m.Linear = nil
	if classes == 0 {
		return
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	m.Linear = nn.NewLinear(m.Config.Channels[4], classes)
	std := 1 / math.Sqrt(float64(m.Linear.In))
	for i := range m.Linear.Weight.Data {
		m.Linear.Weight.Data[i] = float32(r.NormFloat64() * std)
	}
}
