package train

import (
	"testing"

	"github.com/mobileone-go/mobileone/model"
)

// BenchmarkSegStepS0 is one DeepLabV3-S0 training step (forward, loss,
// backward, SGD) at output stride 16, batch 4 of 256×256, torchvision's head.
func BenchmarkSegStepS0(b *testing.B) {
	cfg, err := model.Variant("s0")
	if err != nil {
		b.Fatal(err)
	}
	cfg.NumClasses = 0
	m, err := model.New(cfg, false)
	if err != nil {
		b.Fatal(err)
	}
	m.InitRandom(1)
	s, err := NewSegNet(m, SegOptions{NumClasses: 21})
	if err != nil {
		b.Fatal(err)
	}
	x := randInput(1, 4, 3, 256, 256)
	mask := randMask(1, 4*256*256, 21)
	opt := NewSGD(s.Params(), 0.01, 0.9, 1e-4, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.ZeroGrad()
		s.Forward(x, mask, true)
		s.Backward()
		opt.Step()
	}
	b.ReportMetric(float64(4*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkSegStep is one DeepLabV3 training step (forward, loss, backward,
// SGD) at output stride 16, 11 classes (the canvases'), batch 8, on the
// configurations bench/train/seg.sh compares with PyTorch:
// s0k4-128 (S0, k = 4, 128×128) and fmnist-192 (the built-in model's
// backbone: S0's widths, k = 1, 192×192, the --init builtin run).
func BenchmarkSegStep(b *testing.B) {
	for _, c := range []struct {
		name    string
		k, size int
	}{{"s0k4-128", 4, 128}, {"fmnist-192", 1, 192}} {
		b.Run(c.name, func(b *testing.B) {
			cfg, err := model.Variant("s0")
			if err != nil {
				b.Fatal(err)
			}
			cfg.NumClasses, cfg.K = 0, c.k
			m, err := model.New(cfg, false)
			if err != nil {
				b.Fatal(err)
			}
			m.InitRandom(1)
			s, err := NewSegNet(m, SegOptions{NumClasses: 11})
			if err != nil {
				b.Fatal(err)
			}
			const n = 8
			x := randInput(1, n, 3, c.size, c.size)
			mask := randMask(1, n*c.size*c.size, 11)
			opt := NewSGD(s.Params(), 0.01, 0.9, 1e-4, false)
			step := func() {
				s.ZeroGrad()
				s.Forward(x, mask, true)
				s.Backward()
				opt.Step()
			}
			step() // warm-up: buffers, span tables
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				step()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
