package train

import (
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// benchTrainStep times one training step (forward, cross-entropy, backward,
// SGD) of cfg on a batch of random inputs with 10 classes.
func benchTrainStep(b *testing.B, cfg model.Config, batch, h, w int) {
	benchTrainStepBF16(b, cfg, batch, h, w, false)
}

// benchTrainStepBF16 is benchTrainStep, with the dense convolutions in
// bfloat16 (Net.SetBF16) if bf16 is set.
func benchTrainStepBF16(b *testing.B, cfg model.Config, batch, h, w int, bf16 bool) {
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
	if bf16 {
		if !kernel.HaveBF16() {
			b.Skip("no AMX or AVX512-BF16 on this machine")
		}
		if err := net.SetBF16(true); err != nil {
			b.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(batch, cfg.InChannels, h, w)
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
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStepS0_32 is one training step of S0 widths (k=4, 10
// classes) on a batch of 64 3×32×32 images.
func BenchmarkTrainStepS0_32(b *testing.B) {
	cfg, _ := model.Variant("s0")
	benchTrainStep(b, cfg, 64, 32, 32)
}

// BenchmarkTrainStepBF16 is the Fashion-MNIST steps (k = 1 and 4) and the
// S0 32×32 step with the dense convolutions in bfloat16 on AMX or AVX512-BF16
// (Net.SetBF16).
func BenchmarkTrainStepBF16(b *testing.B) {
	for _, k := range []int{1, 4} {
		b.Run(map[int]string{1: "fmnist-k1", 4: "fmnist-k4"}[k], func(b *testing.B) {
			cfg, _ := model.Variant("s0")
			cfg.InChannels, cfg.StemStride, cfg.K = 1, 1, k
			benchTrainStepBF16(b, cfg, 128, 28, 28, true)
		})
	}
	b.Run("s0-32", func(b *testing.B) {
		cfg, _ := model.Variant("s0")
		benchTrainStepBF16(b, cfg, 64, 32, 32, true)
	})
}

// BenchmarkTrainStepFashionMNIST is one training step of the Fashion-MNIST
// configuration: S0 widths, 1 input channel, stem stride 1, a batch of 128
// 28×28 images, with k=4 and k=1 conv branches.
func BenchmarkTrainStepFashionMNIST(b *testing.B) {
	for _, k := range []int{4, 1} {
		b.Run(map[int]string{4: "k4", 1: "k1"}[k], func(b *testing.B) {
			cfg, _ := model.Variant("s0")
			cfg.InChannels, cfg.StemStride, cfg.K = 1, 1, k
			benchTrainStep(b, cfg, 128, 28, 28)
		})
	}
}

// BenchmarkTrainStepFashionMNISTBatch is the k = 1 Fashion-MNIST step at
// other batch sizes (the activations of a batch of 128 at 28×28 exceed the
// L3 cache of small machines).
func BenchmarkTrainStepFashionMNISTBatch(b *testing.B) {
	for _, n := range []int{32, 64, 128} {
		b.Run(map[int]string{32: "b32", 64: "b64", 128: "b128"}[n], func(b *testing.B) {
			cfg, _ := model.Variant("s0")
			cfg.InChannels, cfg.StemStride, cfg.K = 1, 1, 1
			benchTrainStep(b, cfg, n, 28, 28)
		})
	}
}
