package train

import (
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// BenchmarkTrainStepS0_32 is one training step (forward, cross-entropy,
// backward, SGD) of S0 widths (k=4, 10 classes) on a batch of 64 3×32×32
// images.
func BenchmarkTrainStepS0_32(b *testing.B) {
	cfg, _ := model.Variant("s0")
	cfg.NumClasses = 10
	m, err := model.New(cfg, false)
	if err != nil {
		b.Fatal(err)
	}
	m.InitRandom(1)
	net, err := NewNet(m)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(batch, 3, 32, 32)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	labels := make([]int, batch)
	for i := range labels {
		labels[i] = r.IntN(10)
	}
	opt := NewSGD(net.Params(), 0.01, 0.9, 1e-4, false)
	step := func() {
		net.ZeroGrad()
		_, dl := CrossEntropy(net.Forward(x, true), labels, 0.1)
		net.Backward(dl)
		opt.Step()
	}
	step()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}
